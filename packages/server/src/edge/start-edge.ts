// Runs the edge (Postgres and MySQL/MariaDB listeners) against this store: cache configs from it (changes by LISTEN/NOTIFY),
// metric samples written back to it, Prometheus series in the given registry. With EDGE_THREADS
// above 1 the edge runs on that many threads sharing the port; this thread then only feeds them.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  connectionsWithin,
  defaultConnectionCaps,
  EpochTable,
  raiseFileLimit,
  RedisBus,
  RedisCancelDirectory,
  startPgEdge,
  type PgEdge,
  type SessionInfo,
  type StatsDelta,
} from '@edgegate/edge';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import { insertMetricSamples } from '../db/queries/cache-metrics.ts';
import type { Store } from '../db/store.ts';
import { createStoreConfigSource } from '../services/edge-config.ts';
import { originAddressGuard } from '@edgegate/edge/address-ranges';
import { registerEdgeMetrics } from './prometheus.ts';
import { registerReplicationMetrics } from './replication-metrics.ts';
import { createKeyring } from '../connect/keyring.ts';
import { startReplicationFollowers, type Followers } from '../replication/followers.ts';

/** What the control plane reads from a running edge, however many threads it has. */
export type EdgeCounters = Pick<
  PgEdge,
  'allStats' | 'stats' | 'cacheBytes' | 'refused' | 'sharedResults' | 'events' | 'collect'
>;

export interface RunningEdge extends EdgeCounters {
  port: number;
  /** The MySQL/MariaDB edge's port. */
  mysqlPort: number;
  threads: number;
  /** The change-stream followers of caches in replication mode. */
  followers: Followers;
  /** Writes what the edge counted since the last flush to the store. */
  flushMetrics(): Promise<void>;
  /**
   * Reads the TLS certificate and key files again (SIGHUP; `files` may name new ones): new
   * sessions get them, open ones keep theirs. Returns what changed, for the log; throws, changing
   * nothing, when they are unusable or TLS would be turned on or off (that takes a restart).
   */
  reloadTls(files: Config['edgeTls']): Promise<string | null>;
  /** Whether cache changes reach this edge now (the store's change feed is connected). */
  changeFeedConnected(): boolean;
  /**
   * With other edge nodes (REDIS_URL): why this node does not serve from its cache now (null while
   * it does). Null without REDIS_URL.
   */
  cluster: { notServingReason(): string | null; notServingKind(): string | null } | null;
  /** The open sessions, every thread and both protocols. */
  sessions(): Promise<SessionInfo[]>;
  /** Ends a session (57P01 / MySQL 1927); false when this edge holds none with that id. */
  kill(id: string): Promise<boolean>;
  /**
   * SIGTERM: stops accepting on both ports now and lets open sessions finish for
   * EDGE_DRAIN_SECONDS (idle ones end now, busy ones once idle); `close` waits for it.
   */
  drain(): Promise<void>;
  /** Ends the sessions left with 57P01 / MySQL 1053 (after the drain, if one runs). */
  close(): Promise<void>;
}

export const METRICS_FLUSH_MS = 10_000;

export async function startEdge(
  config: Pick<
    Config,
    | 'host'
    | 'edgePgPort'
    | 'edgeMysqlPort'
    | 'edgeTls'
    | 'edgeCacheMaxMb'
    | 'edgeThreads'
    | 'edgeSharedResultsMaxKb'
    | 'redisUrl'
    | 'edgeMaxConnections'
    | 'edgeMaxConnectionsPerAddress'
    | 'edgeLoginTimeoutSeconds'
    | 'edgeDrainSeconds'
    | 'metricsMaxCaches'
    | 'originPrivate'
    | 'secret'
    | 'previousSecret'
    | 'redisUrl'
  >,
  store: Store,
  logger: Logger,
  registry: Registry | null,
): Promise<RunningEdge> {
  const source = createStoreConfigSource(store);
  await source.start();
  const log = logger.child({ component: 'edge' });
  // The process's descriptors are the edge's and the control plane's: raise the limit to the hard
  // one, and derive the caps from it, so that a flood of connections cannot take the descriptors
  // the control plane needs.
  const files = raiseFileLimit();
  const connectionCaps = defaultConnectionCaps(files.limit, {
    ...(config.edgeMaxConnections === null ? {} : { maxConnections: config.edgeMaxConnections }),
    ...(config.edgeMaxConnectionsPerAddress === null
      ? {}
      : { maxPerAddress: config.edgeMaxConnectionsPerAddress }),
  });
  log.info({ fileLimit: files.limit, raisedFrom: files.raisedFrom, ...connectionCaps }, files.note);
  if (files.limit !== null && connectionCaps.maxConnections > connectionsWithin(files.limit)) {
    log.warn(
      { fileLimit: files.limit.soft, maxConnections: connectionCaps.maxConnections },
      'EDGE_MAX_CONNECTIONS is more than the open-file limit leaves room for (two descriptors per connection): a flood can exhaust the descriptors the control plane needs',
    );
  }
  let edge: PgEdge;
  let pem = config.edgeTls === null ? null : readPem(config.edgeTls);
  // With REDIS_URL this node is one of several: writes are shared through Redis, and it serves from
  // its cache only while it is sure to hear the others' (see packages/edge/src/cluster).
  const bus =
    config.redisUrl === undefined
      ? null
      : new RedisBus({
          url: config.redisUrl,
          epochs: new EpochTable(),
          logger: log.child({ component: 'cluster' }),
        });
  const cancelKeys = bus === null ? undefined : new RedisCancelDirectory(() => bus.redis, log);
  if (bus !== null && cancelKeys !== undefined) bus.onSynced(() => cancelKeys.renew());
  const stopCluster = async (): Promise<void> => {
    cancelKeys?.close();
    await bus?.close();
  };
  try {
    edge = await startPgEdge({
      threads: config.edgeThreads,
      host: config.host,
      port: config.edgePgPort,
      mysqlPort: config.edgeMysqlPort,
      tls: pem,
      cacheMaxBytes: config.edgeCacheMaxMb * 1024 * 1024,
      connectionCaps,
      loginTimeoutMs: config.edgeLoginTimeoutSeconds * 1000,
      // The second level of results (caches with sharedResults); each thread opens its own
      // client, and uses it only while the invalidation bus says the node hears every write.
      sharedResults:
        config.redisUrl === undefined
          ? null
          : { redisUrl: config.redisUrl, maxEntryBytes: config.edgeSharedResultsMaxKb * 1024 },
      // The API checked the hostname when the cache was saved; DNS can change since, so the
      // addresses are checked again at every connect, by the same classification.
      guard: {
        module: import.meta.resolve('@edgegate/edge/address-ranges'),
        name: originAddressGuard.name,
        argument: config.originPrivate,
      },
      source,
      logger: log,
      bus,
      ...(cancelKeys === undefined ? {} : { cancelKeys }),
    });
  } catch (error) {
    await stopCluster();
    await source.stop();
    throw error;
  }
  if (registry !== null)
    registerEdgeMetrics(registry, edge, { maxCaches: config.metricsMaxCaches });
  // Caches in replication mode learn of writes from their origin's change stream, here, next to
  // the edge whose epochs they stamp.
  let followers: Followers;
  try {
    followers = await startReplicationFollowers({
      store,
      keyring: createKeyring(config.secret, config.previousSecret),
      subscribe: (listener) => source.subscribe(listener),
      // At once on this node; with other nodes, through the bus too (one node follows a cache:
      // the lease), and the commit is confirmed to the slot once Redis holds it.
      invalidate: (cacheId, tables) => {
        edge.invalidate(cacheId, tables);
        return bus?.publish(cacheId, tables);
      },
      clustered: () => bus !== null,
      hold: (cacheId, delta) => edge.hold(cacheId, delta),
      setViewTables: (cacheId, viewTables) => source.setViewTables(cacheId, viewTables),
      privateRanges: config.originPrivate,
      logger: log.child({ component: 'replication' }),
    });
  } catch (error) {
    await edge.close();
    await stopCluster();
    await source.stop();
    throw error;
  }
  if (registry !== null) registerReplicationMetrics(registry, followers);
  let draining: Promise<void> | undefined;
  const flushMetrics = async (): Promise<void> => {
    await edge.collect();
    const deltas: StatsDelta[] = [];
    for (const stats of edge.allStats()) {
      const delta = stats.drain();
      if (delta !== null) deltas.push(delta);
    }
    await insertMetricSamples(store.db, deltas);
  };
  const timer = setInterval(() => {
    flushMetrics().catch((error: unknown) =>
      log.warn({ err: error }, 'could not write edge metrics to the store'),
    );
  }, METRICS_FLUSH_MS);
  timer.unref();
  log.info(
    {
      port: edge.port,
      mysqlPort: edge.mysqlPort,
      tls: config.edgeTls !== null,
      cacheMaxMb: config.edgeCacheMaxMb,
      threads: edge.threads,
      ...connectionCaps,
      loginTimeoutSeconds: config.edgeLoginTimeoutSeconds,
    },
    `Edgegate edge listening on ${config.host}:${edge.port} (Postgres) and ${config.host}:${edge.mysqlPort} (MySQL/MariaDB)` +
      (edge.threads > 1 ? `, ${edge.threads} threads` : ''),
  );
  return {
    port: edge.port,
    mysqlPort: edge.mysqlPort ?? config.edgeMysqlPort,
    threads: edge.threads,
    allStats: () => edge.allStats(),
    stats: (cacheId) => edge.stats(cacheId),
    cacheBytes: () => edge.cacheBytes(),
    refused: () => edge.refused(),
    sharedResults: () => edge.sharedResults(),
    events: () => edge.events(),
    collect: () => edge.collect(),
    flushMetrics,
    changeFeedConnected: () => source.connected(),
    cluster:
      bus === null
        ? null
        : { notServingReason: () => bus.reason, notServingKind: () => bus.reasonKind },
    async reloadTls(files) {
      if ((files === null) !== (pem === null))
        throw new Error(`turning edge TLS ${files === null ? 'off' : 'on'} takes a restart`);
      if (files === null) return null;
      const next = readPem(files);
      if (pem !== null && next.cert === pem.cert && next.key === pem.key) return null;
      await edge.setTls(next);
      pem = next;
      return `edge TLS certificate reloaded: ${describeCertificate(next.cert)}`;
    },
    followers,
    sessions: () => edge.sessions(),
    kill: (id) => edge.kill(id),
    drain() {
      draining ??= (async () => {
        const started = Date.now();
        await edge.drain(config.edgeDrainSeconds * 1000);
        const left = (await edge.sessions()).length;
        log.info(
          { seconds: Math.round((Date.now() - started) / 100) / 10, left },
          left === 0
            ? 'edge drained: every session ended'
            : `edge drain over (EDGE_DRAIN_SECONDS): ending ${left} session(s) still busy with 57P01 / MySQL 1053`,
        );
      })();
      return draining;
    },
    async close() {
      await draining;
      clearInterval(timer);
      await followers.stop();
      await edge.close();
      await stopCluster();
      await flushMetrics().catch(() => {});
      await source.stop();
    },
  };
}

function readPem(files: NonNullable<Config['edgeTls']>): { cert: string; key: string } {
  return { cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') };
}

/** Subject, expiry and fingerprint of the first certificate of a PEM chain, for the log. */
function describeCertificate(cert: string): string {
  const x509 = new X509Certificate(cert);
  return `${x509.subject.replaceAll('\n', ', ')}, valid until ${x509.validTo}, SHA-256 ${x509.fingerprint256}`;
}
