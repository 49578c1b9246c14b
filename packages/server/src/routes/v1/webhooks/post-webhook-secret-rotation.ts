// POST /v1/webhooks/{id}/rotate-secret: a new signing secret, returned this once; the previous one
// keeps signing beside it for the overlap.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { dataOf, webhookSecretRotatedSchema, webhookSecretRotateSchema } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { rotateWebhookSecret, toWebhook } from '../../../connect/webhooks.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';
import { webhookParamsSchema } from './delete-webhook.ts';

export function registerPostWebhookSecretRotation(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/webhooks/:id/rotate-secret',
    {
      schema: {
        summary: "Rotate a webhook's signing secret",
        description:
          'Needs connections:write. Until `previousSecretExpiresAt` every delivery is signed with the new and the previous secret (`webhook-signature: v1,… v1,…`), so the receiver can switch without missing a delivery.',
        tags: ['webhooks'],
        params: webhookParamsSchema,
        body: webhookSecretRotateSchema,
        response: { 200: dataOf(webhookSecretRotatedSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      const { row, secret, previousSecretExpiresAt } = await rotateWebhookSecret(
        deps.db,
        deps.keyring,
        principal,
        request.params.id,
        request.body.overlapSeconds,
      );
      return reply
        .header('cache-control', 'no-store')
        .send({ data: { ...toWebhook(row), secret, previousSecretExpiresAt } });
    },
  );
}
