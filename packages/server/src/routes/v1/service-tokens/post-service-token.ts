// POST /v1/service-tokens: create a workspace service token (admins only), no wider than the admin.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { dataOf, serviceTokenCreatedSchema, serviceTokenCreateSchema } from '@edgegate/contract';
import { createServiceToken, toServiceToken } from '../../../services/service-tokens.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostServiceToken(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/service-tokens',
    {
      schema: {
        summary: 'Create a service token',
        description:
          'For admins of the workspace, with an OAuth access token or API key. Each access is a scope for the whole workspace or for one of its caches, and must be one the creating credential holds there. The secret is in `token`, shown this once; send `Authorization: <id>:<token>`.',
        tags: ['service-tokens'],
        body: serviceTokenCreateSchema,
        response: { 201: dataOf(serviceTokenCreatedSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const { row, accesses, token } = await createServiceToken(
        deps.db,
        request.principal!,
        request.body,
      );
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ data: { ...toServiceToken(row, accesses), token } });
    },
  );
}
