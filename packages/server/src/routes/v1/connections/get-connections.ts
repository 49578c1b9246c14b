// GET /v1/connections: the workspace's connections (never their secrets), paginated.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { connectionSchema, pageOf, paginationQuerySchema } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { listConnections, toConnection } from '../../../connect/connections.ts';
import { decodeCursor, toPage } from '../support/cursor.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetConnections(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/connections',
    {
      schema: {
        summary: 'List connections',
        tags: ['connections'],
        querystring: paginationQuerySchema,
        response: { 200: pageOf(connectionSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireWorkspaceScope(request, 'connections:read');
      const { limit, cursor } = request.query;
      const rows = await listConnections(deps.db, principal, {
        afterId: decodeCursor(cursor),
        limit,
      });
      const { items, nextCursor } = toPage(rows, limit);
      return { data: items.map(toConnection), nextCursor };
    },
  );
}
