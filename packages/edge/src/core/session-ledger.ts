// What one edge session counts and tells, the same for both protocols: when it was accepted, its
// bytes and queries, why it ended (the first cause wins), its login deadline and the drain on
// SIGTERM, its row in the session list and its line in the log.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { EndCause, SessionInfo } from './session-control.ts';
import type { SessionLog } from './session-log.ts';

/** Who the session is, as known so far (null until the client has said). */
export interface SessionIdentity {
  cacheId: string | null;
  user: string | null;
  database: string | null;
}

export class SessionLedger {
  readonly #protocol: SessionInfo['protocol'];
  readonly #acceptedAt = performance.now();
  readonly #startedAt = new Date().toISOString();
  readonly clientAddress: string;
  bytesIn = 0;
  bytesOut = 0;
  queries = 0;
  /** The edge is shutting down: the session ends as soon as it is idle. */
  draining = false;
  #endReason: string | null = null;
  #loginTimer: NodeJS.Timeout | null;

  /** `onLoginExpired` refuses a client still logging in after `loginTimeoutMs`. */
  constructor(
    protocol: SessionInfo['protocol'],
    socket: net.Socket,
    loginTimeoutMs: number,
    onLoginExpired: (timeoutMs: number) => void,
  ) {
    this.#protocol = protocol;
    this.clientAddress = socket.remoteAddress ?? '';
    this.#loginTimer = setTimeout(() => {
      this.#loginTimer = null;
      onLoginExpired(loginTimeoutMs);
    }, loginTimeoutMs);
    this.#loginTimer.unref();
  }

  /** Why the session ends, unless a cause was given before (a refusal closes the client, whose close is not the reason). */
  endWith(reason: string): void {
    this.#endReason ??= reason;
  }

  /** The reason an operator's or the shutdown's end gives. */
  endFor(cause: EndCause): void {
    this.endWith(cause === 'shutdown' ? 'edge shutting down' : 'ended by an administrator');
  }

  /** The refusal's reason: an error once logged in, a refusal before. */
  refused(loggedIn: boolean, code: string | number, message: string): void {
    this.endWith(loggedIn ? `error ${code}: ${message}` : `refused ${code}: ${message}`);
  }

  /** The login is over (or the session is): its deadline no longer applies. */
  loggedIn(): void {
    if (this.#loginTimer === null) return;
    clearTimeout(this.#loginTimer);
    this.#loginTimer = null;
  }

  /** Whether a draining session should end now: still logging in, or idle outside a transaction. */
  drainsNow(phase: { loggingIn: boolean; quiet: boolean; inTransaction: boolean }): boolean {
    return this.draining && (phase.loggingIn || (phase.quiet && !phase.inTransaction));
  }

  info(
    id: string,
    who: SessionIdentity,
    phase: { loggingIn: boolean; quiet: boolean; inTransaction: boolean },
  ): SessionInfo {
    return {
      id,
      protocol: this.#protocol,
      ...who,
      clientAddress: this.clientAddress,
      startedAt: this.#startedAt,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      queries: this.queries,
      state: phase.loggingIn
        ? 'login'
        : !phase.quiet
          ? 'active'
          : phase.inTransaction
            ? 'in-transaction'
            : 'idle',
    };
  }

  /** The session is over: its line goes to the log (and its login deadline is cleared). */
  ended(log: SessionLog, who: SessionIdentity): void {
    this.loggedIn();
    log.ended({
      protocol: this.#protocol,
      ...who,
      client: this.clientAddress,
      durationMs: performance.now() - this.#acceptedAt,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      queries: this.queries,
      reason: this.#endReason ?? 'edge closed the session',
    });
  }
}
