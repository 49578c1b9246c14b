// DELETE /v1/caches/{id}/sessions/{sessionId}: end one open client session of the cache (KILL).
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { endCacheSession } from '../../../services/edge-sessions.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

const paramsSchema = z.object({
  id: z.string().max(100).describe('The cache id'),
  sessionId: z.string().max(20).describe('The session id, from GET /v1/caches/{id}/sessions'),
});

export function registerDeleteCacheSession(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/caches/:id/sessions/:sessionId',
    {
      schema: {
        summary: 'End an open edge session of a cache',
        description:
          'The edge closes the session at once; its client reads Postgres `FATAL 57P01` or MySQL error 1927 ' +
          '(connection killed), and a query it had running on the origin is cancelled (Postgres). Recorded in ' +
          "the workspace's audit log.",
        tags: ['caches'],
        params: paramsSchema,
        response: { 204: z.null().describe('Ended'), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'caches:write');
      await endCacheSession(
        deps.db,
        principal,
        request.params.id,
        request.params.sessionId,
        deps.edgeSessions,
      );
      return reply.code(204).send(null);
    },
  );
}
