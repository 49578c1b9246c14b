// GET /v1/caches/{id}/rules/{ruleId}: one rule of a cache.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { dataOf, ruleSchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { getRule, toRule } from '../../../services/rules.ts';
import { setEtag } from '../support/etag.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from '../caches/get-cache.ts';

export const ruleParamsSchema = cacheParamsSchema.extend({
  ruleId: z.string().max(100).describe('The rule id'),
});

export function registerGetRule(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/caches/:id/rules/:ruleId',
    {
      schema: {
        summary: 'Get a cache rule',
        tags: ['cache rules'],
        params: ruleParamsSchema,
        response: { 200: dataOf(ruleSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'cacheRules:read');
      const { id, ruleId } = request.params;
      const row = await getRule(deps.db, principal, id, ruleId, 'cacheRules:read');
      setEtag(reply, row.id, row.version);
      return { data: toRule(row) };
    },
  );
}
