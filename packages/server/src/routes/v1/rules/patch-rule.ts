// PATCH /v1/caches/{id}/rules/{ruleId}: change a rule's mode, TTL or transaction policy; If-Match
// with its ETag guards against lost updates.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { dataOf, ruleSchema, ruleUpdateSchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { toRule, updateRule } from '../../../services/rules.ts';
import { checkIfMatch, setEtag } from '../support/etag.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { ruleParamsSchema } from './get-rule.ts';

export function registerPatchRule(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().patch(
    '/caches/:id/rules/:ruleId',
    {
      schema: {
        summary: 'Change a cache rule',
        description: 'Kind and key cannot change: delete the rule and create another instead.',
        tags: ['cache rules'],
        params: ruleParamsSchema,
        body: ruleUpdateSchema,
        response: { 200: dataOf(ruleSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'cacheRules:write');
      const { id, ruleId } = request.params;
      const row = await updateRule(deps.db, principal, id, ruleId, request.body, (version) =>
        checkIfMatch(request, ruleId, version),
      );
      setEtag(reply, row.id, row.version);
      return { data: toRule(row) };
    },
  );
}
