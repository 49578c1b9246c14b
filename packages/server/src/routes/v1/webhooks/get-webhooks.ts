// GET /v1/webhooks: the workspace's webhook endpoints (never their secrets), paginated.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { pageOf, paginationQuerySchema, webhookSchema } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { listWebhooks, toWebhook } from '../../../connect/webhooks.ts';
import { decodeCursor, toPage } from '../support/cursor.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetWebhooks(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/webhooks',
    {
      schema: {
        summary: 'List webhooks',
        tags: ['webhooks'],
        querystring: paginationQuerySchema,
        response: { 200: pageOf(webhookSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireWorkspaceScope(request, 'connections:read');
      const { limit, cursor } = request.query;
      const rows = await listWebhooks(deps.db, principal, { afterId: decodeCursor(cursor), limit });
      const { items, nextCursor } = toPage(rows, limit);
      return { data: items.map(toWebhook), nextCursor };
    },
  );
}
