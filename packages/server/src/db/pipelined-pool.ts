// The pool behind `store.pipelined` on Postgres: single statements that need no session state and no
// transaction share a few pipelined connections. Each statement is sent at once instead of waiting
// for a free connection, and everything sent in one turn of the event loop (the statements of all
// the requests that arrived together) leaves in one write, so Postgres reads a batch and answers a
// batch: on the API's hot reads this halves the cost of a query on both sides.
// Anything that needs a session (a transaction, an advisory lock, SET) uses `store.db`.
import type PgModule from 'pg';

/** How many shared connections; a slow statement then holds up only the queries behind it on one. */
const SHARED_CONNECTIONS = 2;
/** Statements that open or depend on a session: refused here, they belong on `store.db`. */
const NEEDS_SESSION = /^\s*(begin|start\s+transaction|set\b|listen\b)|pg_advisory_(un)?lock/i;
/**
 * Texts already found to need no session. Kysely compiles a fixed set of shapes, so after the first
 * call of each the check is one lookup instead of a scan of the whole text.
 */
const SESSIONLESS = new Set<string>();

interface Shared {
  client: Promise<PgModule.Client>;
  inFlight: number;
  corked: boolean;
}

export class PipelinedPool {
  readonly #connect: () => PgModule.Client;
  readonly #onError: (error: Error) => void;
  readonly #shared: (Shared | null)[] = new Array<Shared | null>(SHARED_CONNECTIONS).fill(null);
  readonly #session: SharedSession;
  #ended = false;

  /**
   * `connect` makes a client with `pipeline: true`; `onError` hears a shared connection fail
   * while idle (it is replaced on next use).
   */
  constructor(connect: () => PgModule.Client, onError: (error: Error) => void) {
    this.#connect = connect;
    this.#onError = onError;
    this.#session = new SharedSession(this);
  }

  // What Kysely's PostgresDriver reads from a pool.
  readonly options = {};

  async connect(): Promise<SharedSession> {
    if (this.#ended) throw new Error('the store is closed');
    return this.#session;
  }

  async end(): Promise<void> {
    this.#ended = true;
    const shared = this.#shared.splice(0).filter((slot) => slot !== null);
    await Promise.all(
      shared.map((slot) => slot.client.then((client) => client.end()).catch(() => undefined)),
    );
  }

  /** Sends one statement on the shared connection with the fewest statements in flight. */
  async query(text: string, values: unknown[] | undefined): Promise<PgModule.QueryResult> {
    if (!SESSIONLESS.has(text)) {
      if (NEEDS_SESSION.test(text)) {
        throw new Error('store.pipelined runs single statements only: use store.db for this one');
      }
      if (SESSIONLESS.size >= 10_000) SESSIONLESS.clear();
      SESSIONLESS.add(text);
    }
    const index = this.#leastBusy();
    const slot = (this.#shared[index] ??= this.#open(index));
    slot.inFlight += 1;
    try {
      const client = await slot.client;
      // One write per turn of the event loop: pg writes each statement as it is queued; held
      // until the loop has run every callback of this turn (setImmediate), they leave together.
      // `stream` is pg's socket, which pg itself corks around each statement.
      const stream = (client as unknown as { connection?: { stream?: Corkable } }).connection
        ?.stream;
      if (!slot.corked && stream !== undefined) {
        slot.corked = true;
        stream.cork();
        setImmediate(() => {
          slot.corked = false;
          stream.uncork();
        });
      }
      return await client.query(text, values);
    } finally {
      slot.inFlight -= 1;
    }
  }

  #leastBusy(): number {
    let best = 0;
    for (let i = 1; i < this.#shared.length; i++) {
      if ((this.#shared[i]?.inFlight ?? 0) < (this.#shared[best]?.inFlight ?? 0)) best = i;
    }
    return best;
  }

  #open(index: number): Shared {
    const client = this.#connect();
    const slot: Shared = { client: Promise.resolve(client), inFlight: 0, corked: false };
    const forget = () => {
      if (this.#shared[index] === slot) this.#shared[index] = null;
    };
    client.on('error', (error: Error) => {
      forget();
      this.#onError(error);
    });
    client.on('end', forget);
    slot.client = client.connect().then(
      () => client,
      (error: unknown) => {
        forget();
        throw error;
      },
    );
    return slot;
  }
}

interface Corkable {
  cork(): void;
  uncork(): void;
}

/** What Kysely gets from `connect()`: every statement goes to the shared connections. */
class SharedSession {
  readonly #pool: PipelinedPool;

  constructor(pool: PipelinedPool) {
    this.#pool = pool;
  }

  query(text: string, values?: unknown[]): Promise<PgModule.QueryResult> {
    return this.#pool.query(text, values);
  }

  release(): void {}
}
