// What every wire protocol's session does with the cache, protocol-neutral: decide whether a read
// may be kept and for how long, serve and count hits, lead or join a miss (coalescing), capture the
// origin's answer within the entry bound, store it under the epochs it was asked at, and collect a
// transaction's writes until they commit. The protocols differ only in how they frame requests and
// answers; the rules, the key discipline and the invalidation are these.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { CacheEntry } from '../cache/result-cache.ts';
import type { SharedProtocol, SharedResults } from '../cluster/shared-results.ts';
import { withViewTables, type CachePolicy, type CompiledRules } from '../control/config.ts';
import type { TableRef } from '../pg/sql/analyze.ts';

// A hit's template was counted at its miss: its text is already known.
const knownTemplate = (): string => '';
import type { CacheState, EdgeRuntime } from '../runtime.ts';

/** What a protocol's analysis says of a read, as far as the cache needs it. */
export interface ReadAnalysis {
  cacheable: boolean;
  fingerprint: string;
  reads: readonly TableRef[];
}

/** A miss on its way: the origin's answer is collected here, then stored (if it may be). */
export interface Capture {
  readonly key: string;
  /** This session asked the origin for a key others may be waiting on (see `settle`). */
  readonly leader: boolean;
  /** The epoch slots' names: what a write must name to make the result stale. */
  readonly tables: readonly string[];
  readonly fingerprint: string;
  readonly policy: CachePolicy;
  readonly askedEpoch: bigint;
  readonly startedAt: number;
  pieces: Buffer[];
  bytes: number;
  ok: boolean;
  /** The second level: the result's key there and, once looked up, the table versions to store
   * it with after the origin's answer; null when it is not shared. */
  shared: { protocol: SharedProtocol; key: string; versions: string | null } | null;
}

/**
 * A miss: lead it (`capture`, ask the origin), wait for the identical one already in flight, or
 * lead it after a look in the shared second level (`found`: an entry to serve as a hit, already in
 * the local store and handed to whoever joined; null: ask the origin, leading with `capture`).
 */
export type MissStart =
  | { kind: 'lead'; capture: Capture }
  | { kind: 'join'; answer: Promise<CacheEntry | null> }
  | { kind: 'shared'; capture: Capture; found: Promise<CacheEntry | null> };

/**
 * How a miss that did not lead ends (see CacheAccess.follow): served from the entry (counted as a
 * hit); led after all (the second level had nothing: the session asks the origin and stores the
 * answer with `capture`); or asked for itself (the leader's answer could not be stored).
 */
export type FollowedMiss =
  { kind: 'hit'; entry: CacheEntry } | { kind: 'lead'; capture: Capture } | { kind: 'ask' };

/** What a protocol gives for the second level: the request's key there, built from the session's
 * shared key text (null: its state is private or unknown, nothing is shared). */
export interface SharedRequest {
  protocol: SharedProtocol;
  key: () => string | null;
}

// A shared key names the cache's config (a changed config must not serve what the old one
// cached, as the local store drops it) by a digest, computed once per loaded config.
const configDigests = new WeakMap<CompiledRules, string>();
function configDigest(rules: CompiledRules): string {
  let digest = configDigests.get(rules);
  if (digest === undefined) {
    digest = createHash('sha256').update(JSON.stringify(rules.config)).digest('base64url');
    configDigests.set(rules, digest);
  }
  return digest;
}

export class CacheAccess {
  readonly runtime: EdgeRuntime;
  readonly cache: CacheState;
  // Tables written by the open transaction (or the statement in flight), invalidated at its commit.
  #writes: Set<string> | 'all' | null = null;

  constructor(runtime: EdgeRuntime, cache: CacheState) {
    this.runtime = runtime;
    this.cache = cache;
  }

  /**
   * The policy for a read the protocol found cacheable, or null: rules first, and a read inside a
   * transaction block only when its rule allows it there (transactionPolicy 'untilWrite').
   */
  policy(sql: string, analysis: ReadAnalysis, inTransaction: boolean): CachePolicy | null {
    if (!analysis.cacheable) return null;
    const policy = this.cache.rules.decide(sql, analysis.fingerprint, analysis.reads);
    if (policy === null) return null;
    if (policy.transactionPolicy === 'never' && inTransaction) return null;
    return policy;
  }

  /**
   * Whether the cache may be used at all: with other edge nodes, only while this node is sure it
   * has heard of every write they committed; in replication mode, only while its follower is.
   */
  get serving(): boolean {
    return this.runtime.bus?.serving !== false && !this.cache.epochs.held;
  }

  /** A fresh stored answer for `key` that may be served in the session's transaction state. */
  lookup(key: string, inTransaction: boolean): CacheEntry | undefined {
    if (!this.serving) return undefined;
    const entry = this.runtime.results.get(key);
    if (entry === undefined) return undefined;
    return !inTransaction || entry.transactionPolicy === 'untilWrite' ? entry : undefined;
  }

  /** Counts a hit (`arrivedAt`: when the request's bytes arrived, for the latency histogram). */
  countHit(entry: CacheEntry, arrivedAt: number): void {
    const stats = this.cache.stats;
    stats.hits += 1;
    stats.bytesServed += entry.response.length;
    stats.template(entry.fingerprint, knownTemplate);
    // The first hits of a cache are all timed, then one in eight: enough for percentiles, and most
    // hits skip the clock.
    if (stats.hits <= 64 || (stats.hits & 7) === 0) {
      stats.hitLatency.record(performance.now() - arrivedAt);
    }
  }

  countUncacheable(): void {
    this.cache.stats.uncacheable += 1;
  }

  /**
   * Starts a miss. With `coalesce`, an identical miss already in flight is joined instead of asking
   * the origin again (its answer: the stored entry, or null when it could not be stored).
   */
  startMiss(miss: {
    key: string;
    tables: readonly string[];
    fingerprint: string;
    policy: CachePolicy;
    coalesce: boolean;
    /** Look in the second level first, when the cache shares results (only outside transactions). */
    shared?: SharedRequest | null;
  }): MissStart {
    const results = this.runtime.results;
    const joined = miss.coalesce ? results.join(miss.key) : null;
    if (joined !== null) return { kind: 'join', answer: joined };
    const capture: Capture = {
      key: miss.key,
      leader: miss.coalesce,
      // A read through a view is stale when a table under it is written, too.
      tables: withViewTables(miss.tables, this.cache.rules.config.viewTables),
      fingerprint: miss.fingerprint,
      policy: miss.policy,
      // Before the second level is asked: a write stamped while it answers keeps its entry out.
      // Behind an open transaction or other commands in flight, the epoch they were sent at (see
      // `sending`).
      askedEpoch: this.#openSince ?? results.epoch,
      startedAt: performance.now(),
      pieces: [],
      bytes: 0,
      ok: true,
      shared: null,
    };
    const sharing = miss.shared == null ? null : this.#sharing();
    const sharedKey = sharing === null ? null : (miss.shared as SharedRequest).key();
    if (sharing === null || sharedKey === null) return { kind: 'lead', capture };
    const { protocol } = miss.shared as SharedRequest;
    capture.shared = {
      protocol,
      key: `${protocol}\u0000${configDigest(this.cache.rules)}\u0000${sharedKey}`,
      versions: null,
    };
    return { kind: 'shared', capture, found: this.#lookupShared(sharing, capture) };
  }

  /**
   * Waits for a miss that did not lead: the identical miss in flight, or the second level; then
   * tells `then` how it ended, in the same turn as it checks that the session is not `closed()`
   * (a closed session's capture is let go instead).
   */
  follow(
    start: Exclude<MissStart, { kind: 'lead' }>,
    arrivedAt: number,
    closed: () => boolean,
    then: (followed: FollowedMiss) => void,
  ): Promise<void> {
    const capture = start.kind === 'shared' ? start.capture : null;
    return (start.kind === 'shared' ? start.found : start.answer).then((entry) => {
      if (closed()) {
        if (capture !== null && entry === null) this.abandonMiss(capture);
        return;
      }
      if (entry !== null) {
        this.countHit(entry, arrivedAt);
        return then({ kind: 'hit', entry });
      }
      if (capture !== null) return then({ kind: 'lead', capture });
      this.countUncacheable();
      then({ kind: 'ask' });
    });
  }

  // The second level is used for caches that share results, and only while the bus says this node
  // has heard of every write: without the bus, writes would not bump the versions it checks.
  #sharing(): SharedResults | null {
    const shared = this.runtime.sharedResults;
    if (shared === null || this.cache.rules.config.sharedResults !== true) return null;
    return this.runtime.bus?.serving === true && this.serving ? shared : null;
  }

  async #lookupShared(shared: SharedResults, capture: Capture): Promise<CacheEntry | null> {
    const request = capture.shared as NonNullable<Capture['shared']>;
    const found = await shared.lookup(this.cache.id, request.protocol, request.key, capture.tables);
    if (found.kind === 'miss') request.versions = found.versions;
    if (found.kind !== 'hit' || !this.serving) return null;
    // Into the local store as if read from the origin at `askedEpoch`, for no longer than it has
    // left in Redis; when that store refuses (written meanwhile, too big) the origin is asked.
    const entry = this.runtime.results.set({
      key: capture.key,
      epochs: this.cache.epochs,
      tables: capture.tables,
      response: found.entry.response,
      fingerprint: capture.fingerprint,
      transactionPolicy: capture.policy.transactionPolicy,
      ttlMs: Math.min(found.entry.ttlMs, capture.policy.ttlMs),
      askedEpoch: capture.askedEpoch,
      statusOffsets: found.entry.statusOffsets,
    });
    if (entry !== null && capture.leader) this.runtime.results.settle(capture.key, entry);
    return entry;
  }

  /** Adds bytes of the answer; past the entry bound the answer is relayed but not kept. */
  append(capture: Capture, bytes: Buffer): void {
    if (!capture.ok) return;
    capture.bytes += bytes.length;
    if (capture.bytes > this.runtime.results.maxEntryBytes) {
      capture.ok = false;
      capture.pieces = [];
      return;
    }
    capture.pieces.push(bytes);
  }

  /**
   * Ends a miss: stores `response` (null: the answer may not be kept) unless a table it read was
   * written since it was asked, wakes the sessions that joined it, and counts it.
   */
  finishMiss(
    capture: Capture,
    response: Buffer | null,
    extra: { statusOffsets?: readonly number[] } = {},
  ): CacheEntry | null {
    let entry: CacheEntry | null = null;
    if (response !== null && capture.ok && this.serving) {
      entry = this.runtime.results.set({
        key: capture.key,
        epochs: this.cache.epochs,
        tables: capture.tables,
        response,
        fingerprint: capture.fingerprint,
        transactionPolicy: capture.policy.transactionPolicy,
        ttlMs: capture.policy.ttlMs,
        askedEpoch: capture.askedEpoch,
        ...extra,
      });
    }
    if (capture.leader) this.runtime.results.settle(capture.key, entry);
    const request = capture.shared;
    const sharing = entry !== null && request?.versions != null ? this.#sharing() : null;
    if (sharing !== null && entry !== null && request?.versions != null) {
      // In the background: the client's answer never waits for Redis (store() never throws).
      void sharing.store(
        this.cache.id,
        request.protocol,
        request.key,
        capture.tables,
        request.versions,
        {
          response: entry.response,
          statusOffsets: entry.statusOffsets,
          ttlMs: capture.policy.ttlMs,
        },
      );
    }
    const stats = this.cache.stats;
    stats.misses += 1;
    stats.missLatency.record(performance.now() - capture.startedAt);
    return entry;
  }

  /** A miss whose answer never came (the session ended): whoever joined it asks for itself. */
  abandonMiss(capture: Capture): void {
    if (capture.leader) this.runtime.results.settle(capture.key, null);
  }

  /**
   * A command leaves for the origin: returns the epoch it is sent at (for `answered`). The first one
   * sent since the session was last seen idle opens a span that lasts until an answer shows the
   * session idle with nothing sent before it still in flight. A transaction's snapshot (REPEATABLE
   * READ, SERIALIZABLE, MySQL's default) is taken no earlier than the span opened, and may miss
   * writes stamped since: a miss in the span is stored as asked at its opening, never later.
   */
  sending(): bigint {
    const epoch = this.runtime.results.epoch;
    this.#openSince ??= epoch;
    return epoch;
  }

  /**
   * An answer ended. `idle`: the session is outside any transaction; `inFlight`: the commands still
   * in flight, with the epoch each was sent at (the span goes on from the oldest of them).
   */
  answered(idle: boolean, inFlight: readonly { readonly sentEpoch: bigint | null }[]): void {
    if (!idle) return;
    let oldest: bigint | null = null;
    for (let i = 0; i < inFlight.length; i += 1) {
      const epoch = (inFlight[i] as { readonly sentEpoch: bigint | null }).sentEpoch;
      if (epoch !== null && (oldest === null || epoch < oldest)) oldest = epoch;
    }
    this.#openSince = oldest;
  }

  #openSince: bigint | null = null;

  /** Whether the open transaction has written (or may have: 'all'). */
  get written(): boolean {
    return this.#writes !== null;
  }

  /** Tables the transaction wrote; they are invalidated when it commits. */
  noteWrites(writes: readonly string[] | 'all'): void {
    if (writes === 'all' || this.#writes === 'all') {
      this.#writes = 'all';
      return;
    }
    if (writes.length === 0) return;
    this.#writes ??= new Set();
    // A write through an updatable view writes the tables under it.
    for (const table of withViewTables(writes, this.cache.rules.config.viewTables)) {
      this.#writes.add(table);
    }
  }

  /**
   * The transaction committed: what it wrote is stale for every session, in every thread at once,
   * and on the other edge nodes. With other nodes, returns what the writer's answer must wait for
   * (the shared versions bumped); null when nothing need wait.
   */
  commitWrites(): Promise<void> | null {
    const writes = this.#writes;
    this.#writes = null;
    if (writes === null) return null;
    const tables = writes === 'all' ? 'all' : [...writes];
    this.runtime.results.invalidate(this.cache.epochs, tables);
    const bus = this.runtime.bus;
    if (bus === null) return null;
    // A failed publish leaves the bus not serving; the writer's answer goes on (its write did commit).
    const published = bus.publish(this.cache.id, tables).catch(() => undefined);
    if (this.runtime.sharedResults === null) return published;
    // Until the versions are bumped, a miss on any thread may still find the pre-write result in
    // the second level and put it in the local store (it was asked after the stamp above): a
    // second stamp, before the writer's answer, makes such an entry stale.
    return published.then(() => this.runtime.results.invalidate(this.cache.epochs, tables));
  }

  /** The transaction rolled back: nothing it wrote is visible. */
  discardWrites(): void {
    this.#writes = null;
  }
}
