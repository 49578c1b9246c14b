// GET /v1/apikeys: the caller's own API keys in this workspace, paginated; never their secrets.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { apiKeySchema, pageOf, paginationQuerySchema } from '@edgegate/contract';
import { listApiKeys, toApiKey } from '../../../services/api-keys.ts';
import { decodeCursor, toPage } from '../support/cursor.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetApiKeys(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/apikeys',
    {
      schema: {
        summary: 'List your API keys',
        description:
          'Keys of the person behind the credential, in its workspace. A credential that came through an OAuth app sees only the keys minted through that app. Service tokens get 403.',
        tags: ['apikeys'],
        querystring: paginationQuerySchema,
        response: { 200: pageOf(apiKeySchema), ...problemResponses },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const rows = await listApiKeys(deps.db, request.principal!, {
        afterId: decodeCursor(cursor),
        limit,
      });
      const { items, nextCursor } = toPage(rows, limit);
      return { data: items.map(toApiKey), nextCursor };
    },
  );
}
