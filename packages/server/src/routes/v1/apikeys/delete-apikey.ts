// DELETE /v1/apikeys/{id}: delete one of the caller's API keys; it stops working at once.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deleteApiKey } from '../../../services/api-keys.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

const apiKeyParamsSchema = z.object({ id: z.string().max(100).describe('The API key id') });

export function registerDeleteApiKey(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/apikeys/:id',
    {
      schema: {
        summary: 'Delete an API key',
        description: 'Any of your keys here, including the one making the request.',
        tags: ['apikeys'],
        params: apiKeyParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...problemResponses },
      },
    },
    async (request, reply) => {
      await deleteApiKey(deps.db, request.principal!, request.params.id);
      return reply.code(204).send(null);
    },
  );
}
