// GET /v1/connections/{id}: one connection; secret fields are named, never shown.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { connectionSchema, dataOf } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { getConnection, toConnection } from '../../../connect/connections.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export const connectionParamsSchema = z.object({
  id: z.string().max(100).describe('The connection id'),
});

export function registerGetConnection(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/connections/:id',
    {
      schema: {
        summary: 'Get a connection',
        tags: ['connections'],
        params: connectionParamsSchema,
        response: { 200: dataOf(connectionSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireWorkspaceScope(request, 'connections:read');
      const row = await getConnection(deps.db, principal, request.params.id);
      return { data: toConnection(row) };
    },
  );
}
