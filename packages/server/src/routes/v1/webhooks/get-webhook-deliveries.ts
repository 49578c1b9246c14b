// GET /v1/webhooks/{id}/deliveries: the endpoint's latest deliveries, to see what failed and why.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { webhookDeliverySchema } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { DELIVERIES_SHOWN, listDeliveries, toWebhookDelivery } from '../../../connect/webhooks.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { webhookParamsSchema } from './delete-webhook.ts';

export function registerGetWebhookDeliveries(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/webhooks/:id/deliveries',
    {
      schema: {
        summary: "List a webhook's deliveries",
        description: `The latest ${DELIVERIES_SHOWN}, newest first. Missed events can always be replayed from GET /v1/events.`,
        tags: ['webhooks'],
        params: webhookParamsSchema,
        response: {
          200: z.object({ data: z.array(webhookDeliverySchema) }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const principal = requireWorkspaceScope(request, 'connections:read');
      const rows = await listDeliveries(deps.db, principal, request.params.id);
      return { data: rows.map(toWebhookDelivery) };
    },
  );
}
