// Starts Edgegate: config → store → migrations → edge → HTTP listener → admin socket. Which
// planes run is the caller's choice (`edgegate start` both, `server` or `edge` one).
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { buildApp } from './app.ts';
import { migrateToLatest, openStore, type Store } from './db/store.ts';
import { createLogger } from './logger.ts';
import { lockDataDir } from './admin/data-dir-lock.ts';
import { AdminSocketBusyError, startAdminSocket } from './admin/socket.ts';
import { createKeyring } from './connect/keyring.ts';
import { Redis } from 'ioredis';
import { createRedisRateLimitStore } from './services/rate-limit.ts';
import { guardRedis, RedisUnavailableError, type GuardedRedis } from './services/redis-breaker.ts';
import {
  createReadiness,
  storeAnswers,
  type Readiness,
  type ReadinessCheck,
} from './services/readiness.ts';
import { listAppliedMigrations, migrationStatus } from './db/migrations/status.ts';
import { startEdge, type RunningEdge } from './edge/start-edge.ts';
import { startEdgeStatusServer } from './edge/status-server.ts';
import { createMetricsRegistry, registerDependencyMetrics } from './plugins/metrics.ts';
import { createReload } from './reload.ts';
import { startSlotWarnings } from './services/replication-warnings.ts';

export type Planes = 'all' | 'server' | 'edge';

export interface RunningServer {
  /** The control plane; null when only the edge runs. */
  app: FastifyInstance | null;
  /** The Postgres edge; null when only the control plane runs. */
  edge: RunningEdge | null;
  store: Store;
  url: string;
  logger: Logger;
  /** What /readyz checks; `drain()` makes it answer 503 ahead of `close` (the pre-stop delay). */
  readiness: Readiness;
  /**
   * What shutting down does with work in progress in this kind of process, for the log line;
   * `drainSeconds` is the edge's drain (0: its sessions end at once).
   */
  shutdownNote(drainSeconds: number): string;
  /**
   * SIGTERM: the edge (if any) stops accepting at once and lets its sessions finish for
   * EDGE_DRAIN_SECONDS; `close` then waits for that drain.
   */
  drainEdge(): void;
  /**
   * Applies what can change while running (SIGHUP): the log level and the edge's TLS certificate
   * and key (new sessions get them). Logs what changed and returns it.
   */
  reload(next: Config): Promise<string[]>;
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
  let redis: GuardedRedis | undefined;
  try {
    store = await openStore({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      onIdleError: (error) =>
        logger.warn({ err: error }, 'an idle store connection failed; it will be replaced'),
    });
    // An edge node only reads the store (and records its change-stream followers' status): it
    // never needs DDL rights, so it waits for a control plane or `edgegate migrate` instead.
    if (planes === 'edge') await awaitSchema(store.db, logger);
    else await migrateToLatest(store.db);
    const migrations = await listAppliedMigrations(store.db);
    const registry = createMetricsRegistry();
    if (planes !== 'server') edge = await startEdge(config, store, logger, registry);
    redis = config.redisUrl
      ? await connectRedis(config.redisUrl, logger, planes === 'edge' ? 'edge' : 'control plane')
      : undefined;
    const readiness = createReadiness(readinessChecks(store, edge, redis));
    const runningEdge = edge;
    const sharedTier = redis;
    registerDependencyMetrics(registry, {
      ...(runningEdge ? { changeFeedConnected: () => runningEdge.changeFeedConnected() } : {}),
      ...(sharedTier ? { redisAnswers: () => sharedTier.state === 'closed' } : {}),
      ...(runningEdge?.cluster ? { clusterNotServing: runningEdge.cluster.notServingKind } : {}),
    });
    const reload = createReload(config, logger, edge);
    // The admin socket serves the embedded store's commands (with Postgres the CLI reaches the
    // store itself), and the sessions of an edge in this process (`edgegate sessions`).
    const openAdminSocket = async () => {
      if (config.databaseUrl && runningEdge === null) return undefined;
      try {
        return await startAdminSocket(config.dataDir, (store as Store).db, logger, {
          migrations,
          keyring: createKeyring(config.secret, config.previousSecret),
          demo: {
            originPolicy: { privateRanges: config.originPrivate },
            edge: runningEdge
              ? {
                  host: config.edgeHost,
                  pgPort: runningEdge.port,
                  mysqlPort: runningEdge.mysqlPort,
                }
              : null,
          },
          edge: runningEdge,
        });
      } catch (error) {
        // With a Postgres store the socket only serves `edgegate sessions`: a data directory that
        // is missing or not writable (a container's read-only file system) costs that, not the node.
        if (!config.databaseUrl) throw error;
        const why =
          error instanceof AdminSocketBusyError
            ? error.message
            : `the admin socket in ${config.dataDir} cannot be opened (${(error as Error).message})`;
        logger.warn(`${why}; \`edgegate sessions\` cannot reach this process`);
        return undefined;
      }
    };
    if (planes === 'edge') {
      const status = await startEdgeStatusServer(config.host, config.port, registry, readiness);
      logger.info(
        { url: status.url },
        `Edge status (/healthz, /readyz, /metrics) on ${status.url}`,
      );
      const admin = await openAdminSocket().catch(async (error: unknown) => {
        await status.close();
        throw error;
      });
      return edgeOnly(store, edge as RunningEdge, status, readiness, reload, logger, async () => {
        await admin?.close();
        redis?.disconnect();
        unlock();
      });
    }
    const app = await buildApp({
      config,
      store,
      logger,
      metricsRegistry: registry,
      readiness,
      ...(edge ? { edge } : {}),
      ...(redis
        ? {
            rateLimitStore: createRedisRateLimitStore(redis, {
              // While the breaker is open its opening was logged once: no line per request.
              onError: (error) => {
                if (!(error instanceof RedisUnavailableError))
                  logger.warn(
                    { err: error },
                    'Redis is unavailable: a throttle let a request through',
                  );
              },
            }),
          }
        : {}),
    });
    if (redis) logger.info('Rate limits and throttles are shared through Redis');
    if (runningEdge === null && !config.edgeHostSet) {
      logger.warn(
        {
          edgeHost: config.edgeHost,
          edgePgPort: config.edgePgPort,
          edgeMysqlPort: config.edgeMysqlPort,
        },
        `EDGE_HOST is not set and this control plane runs no edge of its own: the connection strings it hands out name ${config.edgeHost}:${config.edgePgPort} (Postgres) and ${config.edgeHost}:${config.edgeMysqlPort} (MySQL); set EDGE_HOST, EDGE_PG_PORT, EDGE_MYSQL_PORT and the edge TLS settings to how applications reach your edge nodes`,
      );
    }
    await app.listen({ port: config.port, host: config.host });
    const admin = await openAdminSocket();
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    logger.info(
      { url, publicUrl: config.publicUrl, store: store.kind, secret: config.secretSource },
      `Edgegate control plane listening on ${url}`,
    );
    const opened = store;
    const stopSlotWarnings = startSlotWarnings(store.db, {
      boundBytes: config.replicationSlotWarnMb * 1024 * 1024,
      logger,
    });
    let closing: Promise<void> | undefined;
    return {
      app,
      edge: runningEdge,
      store: opened,
      url,
      logger,
      readiness,
      shutdownNote: (drainSeconds) =>
        runningEdge
          ? `finishing in-flight HTTP requests (at most 10 s); ${edgeShutdownNote(drainSeconds)}`
          : 'finishing in-flight requests (at most 10 s)',
      drainEdge: () => void runningEdge?.drain(),
      reload,
      close(graceMs = 10_000) {
        closing ??= (async () => {
          stopSlotWarnings();
          const deadline = setTimeout(() => app.server.closeAllConnections(), graceMs);
          // Keep-alive sockets that finish a request while we wait become idle; close them then.
          const sweeper = setInterval(() => app.server.closeIdleConnections(), 100);
          try {
            // A request stuck on the store (a lock wait, a connection Postgres dropped mid-reply)
            // keeps its handler running after its socket is closed; it is not waited for longer.
            await Promise.all([
              settledWithin(
                Promise.all([app.close(), admin?.close()]),
                graceMs + STORE_CLOSE_MS,
                () => logger.warn('requests still running at shutdown were abandoned'),
              ),
              // The edge's drain (if one runs) is bounded by EDGE_DRAIN_SECONDS, its closing by
              // its own limits; the store stays open until both are over.
              runningEdge?.close(),
            ]);
          } finally {
            clearTimeout(deadline);
            clearInterval(sweeper);
            await closeStore(opened, logger);
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

function edgeShutdownNote(drainSeconds: number): string {
  return drainSeconds > 0
    ? `the edge stops accepting now and lets open sessions finish for up to ${drainSeconds} s (EDGE_DRAIN_SECONDS): idle ones end now, busy ones once idle, the rest with 57P01 / MySQL 1053`
    : 'the edge stops accepting and ends its open sessions at once with 57P01 / MySQL 1053';
}

/** How long shutdown waits for the store's connections to close before it gives up on them. */
const STORE_CLOSE_MS = 2_000;

/**
 * Closes the store, but waits at most STORE_CLOSE_MS: a pool waits for every connection handed out
 * to come back, and one stuck on the server (a lock wait, a reply that never comes) would hold
 * the process forever. The process exits right after, which drops what is left.
 */
async function closeStore(store: Store, logger: Logger): Promise<void> {
  await settledWithin(store.close(), STORE_CLOSE_MS, () =>
    logger.warn(`store connections did not close within ${STORE_CLOSE_MS} ms; leaving them`),
  );
}

/** Waits for `work` to settle (an error is logged), or for `ms`, whichever comes first. */
async function settledWithin(work: Promise<unknown>, ms: number, onTimeout: () => void) {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    if ((await Promise.race([work, timedOut])) === 'timeout') onTimeout();
  } finally {
    clearTimeout(timer);
  }
}

// The edge alone: a small HTTP listener on PORT keeps /healthz, /readyz and /metrics for its operator.
function edgeOnly(
  store: Store,
  edge: RunningEdge,
  status: { url: string; close(): Promise<void> },
  readiness: Readiness,
  reload: RunningServer['reload'],
  logger: Logger,
  release: () => Promise<void>,
): RunningServer {
  let closing: Promise<void> | undefined;
  return {
    app: null,
    edge,
    store,
    url: status.url,
    logger,
    readiness,
    shutdownNote: edgeShutdownNote,
    drainEdge: () => void edge.drain(),
    reload,
    close() {
      closing ??= (async () => {
        try {
          // /readyz keeps answering 503 while the edge drains.
          await edge.close();
          await status.close();
        } finally {
          await closeStore(store, logger);
          await release();
        }
      })();
      return closing;
    },
  };
}

/**
 * Ready means: the store answers; with an edge, its listener is up (it is, once started) and the
 * store's change feed is connected, so cache changes reach it; with REDIS_URL, Redis answers.
 */
function readinessChecks(
  store: Store,
  edge: RunningEdge | null,
  redis: GuardedRedis | undefined,
): Record<string, ReadinessCheck> {
  const checks: Record<string, ReadinessCheck> = { store: storeAnswers(store.db) };
  if (edge !== null) {
    checks.changeFeed = async () => {
      if (!edge.changeFeedConnected())
        throw new Error('the store change feed (LISTEN) is reconnecting');
    };
  }
  const cluster = edge?.cluster ?? null;
  if (cluster !== null) {
    checks.cluster = async () => {
      const reason = cluster.notServingReason();
      if (reason !== null) {
        throw new Error(`not serving from the cache (relaying to the origin): ${reason}`);
      }
    };
  }
  if (redis !== undefined) {
    checks.redis = async () => {
      try {
        await redis.ping();
      } catch (error) {
        throw new Error(`Redis does not answer (${(error as Error).message})`, { cause: error });
      }
    };
  }
  return checks;
}

/**
 * The shared tier: one client for the throttles and the API rate limit. A control plane checks it
 * answers at start (a wrong REDIS_URL should stop it, not silently un-share the limits); an edge,
 * which only reports it in /readyz for now, starts anyway and says it is not ready. Later outages
 * fail open while the client reconnects.
 */
async function connectRedis(
  url: string,
  logger: Logger,
  role: 'control plane' | 'edge',
): Promise<GuardedRedis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    // A Redis that accepts the connection but does not answer (paused, overloaded, a black hole
    // behind a proxy) fails a command after this instead of holding the request.
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    // While Redis is away a command fails at once (and the throttles fail open) instead of
    // waiting in the offline queue for reconnect attempts: that wait made each request ~20 s.
    enableOfflineQueue: false,
  });
  redis.on('error', (error: Error) => logger.warn({ err: error }, 'Redis connection error'));
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    const message = `REDIS_URL: cannot reach Redis (${(error as Error).message})`;
    if (role === 'control plane') {
      redis.disconnect();
      throw new Error(message, { cause: error });
    }
    logger.warn(`${message}; /readyz says not ready until it answers`);
  }
  const consequence =
    role === 'control plane' ? 'limits and throttles fail open' : '/readyz says not ready';
  return guardRedis(redis, {
    onChange: (state, error) =>
      state === 'open'
        ? logger.warn({ err: error }, `Redis is unavailable: ${consequence} until it answers again`)
        : logger.info('Redis answers again'),
  });
}

/** Bounds on the shared tier: connecting, and each command once connected. */
export const REDIS_CONNECT_TIMEOUT_MS = 2_000;
export const REDIS_COMMAND_TIMEOUT_MS = 500;

const SCHEMA_POLL_MS = 2_000;
const SCHEMA_LOG_EVERY_MS = 30_000;

/**
 * Waits until the store holds every migration this release knows. Logs at once, then every 30
 * seconds, what is missing and what applies it; a store that cannot be reached fails the start.
 */
async function awaitSchema(db: Store['db'], logger: Logger): Promise<void> {
  let lastLog = 0;
  for (;;) {
    const { pending } = await migrationStatus(db);
    if (pending.length === 0) return;
    if (Date.now() - lastLog >= SCHEMA_LOG_EVERY_MS) {
      lastLog = Date.now();
      logger.warn(
        { pending },
        `The store's schema is ${pending.length} migration(s) behind this edge (first: ${pending[0]}); ` +
          'an edge never migrates the store: start a control plane (`edgegate server`) or run ' +
          '`edgegate migrate` on this DATABASE_URL. Waiting.',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, SCHEMA_POLL_MS));
  }
}
