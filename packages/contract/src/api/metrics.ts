// What GET /v1/caches/{id}/metrics returns: a cache's traffic through the edge over a window.
import { z } from 'zod';

export const metricsWindowSchema = z
  .enum(['15m', '1h', '6h', '24h', '7d'])
  .default('1h')
  .describe('How far back to look');
export type MetricsWindow = z.infer<typeof metricsWindowSchema>;

export const METRICS_WINDOW_MS: Record<MetricsWindow, number> = {
  '15m': 15 * 60_000,
  '1h': 3600_000,
  '6h': 6 * 3600_000,
  '24h': 24 * 3600_000,
  '7d': 7 * 24 * 3600_000,
};

const latencySchema = z.object({
  p50Ms: z
    .number()
    .nullable()
    .describe('Upper bound of the latency bucket holding the median; null without samples'),
  p99Ms: z.number().nullable(),
});

export const cacheMetricsSchema = z.object({
  cacheId: z.string(),
  window: metricsWindowSchema,
  from: z.string().describe('Start of the window (ISO 8601)'),
  to: z.string(),
  queries: z.number().int(),
  hits: z.number().int(),
  misses: z.number().int(),
  uncacheable: z
    .number()
    .int()
    .describe('Queries the edge relayed without caching (writes, volatile reads, rules off)'),
  hitRatio: z
    .number()
    .nullable()
    .describe('hits / (hits + misses); null before any cacheable read'),
  bytesServed: z.number().int().describe('Bytes answered from the cache'),
  latency: z.object({ hit: latencySchema, miss: latencySchema }),
  topTemplates: z
    .array(z.object({ fingerprint: z.string(), normalized: z.string(), count: z.number().int() }))
    .describe('The most frequent query templates (constants replaced by $n)'),
  series: z
    .array(
      z.object({
        at: z.string(),
        hits: z.number().int(),
        misses: z.number().int(),
        uncacheable: z.number().int(),
      }),
    )
    .describe('Counts per interval (window / 30), oldest first'),
});
export type CacheMetrics = z.infer<typeof cacheMetricsSchema>;
