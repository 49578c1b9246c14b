// GET /v1/caches/{id}/rules: the rules of one cache, paginated.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { pageOf, paginationQuerySchema, ruleSchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { listRules, toRule } from '../../../services/rules.ts';
import { decodeCursor, toPage } from '../support/cursor.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from '../caches/get-cache.ts';

export function registerGetRules(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/caches/:id/rules',
    {
      schema: {
        summary: "List a cache's rules",
        tags: ['cache rules'],
        params: cacheParamsSchema,
        querystring: paginationQuerySchema,
        response: { 200: pageOf(ruleSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireScope(request, 'cacheRules:read');
      const { limit, cursor } = request.query;
      const rows = await listRules(deps.db, principal, request.params.id, {
        afterId: decodeCursor(cursor),
        limit,
      });
      const { items, nextCursor } = toPage(rows, limit);
      return { data: items.map(toRule), nextCursor };
    },
  );
}
