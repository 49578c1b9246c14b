// The Postgres edge listener: accepts connections and gives each its own session; closing stops
// accepting and ends every session.
import net from 'node:net';
import tls from 'node:tls';
import type { EdgeRuntime } from '../runtime.ts';
import { PgSession } from './session/session.ts';

export interface PgEdgeServerOptions {
  runtime: EdgeRuntime;
  host: string;
  port: number;
  /** PEM certificate and key: SSLRequest is then answered with TLS. */
  tls: { cert: string | Buffer; key: string | Buffer } | null;
  /** SO_REUSEPORT: other listeners (the edge's other threads) may bind the same port. */
  reusePort?: boolean;
}

export class PgEdgeServer {
  readonly #options: PgEdgeServerOptions;
  readonly #sessions = new Set<PgSession>();
  readonly #server: net.Server;
  readonly #secureContext: tls.SecureContext | null;

  constructor(options: PgEdgeServerOptions) {
    this.#options = options;
    this.#secureContext = options.tls === null ? null : tls.createSecureContext(options.tls);
    this.#server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket));
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      const { host, port, reusePort = false } = this.#options;
      this.#server.listen({ host, port, reusePort }, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as net.AddressInfo);
      });
    });
  }

  /** Stops accepting, ends every session, and resolves once the listener is closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      for (const session of [...this.#sessions]) session.close();
    });
  }

  #accept(socket: net.Socket): void {
    const session = new PgSession(socket, {
      runtime: this.#options.runtime,
      tls: this.#secureContext,
      onClose: (closed) => this.#sessions.delete(closed),
    });
    this.#sessions.add(session);
  }
}
