// Which sessions may share a cached result, for every wire protocol: a result is served only to a
// session whose result-affecting state is known to equal the state it was stored under.

/** Who the session is; fixed when it connects. */
export interface SessionIdentity {
  cacheId: string;
  database: string;
  user: string;
  /** Settings the client sent when it connected (not user, database or application name). */
  startupSettings: ReadonlyMap<string, string>;
}

/** What the session has changed about itself, as last read from the origin. */
export interface ObservedState {
  /** The role privileges are checked against (SET ROLE changes it). */
  currentUser: string;
  /** The authenticated role (SET SESSION AUTHORIZATION changes it). */
  sessionUser: string;
  /** Settings the session changed, and custom settings the database's code reads, by name. */
  settings: ReadonlyMap<string, string>;
  /** The session holds state no reading can pin down (temporary tables, settings read by a
   * computed name): it shares results with no other session. */
  private: boolean;
}

/** The state of a session that has changed nothing since it connected as `user`. */
export function initialState(user: string): ObservedState {
  return { currentUser: user, sessionUser: user, settings: new Map(), private: false };
}

/**
 * The session part of every cache key, as text. It holds, in this order:
 * 1. the cache id, the database and the user the session connected as;
 * 2. every setting the client sent when it connected;
 * 3. every parameter the origin reports (time zone, date style, …), `ignoredReports` excepted;
 * 4. the observed state: current user, session user, and the settings the session changed;
 * 5. `privateTo` when the observed state is private, so that such a session shares nothing.
 * Maps are written sorted by name, so sessions in the same state get the same text whatever order
 * they reached it in.
 */
export function sessionKeyText(
  identity: SessionIdentity,
  reported: ReadonlyMap<string, string>,
  observed: ObservedState,
  privateTo: string,
  ignoredReports: ReadonlySet<string> = new Set(),
): string {
  const reports = new Map([...reported].filter(([name]) => !ignoredReports.has(name)));
  return [
    identity.cacheId,
    identity.database,
    identity.user,
    sortedPairs(identity.startupSettings),
    sortedPairs(reports),
    observed.currentUser,
    observed.sessionUser,
    sortedPairs(observed.settings),
    observed.private ? privateTo : '',
  ].join('\u0000');
}

/** The key of one request: the session's key id, then what the protocol says identifies the request. */
export function requestKey(sessionKeyId: string, parts: readonly string[]): string {
  return `${sessionKeyId}\u0000${parts.join('\u0000')}`;
}

function sortedPairs(map: ReadonlyMap<string, string>): string {
  return [...map]
    .map(([name, value]) => `${name}=${value}`)
    .sort()
    .join('\u0001');
}

/**
 * What a statement may do to session state, as the protocol's analysis says:
 * - 'taints': may change it unseen (SET, set_config(), a function we do not know, DO, CALL,
 *   EXECUTE, LOAD, and every write, whose triggers run code);
 * - 'copies': taints, and starts a copy from the client, during which the origin reads only data;
 * - 'discards': taints, and also drops prepared statements (DISCARD ALL);
 * - 'transaction': ends or rolls back a transaction (or part of one), reverting what it changed;
 * - 'none'.
 */
export type SessionEffect = 'none' | 'transaction' | 'taints' | 'discards' | 'copies';

let nextSessionNumber = 0;

/**
 * The key of one session as its state changes. A statement that may change the state unseen
 * taints it: the key is then unknown (null) until a probe of the state, sent right behind that
 * statement, answers. Ending a transaction in which the state changed taints it again.
 */
export class SessionKey {
  readonly #identity: SessionIdentity;
  readonly #ignoredReports: ReadonlySet<string>;
  readonly #reported = new Map<string, string>();
  readonly #self = `p${(nextSessionNumber += 1).toString(36)}`;
  #observed: ObservedState;
  #taints = 0;
  #known = true;
  // A probe is owed after the current exchange ('after-copy': after the next one).
  #probe: 'none' | 'owed' | 'after-copy' = 'none';
  // The state changed since it was last read with the session idle: a transaction end may revert it.
  #changedInTransaction = false;
  // The id is rebuilt when next asked for, so a burst of reports (at login) builds it once.
  #id: string | null = null;
  #text: string | null = null;

  constructor(identity: SessionIdentity, ignoredReports: ReadonlySet<string> = new Set()) {
    this.#identity = identity;
    this.#ignoredReports = ignoredReports;
    this.#observed = initialState(identity.user);
  }

  /** The short id of the session's key, or null while its state is unknown. */
  get id(): string | null {
    if (!this.#known) return null;
    this.#id ??= internSessionKey(this.#keyText());
    return this.#id;
  }

  /**
   * The session's key as text, the same on every edge node for sessions in the same state (the
   * shared second level keys results by it); null while the state is unknown, and when it is
   * private: a private key names a session of this process, which another node's may also be called.
   */
  get sharedText(): string | null {
    if (!this.#known || this.#observed.private) return null;
    return this.#keyText();
  }

  #keyText(): string {
    this.#text ??= sessionKeyText(
      this.#identity,
      this.#reported,
      this.#observed,
      this.#self,
      this.#ignoredReports,
    );
    return this.#text;
  }

  get known(): boolean {
    return this.#known;
  }

  /** The origin reported a parameter's value (it does so for the parameters it reports on its own). */
  report(name: string, value: string): void {
    if (this.#reported.get(name) === value) return;
    this.#reported.set(name, value);
    this.#id = null;
    this.#text = null;
  }

  /** A statement with this effect was sent; false when it cannot change the state. */
  note(effect: SessionEffect): boolean {
    if (effect === 'none' || (effect === 'transaction' && !this.#changedInTransaction))
      return false;
    this.#taints += 1;
    this.#known = false;
    this.#changedInTransaction = true;
    this.#probe = effect === 'copies' ? 'after-copy' : 'owed';
    return true;
  }

  /** A probe is owed behind the exchange just sent (not one that must wait for a copy to end). */
  get probeOwed(): boolean {
    return this.#probe === 'owed';
  }

  /**
   * Called at the end of each exchange sent: when a probe is due now, returns the mark to hand to
   * `learn` with its reading (the caller sends the probe behind the exchange); otherwise null.
   */
  probeDue(): number | null {
    if (this.#probe === 'after-copy') this.#probe = 'owed';
    else if (this.#probe === 'owed') {
      this.#probe = 'none';
      return this.#taints;
    }
    return null;
  }

  /**
   * A probe's reading (null when it failed), `mark` being what `probeDue` returned, `idle` whether
   * the session was outside a transaction. The state becomes known only if nothing tainted it
   * after the probe was sent; a failed probe leaves it unknown and owes another.
   */
  learn(mark: number, state: ObservedState | null, idle: boolean): void {
    if (state === null) {
      if (this.#probe === 'none') this.#probe = 'owed';
      return;
    }
    if (mark !== this.#taints) return;
    this.#observed = state;
    this.#known = true;
    this.#id = null;
    this.#text = null;
    if (idle) this.#changedInTransaction = false;
  }
}

// Session keys are long; each distinct one gets a short id so the per-request key is short to
// build and hash. Ids are never reused, so clearing the map when it grows only costs the entries
// of sessions that are gone.
const sessionIds = new Map<string, string>();
let nextSessionId = 0;
const MAX_SESSION_IDS = 100_000;

function internSessionKey(full: string): string {
  let id = sessionIds.get(full);
  if (id === undefined) {
    if (sessionIds.size >= MAX_SESSION_IDS) sessionIds.clear();
    nextSessionId += 1;
    id = `s${nextSessionId.toString(36)}`;
    sessionIds.set(full, id);
  }
  return id;
}
