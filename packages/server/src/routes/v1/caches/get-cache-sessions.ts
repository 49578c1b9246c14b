// GET /v1/caches/{id}/sessions: the cache's open client sessions on the edge in this process.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { edgeSessionListSchema } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { listCacheSessions } from '../../../services/edge-sessions.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from './get-cache.ts';

export function registerGetCacheSessions(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/caches/:id/sessions',
    {
      schema: {
        summary: "List a cache's open edge sessions",
        description:
          'Client sessions of the cache open now on the edge that runs in this process (`edgegate start`), oldest ' +
          'first: protocol, user, database, client address, start, bytes, queries and state. A control plane ' +
          'without an edge of its own (`edgegate server`) answers 501; edge nodes running alone list theirs with ' +
          '`edgegate sessions list`.',
        tags: ['caches'],
        params: cacheParamsSchema,
        response: { 200: edgeSessionListSchema, ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireScope(request, 'caches:read');
      return {
        data: await listCacheSessions(deps.db, principal, request.params.id, deps.edgeSessions),
      };
    },
  );
}
