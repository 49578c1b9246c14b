// Starts Edgegate: config → store → migrations → edge → HTTP listener → admin socket. Which
// planes run is the caller's choice (`edgegate start` both, `server` or `edge` one).
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { buildApp } from './app.ts';
import { migrateToLatest, openStore, type Store } from './db/store.ts';
import { createLogger } from './logger.ts';
import { lockDataDir } from './admin/data-dir-lock.ts';
import { startAdminSocket } from './admin/socket.ts';
import { createKeyring } from './connect/keyring.ts';
import { Redis } from 'ioredis';
import { createRedisRateLimitStore } from './services/rate-limit.ts';
import { listAppliedMigrations } from './db/migrations/status.ts';
import { startEdge, type RunningEdge } from './edge/start-edge.ts';
import { startEdgeStatusServer } from './edge/status-server.ts';
import { createMetricsRegistry } from './plugins/metrics.ts';

export type Planes = 'all' | 'server' | 'edge';

export interface RunningServer {
  /** The control plane; null when only the edge runs. */
  app: FastifyInstance | null;
  /** The Postgres edge; null when only the control plane runs. */
  edge: RunningEdge | null;
  store: Store;
  url: string;
  logger: Logger;
  /** Stops accepting, lets in-flight requests finish (at most `graceMs`), then closes the store. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(
  config: Config,
  options: { logger?: Logger; planes?: Planes } = {},
): Promise<RunningServer> {
  const planes = options.planes ?? 'all';
  const logger = options.logger ?? createLogger(config.logLevel);
  const unlock = config.databaseUrl ? () => {} : lockDataDir(config.dataDir);
  let store: Store | undefined;
  let edge: RunningEdge | null = null;
  let redis: Redis | undefined;
  try {
    store = await openStore({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      onIdleError: (error) =>
        logger.warn({ err: error }, 'an idle store connection failed; it will be replaced'),
    });
    await migrateToLatest(store.db);
    const migrations = await listAppliedMigrations(store.db);
    const registry = createMetricsRegistry();
    if (planes !== 'server') edge = await startEdge(config, store, logger, registry);
    if (planes === 'edge')
      return await edgeOnly(config, store, edge as RunningEdge, registry, logger, unlock);
    redis = config.redisUrl ? await connectRedis(config.redisUrl, logger) : undefined;
    const app = await buildApp({
      config,
      store,
      logger,
      metricsRegistry: registry,
      ...(edge ? { edge } : {}),
      ...(redis
        ? {
            redis,
            rateLimitStore: createRedisRateLimitStore(redis, {
              onError: (error) =>
                logger.warn(
                  { err: error },
                  'Redis is unavailable: a throttle let a request through',
                ),
            }),
          }
        : {}),
    });
    await app.listen({ port: config.port, host: config.host });
    // With Postgres the CLI reaches the store itself; the socket serves the embedded store only.
    const admin = config.databaseUrl
      ? undefined
      : await startAdminSocket(config.dataDir, store.db, logger, {
          migrations,
          keyring: createKeyring(config.secret, config.previousSecret),
        });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    logger.info(
      { url, publicUrl: config.publicUrl, store: store.kind, secret: config.secretSource },
      `Edgegate control plane listening on ${url}`,
    );
    const opened = store;
    let closing: Promise<void> | undefined;
    const runningEdge = edge;
    return {
      app,
      edge: runningEdge,
      store: opened,
      url,
      logger,
      close(graceMs = 10_000) {
        closing ??= (async () => {
          const deadline = setTimeout(() => app.server.closeAllConnections(), graceMs);
          // Keep-alive sockets that finish a request while we wait become idle; close them then.
          const sweeper = setInterval(() => app.server.closeIdleConnections(), 100);
          try {
            await Promise.all([app.close(), admin?.close(), runningEdge?.close()]);
          } finally {
            clearTimeout(deadline);
            clearInterval(sweeper);
            await opened.close();
            redis?.disconnect();
            unlock();
          }
        })();
        return closing;
      },
    };
  } catch (error) {
    redis?.disconnect();
    await edge?.close();
    await store?.close();
    unlock();
    throw error;
  }
}

// The edge alone: a small HTTP listener on PORT keeps /healthz and /metrics for its operator.
async function edgeOnly(
  config: Config,
  store: Store,
  edge: RunningEdge,
  registry: ReturnType<typeof createMetricsRegistry>,
  logger: Logger,
  unlock: () => void,
): Promise<RunningServer> {
  const status = await startEdgeStatusServer(config.host, config.port, registry);
  logger.info({ url: status.url }, `Edge status (/healthz, /metrics) on ${status.url}`);
  let closing: Promise<void> | undefined;
  return {
    app: null,
    edge,
    store,
    url: status.url,
    logger,
    close() {
      closing ??= (async () => {
        try {
          await Promise.all([edge.close(), status.close()]);
        } finally {
          await store.close();
          unlock();
        }
      })();
      return closing;
    },
  };
}

/**
 * The shared tier: one client for the throttles and the API rate limit. Edgegate checks it
 * answers at start (a wrong REDIS_URL should stop it, not silently un-share the limits); later
 * outages fail open while the client reconnects.
 */
async function connectRedis(url: string, logger: Logger): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
  });
  redis.on('error', (error: Error) => logger.warn({ err: error }, 'Redis connection error'));
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new Error(`REDIS_URL: cannot reach Redis (${(error as Error).message})`, {
      cause: error,
    });
  }
  logger.info('Rate limits and throttles are shared through Redis');
  return redis;
}
