// GET /v1/caches/{id}: one cache of the credential's workspace.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { cacheSchema, dataOf } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { getCache, toCacheWithReport } from '../../../services/caches.ts';
import { setEtag } from '../support/etag.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export const cacheParamsSchema = z.object({ id: z.string().max(100).describe('The cache id') });

export function registerGetCache(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/caches/:id',
    {
      schema: {
        summary: 'Get a cache',
        tags: ['caches'],
        params: cacheParamsSchema,
        response: { 200: dataOf(cacheSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'caches:read');
      const row = await getCache(deps.pipelined, principal, request.params.id, 'caches:read');
      setEtag(reply, row.id, row.version);
      return { data: await toCacheWithReport(deps.pipelined, row) };
    },
  );
}
