// DELETE /v1/connections/{id}: forget a connection and its sealed secrets.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { deleteConnection } from '../../../connect/connections.ts';
import { announceDeliveries } from '../../../connect/events.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { connectionParamsSchema } from './get-connection.ts';

export function registerDeleteConnection(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/connections/:id',
    {
      schema: {
        summary: 'Delete a connection',
        tags: ['connections'],
        params: connectionParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      await deleteConnection(deps.db, principal, request.params.id);
      announceDeliveries(deps.bus);
      return reply.code(204).send(null);
    },
  );
}
