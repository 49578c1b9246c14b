// The MySQL/MariaDB edge listener: admits connections within the caps the Postgres edge counts
// against too (one budget per edge), gives each its own session and connection id, and closes them
// all when it stops.
import type net from 'node:net';
import tls from 'node:tls';
import type { ConnectionCounts, Refusal } from '../limits/connection-counts.ts';
import { EdgeListener } from '../net/edge-listener.ts';
import { SessionIds, type SessionInfo } from '../core/session-control.ts';
import { endSocket } from '../net/end-socket.ts';
import { DEFAULT_LOGIN_TIMEOUT_MS } from '../pg/server.ts';
import type { EdgeRuntime } from '../runtime.ts';
import { serialize } from './protocol/index.ts';
import { MysqlSession } from './session/session.ts';

export interface MysqlEdgeServerOptions {
  runtime: EdgeRuntime;
  host: string;
  port: number;
  /** PEM certificate and key: the greeting then offers CLIENT_SSL. */
  tls: { cert: string | Buffer; key: string | Buffer } | null;
  reusePort?: boolean;
  connections?: ConnectionCounts;
  loginTimeoutMs?: number;
  /** Which edge thread this is: connection ids carry it, so they are unique across threads. */
  threadIndex?: number;
  /** Session ids (the connection ids), shared with the thread's Postgres listener. */
  ids?: SessionIds;
}

// MySQL's answer past max_connections, sent instead of the greeting.
const ER_CON_COUNT_ERROR = 1040;

export class MysqlEdgeServer {
  readonly #listener: EdgeListener<MysqlSession>;
  // Replaced on reload (SIGHUP): sessions accepted afterwards negotiate with the new certificate.
  #secureContext: tls.SecureContext | null;

  constructor(options: MysqlEdgeServerOptions) {
    this.#secureContext = options.tls === null ? null : tls.createSecureContext(options.tls);
    this.#listener = new EdgeListener({
      host: options.host,
      port: options.port,
      reusePort: options.reusePort,
      connections: options.connections,
      logger: options.runtime.logger,
      protocol: 'MySQL',
      // Edge connection ids are 2^30 and up (origins count theirs from 1), unique across threads.
      ids: options.ids ?? new SessionIds(options.threadIndex),
      open: (socket, closed, id) => {
        socket.on('error', () => socket.destroy());
        return new MysqlSession(socket, {
          runtime: options.runtime,
          tls: this.#secureContext,
          loginTimeoutMs: options.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
          connectionId: id,
          onClose: closed,
        });
      },
      refuse: (socket, refusal) => this.#refuse(socket, refusal),
    });
  }

  /** New sessions use this certificate and key; throws (keeping the old ones) if they are unusable. */
  setTls(pem: { cert: string | Buffer; key: string | Buffer }): void {
    this.#secureContext = tls.createSecureContext(pem);
  }

  get refused(): Readonly<Record<'total' | 'address', number>> {
    return this.#listener.refused;
  }

  get sessionCount(): number {
    return this.#listener.sessionCount;
  }

  sessions(): SessionInfo[] {
    return this.#listener.sessions();
  }

  /** Ends the session with this id; false when this listener does not hold it. */
  kill(id: string): boolean {
    return this.#listener.kill(id);
  }

  /** Stops accepting and ends each session once it is idle; resolves when none is left. */
  drain(): Promise<void> {
    return this.#listener.drain();
  }

  listen(): Promise<net.AddressInfo> {
    return this.#listener.listen();
  }

  /** Stops accepting, ends every session (57P01 / 1053), and resolves once the listener is closed. */
  close(): Promise<void> {
    return this.#listener.close();
  }

  // Over a cap: MySQL's own answer in place of the greeting, and no origin connection.
  #refuse(socket: net.Socket, refusal: Exclude<Refusal, null>): void {
    const caps = this.#listener.connections.caps;
    endSocket(
      socket,
      serialize.packet(
        0,
        serialize.errPacket({
          code: ER_CON_COUNT_ERROR,
          sqlState: '08004',
          message:
            refusal === 'total'
              ? `Too many connections: the edge holds its maximum of ${caps.maxConnections}`
              : `Too many connections from your address: at most ${caps.maxPerAddress} per address`,
        }),
      ),
    );
  }
}
