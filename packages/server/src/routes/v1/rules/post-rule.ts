// POST /v1/caches/{id}/rules: add a rule for a table, a query template or one exact query.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { dataOf, ruleCreateSchema, ruleSchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { createRule, toRule } from '../../../services/rules.ts';
import { setEtag } from '../support/etag.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from '../caches/get-cache.ts';

export function registerPostRule(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/caches/:id/rules',
    {
      schema: {
        summary: 'Create a cache rule',
        description:
          'Precedence: query > template > table > the cache default. A template rule takes SQL text ' +
          '(Postgres caches) and stores its fingerprint, so every query differing only in constants ' +
          'matches it. A cache has at most one rule per kind and key (409 rule.duplicate).',
        tags: ['cache rules'],
        params: cacheParamsSchema,
        body: ruleCreateSchema,
        response: { 201: dataOf(ruleSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'cacheRules:write');
      const cacheId = request.params.id;
      const row = await createRule(deps.db, principal, cacheId, request.body);
      setEtag(reply, row.id, row.version);
      return reply
        .code(201)
        .header('location', `/v1/caches/${cacheId}/rules/${row.id}`)
        .send({ data: toRule(row) });
    },
  );
}
