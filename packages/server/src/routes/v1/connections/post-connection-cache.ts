// POST /v1/connections/{id}/cache: a cache in front of the connection's database, in one call,
// with the edge connection string built from the stored credentials (shown now only).
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  connectionCacheCreateSchema,
  connectionCacheResultSchema,
  dataOf,
} from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { createCacheForConnection } from '../../../connect/connections.ts';
import { announceDeliveries } from '../../../connect/events.ts';
import { toCache } from '../../../services/caches.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { connectionParamsSchema } from './get-connection.ts';

export function registerPostConnectionCache(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/connections/:id/cache',
    {
      schema: {
        summary: 'Create a cache for a connection',
        description:
          "Needs caches:write and connections:write: the answer carries the stored password. The origin is the connection's host and port, and it passes the origin guard like any cache.",
        tags: ['connections'],
        params: connectionParamsSchema,
        body: connectionCacheCreateSchema,
        response: { 201: dataOf(connectionCacheResultSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      requireWorkspaceScope(request, 'connections:write');
      const principal = requireWorkspaceScope(request, 'caches:write');
      const { cache, connectionString } = await createCacheForConnection(
        deps.db,
        deps.keyring,
        principal,
        request.params.id,
        request.body,
        deps.originPolicy,
        deps.edge,
      );
      announceDeliveries(deps.bus);
      return reply
        .code(201)
        .header('location', `/v1/caches/${cache.id}`)
        .header('cache-control', 'no-store')
        .send({ data: { cache: toCache(cache), connectionString } });
    },
  );
}
