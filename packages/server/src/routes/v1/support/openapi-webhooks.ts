// The OpenAPI 3.1 top-level `webhooks` section: one entry per event type a delivery can carry,
// its body generated from the contract's zod schema (the same one the payload is described by).
import { z } from 'zod';
import { DELIVERY_EVENT_TYPES, webhookPayloadSchema } from '@edgegate/contract';

const SIGNATURE_HEADERS = [
  ['webhook-id', 'The event id: the same on every retry'],
  ['webhook-timestamp', 'Unix seconds of this attempt'],
  [
    'webhook-signature',
    'Standard Webhooks: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, space-separated, one per secret in use',
  ],
  ['edgegate-signature', 'Deprecated: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`'],
].map(([name, description]) => ({
  name,
  in: 'header',
  required: true,
  description,
  schema: { type: 'string' },
}));

export function documentWebhooks<T>(document: T): T {
  const webhooks: Record<string, unknown> = {};
  for (const type of DELIVERY_EVENT_TYPES) {
    const { $schema: _dialect, ...schema } = z.toJSONSchema(webhookPayloadSchema(type), {
      io: 'output',
    });
    webhooks[type] = {
      post: {
        summary: `The ${type} event`,
        parameters: SIGNATURE_HEADERS,
        requestBody: { required: true, content: { 'application/json': { schema } } },
        responses: {
          '2XX': {
            description: 'Received; any other answer is retried or failed (see POST /v1/webhooks)',
          },
        },
      },
    };
  }
  return { ...document, webhooks };
}
