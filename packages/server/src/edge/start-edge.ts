// Runs the Postgres edge against this store: cache configs from it (changes by LISTEN/NOTIFY),
// metric samples written back to it, Prometheus series in the given registry. With EDGE_THREADS
// above 1 the edge runs on that many threads sharing the port; this thread then only feeds them.
import { readFileSync } from 'node:fs';
import {
  EdgeRuntime,
  EdgeThreads,
  loadSqlParser,
  PgEdgeServer,
  type CacheStats,
  type StatsDelta,
} from '@edgegate/edge';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import { insertMetricSamples } from '../db/queries/cache-metrics.ts';
import type { Store } from '../db/store.ts';
import { createStoreConfigSource } from '../services/edge-config.ts';
import { edgeAddressGuard } from '../services/origin-guard.ts';
import { registerEdgeMetrics } from './prometheus.ts';

/** What the control plane reads from a running edge, however many threads it has. */
export interface EdgeCounters {
  /** Per-cache totals (with threads: as of the last `collect`). */
  allStats(): Iterable<CacheStats>;
  stats(cacheId: string): CacheStats;
  /** Bytes of cached results held. */
  cacheBytes(): number;
  /** Brings the totals up to date (asks every thread); immediate on one thread. */
  collect(): Promise<void>;
}

export interface RunningEdge extends EdgeCounters {
  port: number;
  threads: number;
  /** Writes what the edge counted since the last flush to the store. */
  flushMetrics(): Promise<void>;
  close(): Promise<void>;
}

export const METRICS_FLUSH_MS = 10_000;

type EdgeConfig = Pick<
  Config,
  'host' | 'edgePgPort' | 'edgeTls' | 'edgeCacheMaxMb' | 'edgeThreads' | 'originPrivate'
>;

export async function startEdge(
  config: EdgeConfig,
  store: Store,
  logger: Logger,
  registry: Registry | null,
): Promise<RunningEdge> {
  const source = createStoreConfigSource(store);
  await source.start();
  const log = logger.child({ component: 'edge' });
  let edge: EdgeCounters & { port: number; stop(): Promise<void> };
  try {
    edge = await listen(config, source, log);
  } catch (error) {
    await source.stop();
    throw error;
  }
  if (registry !== null) registerEdgeMetrics(registry, edge);
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
      tls: config.edgeTls !== null,
      cacheMaxMb: config.edgeCacheMaxMb,
      threads: config.edgeThreads,
    },
    `Edgegate Postgres edge listening on ${config.host}:${edge.port}` +
      (config.edgeThreads > 1 ? ` (${config.edgeThreads} threads)` : ''),
  );
  return {
    port: edge.port,
    threads: config.edgeThreads,
    allStats: () => edge.allStats(),
    stats: (cacheId) => edge.stats(cacheId),
    cacheBytes: () => edge.cacheBytes(),
    collect: () => edge.collect(),
    flushMetrics,
    async close() {
      clearInterval(timer);
      await edge.stop();
      await flushMetrics().catch(() => {});
      await source.stop();
    },
  };
}

// The edge's listener(s): in this thread, or on EDGE_THREADS worker threads.
async function listen(
  config: EdgeConfig,
  source: ReturnType<typeof createStoreConfigSource>,
  log: Logger,
): Promise<EdgeCounters & { port: number; stop(): Promise<void> }> {
  const tls =
    config.edgeTls === null
      ? null
      : {
          cert: readFileSync(config.edgeTls.certFile, 'utf8'),
          key: readFileSync(config.edgeTls.keyFile, 'utf8'),
        };
  const cacheMaxBytes = config.edgeCacheMaxMb * 1024 * 1024;
  if (config.edgeThreads > 1) {
    const threads = await EdgeThreads.start({
      threads: config.edgeThreads,
      host: config.host,
      port: config.edgePgPort,
      tls,
      cacheMaxBytes,
      // The API checked the hostname when the cache was saved; DNS can change since, so the
      // addresses are checked again at every connect.
      guard: {
        module: new URL('../services/origin-guard.ts', import.meta.url).href,
        name: edgeAddressGuard.name,
        argument: config.originPrivate,
      },
      source,
      logger: log,
    });
    return {
      port: threads.port,
      allStats: () => threads.allStats(),
      stats: (cacheId) => threads.stats(cacheId),
      cacheBytes: () => threads.cacheBytes,
      collect: async () => void (await threads.collect()),
      stop: () => threads.close(),
    };
  }
  await loadSqlParser();
  const runtime = new EdgeRuntime({
    source,
    cacheMaxBytes,
    guard: edgeAddressGuard(config.originPrivate),
    logger: log,
  });
  const server = new PgEdgeServer({ runtime, host: config.host, port: config.edgePgPort, tls });
  const address = await server.listen();
  return {
    port: address.port,
    allStats: () => runtime.allStats(),
    stats: (cacheId) => runtime.stats(cacheId),
    cacheBytes: () => runtime.results.bytes,
    collect: async () => {},
    async stop() {
      await server.close();
      runtime.close();
    },
  };
}
