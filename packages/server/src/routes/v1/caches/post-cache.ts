// POST /v1/caches: create a cache for an origin database.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cacheCreateSchema, cacheSchema, dataOf } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { createCache, toCacheWithReport } from '../../../services/caches.ts';
import { setEtag } from '../support/etag.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostCache(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/caches',
    {
      schema: {
        summary: 'Create a cache',
        description:
          'The hostname must resolve and pass the origin guard. No origin username or password is accepted: clients send their own through the edge. `invalidation.mode: replication` takes a credential that may replicate (stored encrypted, never returned) and checks the origin for every prerequisite (422 names the missing one).',
        tags: ['caches'],
        body: cacheCreateSchema,
        response: { 201: dataOf(cacheSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'caches:write');
      const row = await createCache(
        deps.db,
        principal,
        request.body,
        deps.originPolicy,
        deps.replication,
      );
      setEtag(reply, row.id, row.version);
      return reply
        .code(201)
        .header('location', `/v1/caches/${row.id}`)
        .send({ data: await toCacheWithReport(deps.db, row) });
    },
  );
}
