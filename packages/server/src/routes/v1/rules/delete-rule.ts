// DELETE /v1/caches/{id}/rules/{ruleId}: delete a rule; its queries fall back to the next rule.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { deleteRule } from '../../../services/rules.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { ruleParamsSchema } from './get-rule.ts';

export function registerDeleteRule(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/caches/:id/rules/:ruleId',
    {
      schema: {
        summary: 'Delete a cache rule',
        tags: ['cache rules'],
        params: ruleParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'cacheRules:write');
      const { id, ruleId } = request.params;
      await deleteRule(deps.db, principal, id, ruleId);
      return reply.code(204).send(null);
    },
  );
}
