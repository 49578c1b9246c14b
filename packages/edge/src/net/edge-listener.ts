// What every protocol's edge listener does the same way: admit connections within the caps
// (EDGE_MAX_CONNECTIONS…, one budget for both protocols), hand each to a session of its protocol,
// refuse the rest in the protocol's own words, survive accept failures (out of descriptors), keep
// the sessions an operator may list and end, and on shutdown stop accepting and drain them.
import net from 'node:net';
import type { ControlledSession, SessionIds, SessionInfo } from '../core/session-control.ts';
import { ConnectionCounts, type Refusal } from '../limits/connection-counts.ts';
import { defaultConnectionCaps, readFileLimit } from '../limits/file-limit.ts';
import type { EdgeLogger } from '../runtime.ts';

export interface EdgeListenerOptions<S extends ControlledSession> {
  host: string;
  port: number;
  reusePort?: boolean;
  /** Counts shared with the edge's other listeners and threads; default: this listener alone. */
  connections?: ConnectionCounts;
  logger: EdgeLogger;
  /** For log lines: 'Postgres' or 'MySQL'. */
  protocol: string;
  /** Session ids, shared with the thread's other listener. */
  ids: SessionIds;
  /** Starts a session on an admitted socket; `closed` must be called when it ends. */
  open(socket: net.Socket, closed: () => void, id: number): S;
  /** Answers a socket over a cap in the protocol's words, and ends it. */
  refuse(socket: net.Socket, refusal: Exclude<Refusal, null>): void;
}

// A flood must not flood the log too: refusals and accept failures are logged once per interval.
const LOG_INTERVAL_MS = 10_000;

export class EdgeListener<S extends ControlledSession> {
  readonly #options: EdgeListenerOptions<S>;
  readonly #sessions = new Set<S>();
  readonly #server: net.Server;
  readonly connections: ConnectionCounts;
  #refusedSinceLog = 0;
  // Since the listener started, by the cap that refused (Prometheus counters).
  readonly #refused: Record<Exclude<Refusal, null>, number> = { total: 0, address: 0 };
  #lastRefusalLog = 0;
  #lastAcceptErrorLog = 0;
  #draining = false;
  #emptied: (() => void) | null = null;

  constructor(options: EdgeListenerOptions<S>) {
    this.#options = options;
    this.connections =
      options.connections ??
      new ConnectionCounts(ConnectionCounts.buffer(1), 0, defaultConnectionCaps(readFileLimit()));
    this.#server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket));
  }

  get refused(): Readonly<Record<Exclude<Refusal, null>, number>> {
    return this.#refused;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  sessions(): SessionInfo[] {
    return [...this.#sessions].map((session) => session.info());
  }

  /** Ends the session with this id (with the protocol's error); false when it is not here. */
  kill(id: string): boolean {
    for (const session of this.#sessions) {
      if (session.id !== id) continue;
      session.end('killed');
      return true;
    }
    return false;
  }

  /**
   * Stops accepting at once and asks every session to end as soon as it is idle; resolves when
   * none is left (see `close` for those still open when the caller stops waiting).
   */
  drain(): Promise<void> {
    this.#draining = true;
    this.#server.close();
    for (const session of [...this.#sessions]) session.drain();
    if (this.#sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#emptied = resolve;
    });
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      const { host, port, reusePort = false } = this.#options;
      this.#server.listen({ host, port, reusePort }, () => {
        this.#server.off('error', reject);
        // Out of descriptors (EMFILE), accept fails: that connection is lost, the edge goes on.
        this.#server.on('error', (error) => this.#acceptFailed(error));
        resolve(this.#server.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Stops accepting, ends every session with the protocol's shutdown error (never a bare close),
   * and resolves once the listener is closed.
   */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#server.listening) this.#server.close(() => resolve());
      else resolve();
      for (const session of [...this.#sessions]) session.end('shutdown');
    });
  }

  #accept(socket: net.Socket): void {
    // Accepted by the kernel before the listener closed: the drain has begun, it is not served.
    if (this.#draining) {
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '';
    const refusal = this.connections.admit(address);
    if (refusal !== null) {
      socket.on('error', () => socket.destroy());
      this.#options.refuse(socket, refusal);
      this.#logRefusal(refusal, address);
      return;
    }
    // A session may end while it is being made (a socket already closed): then it is not kept.
    let open = true;
    const made: { session?: S } = {};
    made.session = this.#options.open(
      socket,
      () => {
        if (!open) return;
        open = false;
        if (made.session !== undefined) this.#sessions.delete(made.session);
        this.connections.release(address);
        if (this.#sessions.size === 0) this.#emptied?.();
      },
      this.#options.ids.next(),
    );
    if (open) this.#sessions.add(made.session);
  }

  #logRefusal(refusal: Exclude<Refusal, null>, address: string): void {
    this.#refused[refusal] += 1;
    this.#refusedSinceLog += 1;
    const now = Date.now();
    if (now - this.#lastRefusalLog < LOG_INTERVAL_MS) return;
    this.#options.logger.warn(
      {
        refused: this.#refusedSinceLog,
        cap: refusal,
        address,
        connections: this.connections.total,
        protocol: this.#options.protocol,
      },
      refusal === 'total'
        ? 'edge connections refused: EDGE_MAX_CONNECTIONS reached'
        : 'edge connections refused: EDGE_MAX_CONNECTIONS_PER_ADDRESS reached',
    );
    this.#refusedSinceLog = 0;
    this.#lastRefusalLog = now;
  }

  #acceptFailed(error: NodeJS.ErrnoException): void {
    const now = Date.now();
    if (now - this.#lastAcceptErrorLog < LOG_INTERVAL_MS) return;
    this.#lastAcceptErrorLog = now;
    this.#options.logger.error(
      { err: error, code: error.code, protocol: this.#options.protocol },
      'the edge could not accept a connection (open-file limit reached?)',
    );
  }
}
