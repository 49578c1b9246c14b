// GET /v1/caches: the workspace's caches (only those a narrowed credential may read), paginated.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cacheSchema, pageOf, paginationQuerySchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { listCaches, toCachesWithReports } from '../../../services/caches.ts';
import { decodeCursor, toPage } from '../support/cursor.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetCaches(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/caches',
    {
      schema: {
        summary: 'List caches',
        tags: ['caches'],
        querystring: paginationQuerySchema,
        response: { 200: pageOf(cacheSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireScope(request, 'caches:read');
      const { limit, cursor } = request.query;
      const rows = await listCaches(deps.pipelined, principal, {
        afterId: decodeCursor(cursor),
        limit,
      });
      const { items, nextCursor } = toPage(rows, limit);
      return { data: await toCachesWithReports(deps.pipelined, items), nextCursor };
    },
  );
}
