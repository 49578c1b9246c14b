// POST /v1/webhooks/{id}/test: "Send a test event" — a signed `webhook.test` delivery to this
// endpoint only; its outcome shows in GET /v1/webhooks/{id}/deliveries.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { dataOf } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { sendTestEvent } from '../../../connect/webhooks.ts';
import { announceDeliveries } from '../../../connect/events.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { webhookParamsSchema } from './delete-webhook.ts';

const testEventQueuedSchema = z.object({
  eventId: z.string().describe('The test event; also its webhook-id header'),
  deliveryId: z.string().describe('Follow it in GET /v1/webhooks/{id}/deliveries'),
});

export function registerPostWebhookTest(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/webhooks/:id/test',
    {
      schema: {
        summary: 'Send a test event',
        description:
          'Needs connections:write. Queues a `webhook.test` event for this endpoint only, signed and retried like any delivery; it is not added to GET /v1/events.',
        tags: ['webhooks'],
        params: webhookParamsSchema,
        response: { 202: dataOf(testEventQueuedSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      const queued = await sendTestEvent(deps.db, principal, request.params.id);
      announceDeliveries(deps.bus);
      return reply.code(202).send({ data: queued });
    },
  );
}
