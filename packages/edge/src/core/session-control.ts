// What an operator sees of and does to one open edge session, the same for both protocols: its
// row in a session list (PgBouncer's SHOW CLIENTS), ending it (KILL), and the drain on SIGTERM.
import { randomInt } from 'node:crypto';

/**
 * `login`: startup or authentication not over; `idle`: nothing in flight, no transaction;
 * `active`: a query in flight; `in-transaction`: idle inside a transaction block.
 */
export type SessionState = 'login' | 'idle' | 'active' | 'in-transaction';

export interface SessionInfo {
  /** Unique across the edge's threads and protocols while the process runs (MySQL: its connection id). */
  id: string;
  protocol: 'postgres' | 'mysql';
  /** Null while the client has not named a cache yet. */
  cacheId: string | null;
  user: string | null;
  database: string | null;
  clientAddress: string;
  /** ISO 8601, when the connection was accepted. */
  startedAt: string;
  bytesIn: number;
  bytesOut: number;
  queries: number;
  state: SessionState;
}

/** Why the edge ends a session itself, which decides the error the client reads. */
export type EndCause = 'shutdown' | 'killed';

export interface ControlledSession {
  readonly id: string;
  info(): SessionInfo;
  /**
   * The edge is shutting down: end the session now if it is idle (or still logging in), else as
   * soon as it goes idle (its query answered, its transaction ended).
   */
  drain(): void;
  /** Ends the session now with the protocol's own error for `cause`, never a bare close. */
  end(cause: EndCause): void;
  /** Ends the session by destroying its sockets, without a word (the client is gone already). */
  close(): void;
}

// Postgres: 57P01 admin_shutdown, in the words Postgres uses for pg_terminate_backend and shutdown.
export const PG_ADMIN_SHUTDOWN = '57P01';
export const PG_END_MESSAGES: Record<EndCause, string> = {
  shutdown:
    'terminating connection due to administrator command: the edge is shutting down; reconnect to another edge node',
  killed:
    'terminating connection due to administrator command: the session was ended by an Edgegate administrator',
};

// MySQL: ER_SERVER_SHUTDOWN (1053, 08S01) for the shutdown; ER_CONNECTION_KILLED (1927, 70100,
// MariaDB's answer to KILL CONNECTION) for a session an administrator ended.
export const MYSQL_END_ERRORS: Record<
  EndCause,
  { code: number; sqlState: string; message: string }
> = {
  shutdown: {
    code: 1053,
    sqlState: '08S01',
    message:
      'Server shutdown in progress: the edge is shutting down; reconnect to another edge node',
  },
  killed: {
    code: 1927,
    sqlState: '70100',
    message: 'Connection was killed by an Edgegate administrator',
  },
};

// Session ids: 2^30 and up (origins count MySQL connection ids from 1), thread index in bits 24–29.
const SESSION_ID_BASE = 2 ** 30;
const IDS_PER_THREAD = 2 ** 24;

/** Hands out the session ids of one edge thread (both protocols draw from it). */
export class SessionIds {
  readonly #base: number;
  // Each listener starts at a random point of its range: edge nodes of a cluster share cancel keys
  // (`mysql:<id>` in Redis), and two nodes that both started at 1 would give out the same ids.
  #next = randomInt(IDS_PER_THREAD);

  constructor(threadIndex = 0) {
    this.#base = SESSION_ID_BASE + (threadIndex % 64) * IDS_PER_THREAD;
  }

  next(): number {
    this.#next = (this.#next + 1) % IDS_PER_THREAD;
    return this.#base + this.#next;
  }
}
