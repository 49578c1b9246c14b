// GET /v1/caches/{id}/metrics: what the edge did for one cache over a window.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { cacheMetricsSchema, dataOf, metricsWindowSchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { getCacheMetrics } from '../../../services/cache-metrics.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from './get-cache.ts';

export function registerGetCacheMetrics(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/caches/:id/metrics',
    {
      schema: {
        summary: "Get a cache's edge metrics",
        description:
          'Queries, hits, misses, hit ratio, uncacheable count, bytes served, p50/p99 latency of hits and misses, ' +
          'top templates and a series of hits vs misses. Edges report every 10 seconds.',
        tags: ['caches'],
        params: cacheParamsSchema,
        querystring: z.strictObject({ window: metricsWindowSchema }),
        response: { 200: dataOf(cacheMetricsSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireScope(request, 'metrics:read');
      await deps.flushEdgeMetrics?.();
      return {
        data: await getCacheMetrics(deps.db, principal, request.params.id, request.query.window),
      };
    },
  );
}
