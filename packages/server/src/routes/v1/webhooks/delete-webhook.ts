// DELETE /v1/webhooks/{id}: stop sending events to an endpoint; its queued deliveries are dropped.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { deleteWebhook } from '../../../connect/webhooks.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export const webhookParamsSchema = z.object({
  id: z.string().max(100).describe('The webhook id'),
});

export function registerDeleteWebhook(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/webhooks/:id',
    {
      schema: {
        summary: 'Delete a webhook',
        tags: ['webhooks'],
        params: webhookParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      await deleteWebhook(deps.db, principal, request.params.id);
      return reply.code(204).send(null);
    },
  );
}
