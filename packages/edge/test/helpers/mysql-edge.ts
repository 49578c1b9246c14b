// Starts a real MySQL edge on a free loopback port for a test, with a silent logger, in front of
// the machine's MariaDB (127.0.0.1:3306) unless told otherwise.
import type { ConnectionCounts, EdgeCacheConfig, EdgeLogger } from '../../src/index.ts';
import { EdgeRuntime, MysqlEdgeServer } from '../../src/index.ts';
import { StaticConfigSource } from './static-source.ts';

export interface RunningMysqlEdge {
  host: '127.0.0.1';
  port: number;
  runtime: EdgeRuntime;
  source: StaticConfigSource;
  close(): Promise<void>;
}

const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

/** A MariaDB cache on the machine's server, caching every read for a minute. */
export function mariadbCache(overrides: Partial<EdgeCacheConfig> = {}): EdgeCacheConfig {
  return {
    id: 'cch_mysql',
    type: 'mariadb',
    hostname: '127.0.0.1',
    port: 3306,
    defaultMode: 'auto',
    defaultTtlSeconds: 60,
    originTls: 'disable',
    rules: [],
    ...overrides,
  };
}

export async function startMysqlEdge(
  options: {
    caches?: EdgeCacheConfig[];
    tls?: { cert: string | Buffer; key: string | Buffer } | null;
    logger?: EdgeLogger;
    connections?: ConnectionCounts;
    loginTimeoutMs?: number;
    cacheMaxBytes?: number;
  } = {},
): Promise<RunningMysqlEdge> {
  const source = new StaticConfigSource(options.caches ?? [mariadbCache()]);
  const runtime = new EdgeRuntime({
    source,
    cacheMaxBytes: options.cacheMaxBytes ?? 16 * 1024 * 1024,
    guard: null,
    logger: options.logger ?? silent,
  });
  const server = new MysqlEdgeServer({
    runtime,
    host: '127.0.0.1',
    port: 0,
    tls: options.tls ?? null,
    connections: options.connections,
    loginTimeoutMs: options.loginTimeoutMs,
  });
  try {
    const address = await server.listen();
    return {
      host: '127.0.0.1',
      port: address.port,
      runtime,
      source,
      async close() {
        await server.close();
        runtime.close();
      },
    };
  } catch (error) {
    runtime.close();
    throw error;
  }
}
