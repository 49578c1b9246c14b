// DELETE /v1/caches/{id}: delete a cache; the edge refuses new connections for it.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { deleteCache } from '../../../services/caches.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from './get-cache.ts';

export function registerDeleteCache(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/caches/:id',
    {
      schema: {
        summary: 'Delete a cache',
        tags: ['caches'],
        params: cacheParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'caches:write');
      await deleteCache(deps.db, principal, request.params.id);
      return reply.code(204).send(null);
    },
  );
}
