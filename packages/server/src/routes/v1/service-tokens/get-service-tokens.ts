// GET /v1/service-tokens: the workspace's service tokens and their accesses (admins only).
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { pageOf, paginationQuerySchema, serviceTokenSchema } from '@edgegate/contract';
import { listServiceTokens, toServiceToken } from '../../../services/service-tokens.ts';
import { decodeCursor, toPage } from '../support/cursor.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetServiceTokens(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/service-tokens',
    {
      schema: {
        summary: 'List service tokens',
        description: 'For admins of the workspace; never shows the secrets.',
        tags: ['service-tokens'],
        querystring: paginationQuerySchema,
        response: { 200: pageOf(serviceTokenSchema), ...problemResponses },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const { rows, accesses } = await listServiceTokens(deps.db, request.principal!, {
        afterId: decodeCursor(cursor),
        limit,
      });
      const { items, nextCursor } = toPage(rows, limit);
      return {
        data: items.map((row) => toServiceToken(row, accesses.get(row.id) ?? [])),
        nextCursor,
      };
    },
  );
}
