// Prometheus series of the edge, read from its per-cache stats at scrape time (nothing is counted
// twice on the hot path; with several edge threads, a scrape first asks each for its counts).
import { quantileMs } from '@edgegate/edge';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EdgeCounters } from './start-edge.ts';

export function registerEdgeMetrics(registry: Registry, edge: EdgeCounters): void {
  // What the counters were last raised to, per cache: each scrape adds the difference.
  const reported = new Map<
    string,
    { hits: number; misses: number; uncacheable: number; bytes: number }
  >();
  const lastReported = (cacheId: string) => {
    let last = reported.get(cacheId);
    if (last === undefined) {
      last = { hits: 0, misses: 0, uncacheable: 0, bytes: 0 };
      reported.set(cacheId, last);
    }
    return last;
  };
  new Counter({
    name: 'edgegate_edge_queries_total',
    help: 'Queries through the Postgres edge by cache and result (hit, miss, uncacheable)',
    labelNames: ['cache_id', 'result'],
    registers: [registry],
    async collect() {
      await edge.collect();
      for (const stats of edge.allStats()) {
        const last = lastReported(stats.cacheId);
        this.inc({ cache_id: stats.cacheId, result: 'hit' }, stats.hits - last.hits);
        this.inc({ cache_id: stats.cacheId, result: 'miss' }, stats.misses - last.misses);
        this.inc(
          { cache_id: stats.cacheId, result: 'uncacheable' },
          stats.uncacheable - last.uncacheable,
        );
        last.hits = stats.hits;
        last.misses = stats.misses;
        last.uncacheable = stats.uncacheable;
      }
    },
  });
  new Counter({
    name: 'edgegate_edge_bytes_served_total',
    help: 'Bytes of results served from the edge cache',
    labelNames: ['cache_id'],
    registers: [registry],
    async collect() {
      await edge.collect();
      for (const stats of edge.allStats()) {
        const last = lastReported(stats.cacheId);
        this.inc({ cache_id: stats.cacheId }, stats.bytesServed - last.bytes);
        last.bytes = stats.bytesServed;
      }
    },
  });
  new Gauge({
    name: 'edgegate_edge_latency_seconds',
    help: 'Median and 99th percentile latency of cache hits and misses since the edge started',
    labelNames: ['cache_id', 'result', 'quantile'],
    registers: [registry],
    async collect() {
      await edge.collect();
      for (const stats of edge.allStats()) {
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
    async collect() {
      await edge.collect();
      this.set(edge.cacheBytes());
    },
  });
}
