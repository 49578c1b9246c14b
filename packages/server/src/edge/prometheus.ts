// Prometheus series of the edge, read from its per-cache stats at scrape time (nothing is counted
// twice on the hot path; with several edge threads, a scrape first asks each for its counts).
import { LATENCY_BOUNDS_MS, type CacheStats } from '@edgegate/edge';
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import type { EdgeCounters } from './start-edge.ts';

/** The label of the caches past METRICS_MAX_CACHES, whose series are summed. */
export const OTHER_CACHES = 'other';

/**
 * The caches that keep their own `cache_id` label: the `max` with the most queries since the process
 * started (ties by id, so every metric of a scrape picks the same ones). The rest are summed under
 * `cache_id="other"`, so the number of series stays bounded however many caches there are.
 */
export function topCaches(stats: Iterable<CacheStats>, max: number): Set<string> {
  return new Set(
    [...stats]
      .map((s) => ({ id: s.cacheId, queries: s.hits + s.misses + s.uncacheable }))
      .sort((a, b) => b.queries - a.queries || a.id.localeCompare(b.id))
      .slice(0, max)
      .map((s) => s.id),
  );
}

export function registerEdgeMetrics(
  registry: Registry,
  edge: EdgeCounters,
  options: { maxCaches: number },
): void {
  const { maxCaches } = options;
  // What the counters were last raised by, per cache: each scrape adds the difference to the
  // cache's own series or to "other" (never taking anything back, so counters stay monotonic).
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
  // Per metric: the caches whose own series it shows; one that falls out of the top loses it.
  const labelled = () => {
    let shown = new Set<string>();
    return (top: Set<string>, remove: (cacheId: string) => void): void => {
      for (const cacheId of shown) if (!top.has(cacheId)) remove(cacheId);
      shown = top;
    };
  };
  const queriesShown = labelled();
  new Counter({
    name: 'edgegate_edge_queries_total',
    help: 'Queries through the edge by cache and result (hit, miss, uncacheable); past METRICS_MAX_CACHES the caches with less traffic are summed under cache_id="other"',
    labelNames: ['cache_id', 'result'],
    registers: [registry],
    async collect() {
      await edge.collect();
      const top = topCaches(edge.allStats(), maxCaches);
      queriesShown(top, (cacheId) => {
        for (const result of ['hit', 'miss', 'uncacheable'])
          this.remove({ cache_id: cacheId, result });
      });
      for (const stats of edge.allStats()) {
        const last = lastReported(stats.cacheId);
        const cache_id = top.has(stats.cacheId) ? stats.cacheId : OTHER_CACHES;
        this.inc({ cache_id, result: 'hit' }, stats.hits - last.hits);
        this.inc({ cache_id, result: 'miss' }, stats.misses - last.misses);
        this.inc({ cache_id, result: 'uncacheable' }, stats.uncacheable - last.uncacheable);
        last.hits = stats.hits;
        last.misses = stats.misses;
        last.uncacheable = stats.uncacheable;
      }
    },
  });
  const bytesShown = labelled();
  new Counter({
    name: 'edgegate_edge_bytes_served_total',
    help: 'Bytes of results served from the edge cache, by cache (past METRICS_MAX_CACHES: cache_id="other")',
    labelNames: ['cache_id'],
    registers: [registry],
    async collect() {
      await edge.collect();
      const top = topCaches(edge.allStats(), maxCaches);
      bytesShown(top, (cacheId) => this.remove({ cache_id: cacheId }));
      for (const stats of edge.allStats()) {
        const last = lastReported(stats.cacheId);
        const cache_id = top.has(stats.cacheId) ? stats.cacheId : OTHER_CACHES;
        this.inc({ cache_id }, stats.bytesServed - last.bytes);
        last.bytes = stats.bytesServed;
      }
    },
  });
  registry.registerMetric(edgeLatencyHistogram(edge, maxCaches));
  const sharedBefore: Record<string, number> = {};
  new Counter({
    name: 'edgegate_edge_shared_results_total',
    help: 'The shared second level (Redis) by result: hits, misses (absent, or read under older versions), errors (failed or timed out: the origin answered), skipped (not connected, or just after an error: the origin answered), stored, raced (not stored: written meanwhile), oversize (not shared)',
    labelNames: ['result'],
    registers: [registry],
    async collect() {
      await edge.collect();
      const counts = edge.sharedResults();
      for (const [result, value] of Object.entries(counts)) {
        this.inc({ result }, value - (sharedBefore[result] ?? 0));
        sharedBefore[result] = value;
      }
    },
  });
  const eventsBefore = { evictions: 0, postgres: 0, mysql: 0 };
  new Counter({
    name: 'edgegate_edge_auth_failures_total',
    help: 'Client logins the origin refused (wrong password, unknown user, …), by protocol',
    labelNames: ['protocol'],
    registers: [registry],
    async collect() {
      await edge.collect();
      const { authFailures } = edge.events();
      for (const protocol of ['postgres', 'mysql'] as const) {
        this.inc({ protocol }, authFailures[protocol] - eventsBefore[protocol]);
        eventsBefore[protocol] = authFailures[protocol];
      }
    },
  });
  new Counter({
    name: 'edgegate_edge_cache_evictions_total',
    help: 'Cached results dropped to make room within EDGE_CACHE_MAX_MB',
    registers: [registry],
    async collect() {
      await edge.collect();
      const { evictions } = edge.events();
      this.inc(evictions - eventsBefore.evictions);
      eventsBefore.evictions = evictions;
    },
  });
  new Gauge({
    name: 'edgegate_edge_cache_entries',
    help: 'Cached results held now, all threads together',
    registers: [registry],
    async collect() {
      const reports = await edge.collect();
      this.set(reports.reduce((sum, report) => sum + report.entries, 0));
    },
  });
  const refusedBefore = { total: 0, address: 0 };
  new Counter({
    name: 'edgegate_edge_connections_refused_total',
    help: 'Client connections the edge refused (FATAL 53300) by the cap reached: EDGE_MAX_CONNECTIONS (total) or EDGE_MAX_CONNECTIONS_PER_ADDRESS (address)',
    labelNames: ['cap'],
    registers: [registry],
    async collect() {
      await edge.collect();
      const refused = edge.refused();
      for (const cap of ['total', 'address'] as const) {
        this.inc({ cap }, refused[cap] - refusedBefore[cap]);
        refusedBefore[cap] = refused[cap];
      }
    },
  });
  new Gauge({
    name: 'edgegate_edge_client_connections',
    help: 'Client connections the Postgres edge holds now, all threads together',
    registers: [registry],
    async collect() {
      const reports = await edge.collect();
      this.set(reports.reduce((sum, report) => sum + report.sessions, 0));
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

const LATENCY_METRIC = 'edgegate_edge_query_duration_seconds';

/**
 * Query latency as a Prometheus histogram, so it adds up across edges and threads (quantiles
 * cannot): the edge's own log-scale buckets, cumulative, with the sum and count of samples.
 * prom-client's Histogram only counts observations it sees, so this metric reads the edge's.
 */
function edgeLatencyHistogram(edge: EdgeCounters, maxCaches: number): Metric {
  const help =
    'Time from a query to its answer through the edge (Postgres and MySQL), by cache and result (hit from the cache, miss from the origin); past METRICS_MAX_CACHES the caches with less traffic are summed under cache_id="other"';
  const describe = (values: Sample[]) => ({
    name: LATENCY_METRIC,
    help,
    type: 'histogram',
    aggregator: 'sum',
    values,
  });
  // Per label (a cache id or "other") and result: the samples counted into it so far. Each scrape
  // adds what every cache counted since the last one, so "other" never goes down when a cache
  // moves into the top; a cache that falls out of it loses its own series.
  const shown = new Map<string, Record<Result, Bucketed>>();
  const seen = new Map<string, Record<Result, Bucketed>>();
  const fresh = (): Record<Result, Bucketed> => ({
    hit: { counts: LATENCY_BOUNDS_MS.map(() => 0).concat(0), sumMs: 0 },
    miss: { counts: LATENCY_BOUNDS_MS.map(() => 0).concat(0), sumMs: 0 },
  });
  return {
    ...describe([]),
    // As prom-client's own metrics declare theirs (dashboards and their test read it).
    labelNames: ['cache_id', 'result'],
    async get() {
      await edge.collect();
      const top = topCaches(edge.allStats(), maxCaches);
      for (const label of shown.keys())
        if (label !== OTHER_CACHES && !top.has(label)) shown.delete(label);
      for (const stats of edge.allStats()) {
        const label = top.has(stats.cacheId) ? stats.cacheId : OTHER_CACHES;
        const into = shown.get(label) ?? fresh();
        shown.set(label, into);
        const last = seen.get(stats.cacheId) ?? fresh();
        seen.set(stats.cacheId, last);
        for (const [result, histogram] of [
          ['hit', stats.hitLatency],
          ['miss', stats.missLatency],
        ] as const) {
          histogram.counts.forEach((count, i) => {
            into[result].counts[i] =
              (into[result].counts[i] ?? 0) + count - (last[result].counts[i] ?? 0);
            last[result].counts[i] = count;
          });
          into[result].sumMs += histogram.sumMs - last[result].sumMs;
          last[result].sumMs = histogram.sumMs;
        }
      }
      const values: Sample[] = [];
      for (const [cacheId, results] of shown) {
        for (const result of ['hit', 'miss'] as const) {
          const labels = { cache_id: cacheId, result };
          let cumulative = 0;
          results[result].counts.forEach((count, i) => {
            cumulative += count;
            const bound = LATENCY_BOUNDS_MS[i];
            values.push({
              metricName: `${LATENCY_METRIC}_bucket`,
              labels: { ...labels, le: bound === undefined ? '+Inf' : String(bound / 1000) },
              value: cumulative,
            });
          });
          values.push(
            { metricName: `${LATENCY_METRIC}_sum`, labels, value: results[result].sumMs / 1000 },
            { metricName: `${LATENCY_METRIC}_count`, labels, value: cumulative },
          );
        }
      }
      return describe(values);
    },
  } as unknown as Metric;
}

type Result = 'hit' | 'miss';

interface Bucketed {
  counts: number[];
  sumMs: number;
}

interface Sample {
  metricName: string;
  labels: Record<string, string>;
  value: number;
}
