// POST /v1/webhooks: register an endpoint for the workspace's events; its signing secret is
// returned this once.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { dataOf, webhookCreatedSchema, webhookCreateSchema } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { createWebhook, toWebhook } from '../../../connect/webhooks.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostWebhook(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/webhooks',
    {
      schema: {
        summary: 'Create a webhook',
        description:
          'Needs connections:write. Each event is POSTed as JSON signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the base64 after `whsec_`), with the legacy `Edgegate-Signature: t=…,v1=…` beside it, `Edgegate-Event-Id` and `Edgegate-Delivery-Id`; answer 2xx. 429, 5xx, timeouts and network errors are retried with exponential back-off for 24 hours; other answers, redirects included, fail the delivery. The URL is https (http only on a loopback host) and its host passes the origin guard. Without `events`, the webhook gets every event type the credential may read.',
        tags: ['webhooks'],
        body: webhookCreateSchema,
        response: { 201: dataOf(webhookCreatedSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      const { row, secret } = await createWebhook(
        deps.db,
        deps.keyring,
        principal,
        request.body,
        deps.originPolicy,
      );
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ data: { ...toWebhook(row), secret } });
    },
  );
}
