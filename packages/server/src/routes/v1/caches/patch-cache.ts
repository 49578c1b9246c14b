// PATCH /v1/caches/{id}: change a cache; If-Match with its ETag guards against lost updates.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cacheSchema, cacheUpdateSchema, dataOf } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { toCacheWithReport, updateCache } from '../../../services/caches.ts';
import { checkIfMatch, setEtag } from '../support/etag.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { cacheParamsSchema } from './get-cache.ts';

export function registerPatchCache(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().patch(
    '/caches/:id',
    {
      schema: {
        summary: 'Change a cache',
        tags: ['caches'],
        params: cacheParamsSchema,
        body: cacheUpdateSchema,
        response: { 200: dataOf(cacheSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'caches:write');
      const id = request.params.id;
      const row = await updateCache(
        deps.db,
        principal,
        id,
        request.body,
        deps.originPolicy,
        (version) => checkIfMatch(request, id, version),
        deps.replication,
      );
      setEtag(reply, row.id, row.version);
      return { data: await toCacheWithReport(deps.db, row) };
    },
  );
}
