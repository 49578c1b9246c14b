// What an operator reads about edge sessions, for both protocols: each session's end (cache, user,
// database, client address, duration, bytes, queries, why it ended), refused routing and failed
// logins, at `info`. A flood must not flood the log: past a budget per second the lines are
// counted, and one line says how many were left out.
import type { EdgeLogger } from '../runtime.ts';

export interface SessionRecord {
  protocol: 'postgres' | 'mysql';
  cacheId: string | null;
  user: string | null;
  database: string | null;
  client: string;
  /** Milliseconds since the connection was accepted. */
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
  queries: number;
  /** Why it ended: 'client closed', 'origin closed', 'refused: …', 'login timeout', … */
  reason: string;
}

const DEFAULT_LINES_PER_SECOND = 50;

export class SessionLog {
  /** Logins the origin refused, by protocol, since the process started (Prometheus counters). */
  readonly authFailures = { postgres: 0, mysql: 0 };
  readonly #logger: EdgeLogger;
  readonly #perSecond: number;
  #windowStart = 0;
  #lines = 0;
  #skipped = 0;

  constructor(logger: EdgeLogger, perSecond = DEFAULT_LINES_PER_SECOND) {
    this.#logger = logger;
    this.#perSecond = perSecond;
  }

  /** A session ended (after a login or not). */
  ended(record: SessionRecord): void {
    if (record.reason.startsWith('authentication failed')) this.authFailures[record.protocol] += 1;
    if (!this.#admit()) return;
    const message = record.reason.startsWith('refused')
      ? 'edge session refused'
      : record.reason.startsWith('authentication failed')
        ? 'edge login failed'
        : 'edge session ended';
    this.#logger.info({ ...record, durationMs: Math.round(record.durationMs) }, message);
  }

  #admit(): boolean {
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      if (this.#skipped > 0) {
        this.#logger.info(
          { skipped: this.#skipped, perSecond: this.#perSecond },
          `${this.#skipped} more edge sessions ended in the last second (not logged one by one)`,
        );
      }
      this.#windowStart = now;
      this.#lines = 0;
      this.#skipped = 0;
    }
    if (this.#lines >= this.#perSecond) {
      // The count is logged when the window ends, even if no session ends after it.
      if (this.#skipped === 0) setTimeout(() => this.#admit(), 1000).unref();
      this.#skipped += 1;
      return false;
    }
    this.#lines += 1;
    return true;
  }
}
