// SIGHUP: what a running process applies from settings read again (the log level, the edge's TLS
// certificate and key), and which changed settings wait for a restart; all of it is logged.
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { RunningEdge } from './edge/start-edge.ts';

// The settings a reload compares, by the variable an operator sets; the secrets are compared but
// never shown. The log level and the edge TLS files are applied, not listed.
const RESTART_ONLY: Partial<Record<keyof Config, string>> = {
  port: 'PORT',
  host: 'HOST',
  edgePgPort: 'EDGE_PG_PORT',
  edgeMysqlPort: 'EDGE_MYSQL_PORT',
  edgeMssqlPort: 'EDGE_MSSQL_PORT',
  edgeCacheMaxMb: 'EDGE_CACHE_MAX_MB',
  edgeThreads: 'EDGE_THREADS',
  edgeMaxConnections: 'EDGE_MAX_CONNECTIONS',
  edgeMaxConnectionsPerAddress: 'EDGE_MAX_CONNECTIONS_PER_ADDRESS',
  edgeLoginTimeoutSeconds: 'EDGE_LOGIN_TIMEOUT_SECONDS',
  edgeDrainSeconds: 'EDGE_DRAIN_SECONDS',
  dataDir: 'DATA_DIR',
  databaseUrl: 'DATABASE_URL',
  redisUrl: 'REDIS_URL',
  publicUrl: 'PUBLIC_URL',
  edgeHost: 'EDGE_HOST',
  secret: 'EDGEGATE_SECRET',
  previousSecret: 'EDGEGATE_PREVIOUS_SECRET',
  trustProxy: 'TRUST_PROXY',
  accessTokenTtlSeconds: 'OAUTH_ACCESS_TOKEN_TTL',
  originPrivate: 'ORIGIN_PRIVATE',
  apiRateLimit: 'API_RATE_LIMIT',
  shutdownDelaySeconds: 'SHUTDOWN_DELAY_SECONDS',
  replicationSlotWarnMb: 'REPLICATION_SLOT_WARN_MB',
  metricsMaxCaches: 'METRICS_MAX_CACHES',
};

/** Applies settings read again to the running process; returns (and logs) what changed. */
export function createReload(
  started: Config,
  logger: Logger,
  edge: RunningEdge | null,
): (next: Config) => Promise<string[]> {
  return async (next) => {
    const changes: string[] = [];
    if (next.logLevel !== logger.level) {
      changes.push(`log level ${logger.level} → ${next.logLevel}`);
      logger.level = next.logLevel;
    }
    if (edge !== null) {
      try {
        const tls = await edge.reloadTls(next.edgeTls);
        if (tls) changes.push(tls);
      } catch (error) {
        logger.error(
          { err: error },
          `reload: the edge TLS certificate or key cannot be used (${(error as Error).message}); new sessions keep the previous ones`,
        );
      }
    }
    const waiting = Object.entries(RESTART_ONLY)
      .filter(([key]) => !sameValue(started[key as keyof Config], next[key as keyof Config]))
      .map(([, name]) => name);
    if (waiting.length > 0) {
      logger.warn(
        { settings: waiting },
        `reload: ${waiting.join(', ')} changed; this takes a restart, the process keeps the values it started with`,
      );
    }
    logger.info(
      { changes },
      changes.length > 0 ? `reloaded: ${changes.join('; ')}` : 'reloaded: nothing changed',
    );
    return changes;
  };
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
