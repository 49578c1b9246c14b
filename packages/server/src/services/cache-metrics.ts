// A cache's metrics over a window: the edges' samples summed, percentiles from merged histograms.
import {
  METRICS_WINDOW_MS,
  metricsWindowSchema,
  type CacheMetrics,
  type MetricsWindow,
} from '@edgegate/contract';
import { quantileMs } from '@edgegate/edge';
import { listMetricSamples } from '../db/queries/cache-metrics.ts';
import type { Db } from '../db/store.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { getCache } from './caches.ts';

const SERIES_POINTS = 30;
const TOP_TEMPLATES = 10;

export async function getCacheMetrics(
  db: Db,
  principal: Principal,
  cacheId: string,
  window: MetricsWindow,
  now = new Date(),
): Promise<CacheMetrics> {
  const cache = await getCache(db, principal, cacheId, 'metrics:read');
  return summarizeCacheMetrics(db, cache.id, window, now);
}

/** The summary, for a cache the caller already checked access to (console pages). */
export async function summarizeCacheMetrics(
  db: Db,
  cacheId: string,
  window: MetricsWindow = metricsWindowSchema.parse(undefined),
  now = new Date(),
): Promise<CacheMetrics> {
  const span = METRICS_WINDOW_MS[window];
  const from = new Date(now.getTime() - span);
  const samples = await listMetricSamples(db, cacheId, from);
  const step = span / SERIES_POINTS;
  const series = Array.from({ length: SERIES_POINTS }, (_, i) => ({
    at: new Date(from.getTime() + i * step).toISOString(),
    hits: 0,
    misses: 0,
    uncacheable: 0,
  }));
  const totals = { queries: 0, hits: 0, misses: 0, uncacheable: 0, bytesServed: 0 };
  const hitLatency: number[] = [];
  const missLatency: number[] = [];
  const templates = new Map<string, { fingerprint: string; normalized: string; count: number }>();
  for (const sample of samples) {
    totals.queries += sample.queries;
    totals.hits += sample.hits;
    totals.misses += sample.misses;
    totals.uncacheable += sample.uncacheable;
    totals.bytesServed += Number(sample.bytes_served);
    addInto(hitLatency, sample.hit_latency);
    addInto(missLatency, sample.miss_latency);
    for (const t of sample.templates) {
      const known = templates.get(t.fingerprint);
      if (known === undefined) templates.set(t.fingerprint, { ...t });
      else {
        known.count += t.count;
        // Hits carry no text; keep the first real one.
        if (known.normalized === '') known.normalized = t.normalized;
      }
    }
    const index = Math.min(
      SERIES_POINTS - 1,
      Math.floor((sample.at.getTime() - from.getTime()) / step),
    );
    const point = series[Math.max(0, index)];
    if (point !== undefined) {
      point.hits += sample.hits;
      point.misses += sample.misses;
      point.uncacheable += sample.uncacheable;
    }
  }
  const cacheable = totals.hits + totals.misses;
  return {
    cacheId,
    window,
    from: from.toISOString(),
    to: now.toISOString(),
    ...totals,
    hitRatio: cacheable === 0 ? null : totals.hits / cacheable,
    latency: {
      hit: { p50Ms: quantileMs(hitLatency, 0.5), p99Ms: quantileMs(hitLatency, 0.99) },
      miss: { p50Ms: quantileMs(missLatency, 0.5), p99Ms: quantileMs(missLatency, 0.99) },
    },
    topTemplates: [...templates.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, TOP_TEMPLATES)
      .map((t) => ({ ...t, normalized: t.normalized || '(seen only as cache hits so far)' })),
    series,
  };
}

function addInto(total: number[], counts: readonly number[]): void {
  counts.forEach((count, i) => {
    total[i] = (total[i] ?? 0) + count;
  });
}
