// Prometheus series of the edge, read from its per-cache stats at scrape time (nothing is counted
// twice on the hot path).
import { quantileMs, type EdgeRuntime } from '@edgegate/edge';
import { Counter, Gauge, type Registry } from 'prom-client';

export function registerEdgeMetrics(registry: Registry, runtime: EdgeRuntime): void {
  const reported = new Map<
    string,
    { hits: number; misses: number; uncacheable: number; bytes: number }
  >();
  new Counter({
    name: 'edgegate_edge_queries_total',
    help: 'Queries through the Postgres edge by cache and result (hit, miss, uncacheable)',
    labelNames: ['cache_id', 'result'],
    registers: [registry],
    collect() {
      for (const stats of runtime.allStats()) {
        const last = reported.get(stats.cacheId) ?? {
          hits: 0,
          misses: 0,
          uncacheable: 0,
          bytes: 0,
        };
        this.inc({ cache_id: stats.cacheId, result: 'hit' }, stats.hits - last.hits);
        this.inc({ cache_id: stats.cacheId, result: 'miss' }, stats.misses - last.misses);
        this.inc(
          { cache_id: stats.cacheId, result: 'uncacheable' },
          stats.uncacheable - last.uncacheable,
        );
        reported.set(stats.cacheId, {
          ...last,
          hits: stats.hits,
          misses: stats.misses,
          uncacheable: stats.uncacheable,
        });
      }
    },
  });
  new Counter({
    name: 'edgegate_edge_bytes_served_total',
    help: 'Bytes of results served from the edge cache',
    labelNames: ['cache_id'],
    registers: [registry],
    collect() {
      for (const stats of runtime.allStats()) {
        const last = reported.get(stats.cacheId);
        const previous = last?.bytes ?? 0;
        this.inc({ cache_id: stats.cacheId }, stats.bytesServed - previous);
        if (last !== undefined) last.bytes = stats.bytesServed;
      }
    },
  });
  new Gauge({
    name: 'edgegate_edge_latency_seconds',
    help: 'Median and 99th percentile latency of cache hits and misses since the edge started',
    labelNames: ['cache_id', 'result', 'quantile'],
    registers: [registry],
    collect() {
      for (const stats of runtime.allStats()) {
        for (const [result, histogram] of [
          ['hit', stats.hitLatency],
          ['miss', stats.missLatency],
        ] as const) {
          for (const q of [0.5, 0.99]) {
            const ms = quantileMs(histogram.counts, q);
            if (ms !== null)
              this.set({ cache_id: stats.cacheId, result, quantile: String(q) }, ms / 1000);
          }
        }
      }
    },
  });
  new Gauge({
    name: 'edgegate_edge_cache_bytes',
    help: 'Memory held by cached results (bounded by EDGE_CACHE_MAX_MB)',
    registers: [registry],
    collect() {
      this.set(runtime.results.bytes);
    },
  });
}
