// The Postgres edge listener: admits connections within the caps and gives each its own session;
// closing stops accepting and ends every session.
import type net from 'node:net';
import tls from 'node:tls';
import type { ConnectionCaps, ConnectionCounts, Refusal } from '../limits/connection-counts.ts';
import { EdgeListener } from '../net/edge-listener.ts';
import { SessionIds, type SessionInfo } from '../core/session-control.ts';
import { endSocket } from '../net/end-socket.ts';
import type { EdgeRuntime } from '../runtime.ts';
import * as codes from './protocol/codes.ts';
import * as serialize from './protocol/serializer.ts';
import { PgSession } from './session/session.ts';

export interface PgEdgeServerOptions {
  runtime: EdgeRuntime;
  host: string;
  port: number;
  /** PEM certificate and key: SSLRequest is then answered with TLS. */
  tls: { cert: string | Buffer; key: string | Buffer } | null;
  /** SO_REUSEPORT: other listeners (the edge's other threads) may bind the same port. */
  reusePort?: boolean;
  /**
   * Counts connections against the caps (EDGE_MAX_CONNECTIONS…), shared by the edge's threads;
   * default: this listener alone, with caps derived from the open-file limit.
   */
  connections?: ConnectionCounts;
  /** Startup and authentication must be over within this (EDGE_LOGIN_TIMEOUT_SECONDS); 15 s. */
  loginTimeoutMs?: number;
  /** Session ids, shared with the thread's MySQL listener (default: this listener's own). */
  ids?: SessionIds;
}

export const DEFAULT_LOGIN_TIMEOUT_MS = 15_000;

/** Connections refused since a listener started, by the cap that refused them. */
export type RefusalCounts = Record<Exclude<Refusal, null>, number>;

// SQLSTATE too_many_connections, what Postgres answers past max_connections.
const TOO_MANY_CONNECTIONS = '53300';
// A refused client's first packet is awaited this long, by at most this many sockets per listener.
const REFUSAL_WAIT_MS = 1000;
const MAX_WAITING_REFUSALS = 256;
const ENCRYPTION_REQUEST_BYTES = 8;

export class PgEdgeServer {
  readonly #listener: EdgeListener<PgSession>;
  readonly #refusals = new Map<string, Buffer>();
  // Replaced on reload (SIGHUP): sessions accepted afterwards negotiate with the new certificate.
  #secureContext: tls.SecureContext | null;
  #waitingRefusals = 0;

  constructor(options: PgEdgeServerOptions) {
    this.#secureContext = options.tls === null ? null : tls.createSecureContext(options.tls);
    this.#listener = new EdgeListener({
      host: options.host,
      port: options.port,
      reusePort: options.reusePort,
      connections: options.connections,
      logger: options.runtime.logger,
      protocol: 'Postgres',
      ids: options.ids ?? new SessionIds(),
      open: (socket, closed, id) =>
        new PgSession(socket, {
          runtime: options.runtime,
          tls: this.#secureContext,
          loginTimeoutMs: options.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
          id,
          onClose: closed,
        }),
      refuse: (socket, refusal) => this.#refuse(socket, refusal),
    });
  }

  /** The counts this listener admits against (another listener of the edge may share them). */
  get connections(): ConnectionCounts {
    return this.#listener.connections;
  }

  /** New sessions use this certificate and key; throws (keeping the old ones) if they are unusable. */
  setTls(pem: { cert: string | Buffer; key: string | Buffer }): void {
    this.#secureContext = tls.createSecureContext(pem);
  }

  /** Connections refused since the listener started, by the cap that refused them. */
  get refused(): Readonly<RefusalCounts> {
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

  // Over a cap: Postgres' own answer, and no origin connection. It is sent when the client's first
  // packet arrives (within a second), after declining SSLRequest and GSSENCRequest: libpq shows
  // an error sent in the middle of that exchange only as "server sent an error response during SSL
  // exchange". Past MAX_WAITING_REFUSALS waiting, or with no packet in time, it is sent at once.
  #refuse(socket: net.Socket, refusal: Exclude<Refusal, null>): void {
    const message = this.#refusal(refusal);
    if (this.#waitingRefusals >= MAX_WAITING_REFUSALS) endSocket(socket, message);
    else this.#refuseAfterFirstPacket(socket, message);
  }

  #refuseAfterFirstPacket(socket: net.Socket, message: Buffer): void {
    this.#waitingRefusals += 1;
    // libpq may ask for GSSAPI encryption, then for TLS: each is declined once.
    let declined = 0;
    let waiting = true;
    const stopWaiting = (): void => {
      if (!waiting) return;
      waiting = false;
      this.#waitingRefusals -= 1;
      clearTimeout(timer);
      socket.removeAllListeners('data');
    };
    const answer = (): void => {
      stopWaiting();
      endSocket(socket, message);
    };
    const timer = setTimeout(answer, REFUSAL_WAIT_MS);
    timer.unref();
    socket.once('close', stopWaiting);
    socket.on('data', (chunk: Buffer) => {
      if (declined < 2 && isEncryptionRequest(chunk)) {
        declined += 1;
        socket.write(serialize.sslResponse(false));
        if (chunk.length === ENCRYPTION_REQUEST_BYTES) return;
      }
      answer();
    });
  }

  #refusal(refusal: Exclude<Refusal, null>): Buffer {
    let message = this.#refusals.get(refusal);
    if (message === undefined) {
      const caps: ConnectionCaps = this.#listener.connections.caps;
      message = serialize.errorResponse({
        severity: 'FATAL',
        code: TOO_MANY_CONNECTIONS,
        message:
          refusal === 'total'
            ? `sorry, too many clients already: the edge holds its maximum of ${caps.maxConnections} connections`
            : `sorry, too many connections from your address: at most ${caps.maxPerAddress} per address`,
      });
      this.#refusals.set(refusal, message);
    }
    return message;
  }
}

// An SSLRequest or GSSENCRequest: length 8, then the request code.
function isEncryptionRequest(chunk: Buffer): boolean {
  if (
    chunk.length < ENCRYPTION_REQUEST_BYTES ||
    chunk.readInt32BE(0) !== ENCRYPTION_REQUEST_BYTES
  ) {
    return false;
  }
  const code = chunk.readInt32BE(4);
  return code === codes.SSLRequest || code === codes.GSSENCRequest;
}
