// Starts a real Postgres edge on a free loopback port for a test, with a silent logger.
import type { AddressInfo } from 'node:net';
import type { ConnectionCounts } from '../../src/index.ts';
import {
  EdgeRuntime,
  loadSqlParser,
  PgEdgeServer,
  type AddressGuard,
  type EdgeConfigSource,
  type EdgeLogger,
} from '../../src/index.ts';

export interface RunningEdge {
  host: '127.0.0.1';
  port: number;
  runtime: EdgeRuntime;
  server: PgEdgeServer;
  close(): Promise<void>;
}

const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

export async function startEdge(options: {
  source: EdgeConfigSource;
  /** PEM certificate and key: the edge then answers SSLRequest with TLS. */
  tls?: { cert: string | Buffer; key: string | Buffer } | null;
  logger?: EdgeLogger;
  /** The origin address check (ORIGIN_PRIVATE); none by default. */
  guard?: AddressGuard | null;
  /** Connection caps and login deadline; the edge's defaults otherwise. */
  connections?: ConnectionCounts;
  loginTimeoutMs?: number;
}): Promise<RunningEdge> {
  await loadSqlParser();
  const runtime = new EdgeRuntime({
    source: options.source,
    cacheMaxBytes: 16 * 1024 * 1024,
    guard: options.guard ?? null,
    logger: options.logger ?? silent,
  });
  const server = new PgEdgeServer({
    runtime,
    host: '127.0.0.1',
    port: 0,
    tls: options.tls ?? null,
    connections: options.connections,
    loginTimeoutMs: options.loginTimeoutMs,
  });
  let address: AddressInfo;
  try {
    address = await server.listen();
  } catch (error) {
    runtime.close();
    throw error;
  }
  return {
    host: '127.0.0.1',
    port: address.port,
    runtime,
    server,
    async close() {
      await server.close();
      runtime.close();
    },
  };
}
