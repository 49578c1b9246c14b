// POST /v1/apikeys: mint an API key for the caller, no wider than the credential minting it.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { apiKeyCreatedSchema, apiKeyCreateSchema, dataOf } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { createApiKey, toApiKey } from '../../../services/api-keys.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostApiKey(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/apikeys',
    {
      schema: {
        summary: 'Create an API key',
        description:
          'Needs caches:write and an OAuth access token or API key (not a service token). The key is bound to the same person and workspace; its scopes default to the creating credential’s and can only narrow them. The secret is in `key`, shown this once; use it as `Authorization: Bearer egk_…` or HTTP Basic `email:egk_…`.',
        tags: ['apikeys'],
        body: apiKeyCreateSchema,
        response: { 201: dataOf(apiKeyCreatedSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'caches:write');
      const { row, key } = await createApiKey(deps.db, principal, request.body);
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ data: { ...toApiKey(row), key } });
    },
  );
}
