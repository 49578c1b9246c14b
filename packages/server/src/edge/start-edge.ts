// Runs the Postgres edge against this store: cache configs from it (changes by LISTEN/NOTIFY),
// metric samples written back to it, Prometheus series in the given registry. With EDGE_THREADS
// above 1 the edge runs on that many threads sharing the port; this thread then only feeds them.
import { readFileSync } from 'node:fs';
import { startPgEdge, type PgEdge, type StatsDelta } from '@edgegate/edge';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import { insertMetricSamples } from '../db/queries/cache-metrics.ts';
import type { Store } from '../db/store.ts';
import { createStoreConfigSource } from '../services/edge-config.ts';
import { edgeAddressGuard } from '../services/origin-guard.ts';
import { registerEdgeMetrics } from './prometheus.ts';

/** What the control plane reads from a running edge, however many threads it has. */
export type EdgeCounters = Pick<PgEdge, 'allStats' | 'stats' | 'cacheBytes' | 'collect'>;

export interface RunningEdge extends EdgeCounters {
  port: number;
  threads: number;
  /** Writes what the edge counted since the last flush to the store. */
  flushMetrics(): Promise<void>;
  close(): Promise<void>;
}

export const METRICS_FLUSH_MS = 10_000;

export async function startEdge(
  config: Pick<
    Config,
    'host' | 'edgePgPort' | 'edgeTls' | 'edgeCacheMaxMb' | 'edgeThreads' | 'originPrivate'
  >,
  store: Store,
  logger: Logger,
  registry: Registry | null,
): Promise<RunningEdge> {
  const source = createStoreConfigSource(store);
  await source.start();
  const log = logger.child({ component: 'edge' });
  let edge: PgEdge;
  try {
    edge = await startPgEdge({
      threads: config.edgeThreads,
      host: config.host,
      port: config.edgePgPort,
      tls:
        config.edgeTls === null
          ? null
          : {
              cert: readFileSync(config.edgeTls.certFile, 'utf8'),
              key: readFileSync(config.edgeTls.keyFile, 'utf8'),
            },
      cacheMaxBytes: config.edgeCacheMaxMb * 1024 * 1024,
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
      threads: edge.threads,
    },
    `Edgegate Postgres edge listening on ${config.host}:${edge.port}` +
      (edge.threads > 1 ? ` (${edge.threads} threads)` : ''),
  );
  return {
    port: edge.port,
    threads: edge.threads,
    allStats: () => edge.allStats(),
    stats: (cacheId) => edge.stats(cacheId),
    cacheBytes: () => edge.cacheBytes(),
    collect: () => edge.collect(),
    flushMetrics,
    async close() {
      clearInterval(timer);
      await edge.close();
      await flushMetrics().catch(() => {});
      await source.stop();
    },
  };
}
