// DELETE /v1/service-tokens/{id}: delete a workspace service token (admins only); it stops at once.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deleteServiceToken } from '../../../services/service-tokens.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

const serviceTokenParamsSchema = z.object({
  id: z.string().max(100).describe('The service token id (st_…)'),
});

export function registerDeleteServiceToken(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/service-tokens/:id',
    {
      schema: {
        summary: 'Delete a service token',
        tags: ['service-tokens'],
        params: serviceTokenParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...problemResponses },
      },
    },
    async (request, reply) => {
      await deleteServiceToken(deps.db, request.principal!, request.params.id);
      return reply.code(204).send(null);
    },
  );
}
