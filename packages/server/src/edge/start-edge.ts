// Runs the Postgres edge against this store: cache configs from it (changes by LISTEN/NOTIFY),
// metric samples written back to it, Prometheus series in the given registry.
import { readFileSync } from 'node:fs';
import { EdgeRuntime, loadSqlParser, PgEdgeServer, type StatsDelta } from '@edgegate/edge';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import { insertMetricSamples } from '../db/queries/cache-metrics.ts';
import type { Store } from '../db/store.ts';
import { createStoreConfigSource } from '../services/edge-config.ts';
import { isForbiddenAddress, isPrivateAddress } from '../services/origin-guard.ts';
import { registerEdgeMetrics } from './prometheus.ts';

export interface RunningEdge {
  runtime: EdgeRuntime;
  port: number;
  /** Writes what the edge counted since the last flush to the store. */
  flushMetrics(): Promise<void>;
  close(): Promise<void>;
}

export const METRICS_FLUSH_MS = 10_000;

export async function startEdge(
  config: Pick<Config, 'host' | 'edgePgPort' | 'edgeTls' | 'edgeCacheMaxMb' | 'originPrivate'>,
  store: Store,
  logger: Logger,
  registry: Registry | null,
): Promise<RunningEdge> {
  await loadSqlParser();
  const source = createStoreConfigSource(store);
  await source.start();
  const log = logger.child({ component: 'edge' });
  // The API checked the hostname when the cache was saved; DNS can change since, so the
  // addresses are checked again at every connect.
  const guard =
    config.originPrivate === 'deny'
      ? (address: string) => !isForbiddenAddress(address) && !isPrivateAddress(address)
      : (address: string) => !isForbiddenAddress(address);
  const runtime = new EdgeRuntime({
    source,
    cacheMaxBytes: config.edgeCacheMaxMb * 1024 * 1024,
    guard,
    logger: log,
  });
  const tls =
    config.edgeTls === null
      ? null
      : { cert: readFileSync(config.edgeTls.certFile), key: readFileSync(config.edgeTls.keyFile) };
  const server = new PgEdgeServer({ runtime, host: config.host, port: config.edgePgPort, tls });
  let address;
  try {
    address = await server.listen();
  } catch (error) {
    await source.stop();
    throw error;
  }
  if (registry !== null) registerEdgeMetrics(registry, runtime);
  const flushMetrics = async (): Promise<void> => {
    const deltas: StatsDelta[] = [];
    for (const stats of runtime.allStats()) {
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
    { port: address.port, tls: tls !== null, cacheMaxMb: config.edgeCacheMaxMb },
    `Edgegate Postgres edge listening on ${config.host}:${address.port}`,
  );
  return {
    runtime,
    port: address.port,
    flushMetrics,
    async close() {
      clearInterval(timer);
      await server.close();
      await flushMetrics().catch(() => {});
      runtime.close();
      await source.stop();
    },
  };
}
