// The /v1 API: the routing table, behind credential authentication, per-credential rate limits
// and Idempotency-Key handling; the OpenAPI document and its docs page are generated from it.
import type { FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { Problem } from '../../problem.ts';
import { requireCredential } from '../../plugins/credential-auth.ts';
import { registerIdempotency } from '../../plugins/idempotency.ts';
import type { V1Deps } from './support/deps.ts';
import type { Redis } from 'ioredis';
import type { RateLimitStore } from '../../services/rate-limit.ts';
import { documentSharedHeaders } from './support/openapi-headers.ts';
import { registerGetWorkspace } from './workspace/get-workspace.ts';
import { registerGetCaches } from './caches/get-caches.ts';
import { registerPostCache } from './caches/post-cache.ts';
import { registerGetCache } from './caches/get-cache.ts';
import { registerPatchCache } from './caches/patch-cache.ts';
import { registerDeleteCache } from './caches/delete-cache.ts';
import { registerGetCacheMetrics } from './caches/get-cache-metrics.ts';
import { registerGetRules } from './rules/get-rules.ts';
import { registerPostRule } from './rules/post-rule.ts';
import { registerGetRule } from './rules/get-rule.ts';
import { registerPatchRule } from './rules/patch-rule.ts';
import { registerDeleteRule } from './rules/delete-rule.ts';
import { registerPostConnectionString } from './connection-strings/post-connection-string.ts';
import { registerGetConnectionTypes } from './connect/get-connection-types.ts';
import { registerPostConnectSession } from './connect/post-connect-session.ts';
import { registerGetConnectSession } from './connect/get-connect-session.ts';
import { registerPostConnectExchange } from './connect/post-connect-exchange.ts';
import { registerGetConnections } from './connections/get-connections.ts';
import { registerGetConnection } from './connections/get-connection.ts';
import { registerDeleteConnection } from './connections/delete-connection.ts';
import { registerPostConnectionCache } from './connections/post-connection-cache.ts';
import { registerGetEvents } from './events/get-events.ts';
import { registerGetApiKeys } from './apikeys/get-apikeys.ts';
import { registerPostApiKey } from './apikeys/post-apikey.ts';
import { registerDeleteApiKey } from './apikeys/delete-apikey.ts';
import { registerGetServiceTokens } from './service-tokens/get-service-tokens.ts';
import { registerPostServiceToken } from './service-tokens/post-service-token.ts';
import { registerDeleteServiceToken } from './service-tokens/delete-service-token.ts';
import { registerGetWebhooks } from './webhooks/get-webhooks.ts';
import { registerPostWebhook } from './webhooks/post-webhook.ts';
import { registerDeleteWebhook } from './webhooks/delete-webhook.ts';
import { registerGetWebhookDeliveries } from './webhooks/get-webhook-deliveries.ts';

export interface V1Options extends V1Deps {
  /** Key material for sealing stored idempotent responses. */
  rootSecret: string;
  /** Requests per minute per credential. */
  rateLimitPerMinute: number;
  /** Counters for failed-authentication throttling (shared through Redis when configured). */
  counters?: RateLimitStore;
  /** The shared tier: @fastify/rate-limit counts there, so the limit is per credential, not per node. */
  redis?: Redis;
}

const ROUTES = [
  registerGetWorkspace,
  registerGetCaches,
  registerPostCache,
  registerGetCache,
  registerPatchCache,
  registerDeleteCache,
  registerGetCacheMetrics,
  registerGetRules,
  registerPostRule,
  registerGetRule,
  registerPatchRule,
  registerDeleteRule,
  registerPostConnectionString,
  registerGetConnectionTypes,
  registerPostConnectSession,
  registerGetConnectSession,
  registerPostConnectExchange,
  registerGetConnections,
  registerGetConnection,
  registerDeleteConnection,
  registerPostConnectionCache,
  registerGetEvents,
  registerGetApiKeys,
  registerPostApiKey,
  registerDeleteApiKey,
  registerGetServiceTokens,
  registerPostServiceToken,
  registerDeleteServiceToken,
  registerGetWebhooks,
  registerPostWebhook,
  registerDeleteWebhook,
  registerGetWebhookDeliveries,
];

export async function registerV1Routes(app: FastifyInstance, options: V1Options) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Edgegate API',
        version: '1.0.0',
        description:
          'Manage caches, cache rules, connection strings and machine credentials. Errors are RFC 9457 problem+json.',
      },
      servers: [{ url: '/' }],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'OAuth access token or API key (egk_…)',
          },
          basic: { type: 'http', scheme: 'basic', description: 'email:API key' },
          serviceToken: {
            type: 'apiKey',
            in: 'header',
            name: 'Authorization',
            description: '<service token id>:<token>',
          },
        },
      },
      security: [{ bearer: [] }, { basic: [] }, { serviceToken: [] }],
    },
    hideUntagged: true,
    transform: jsonSchemaTransform,
    transformObject: (document) =>
      documentSharedHeaders(
        'openapiObject' in document ? document.openapiObject : document.swaggerObject,
      ),
  });

  await app.register(
    async (v1) => {
      v1.setValidatorCompiler(validatorCompiler);
      v1.setSerializerCompiler(serializerCompiler);
      requireCredential(v1, options.db, options.counters);
      await v1.register(rateLimit, {
        hook: 'preHandler',
        max: options.rateLimitPerMinute,
        timeWindow: '1 minute',
        ...(options.redis
          ? { redis: options.redis, nameSpace: 'edgegate:api-rl:', skipOnError: true }
          : {}),
        keyGenerator: (request) =>
          request.principal
            ? `${request.principal.kind}:${request.principal.credentialId}`
            : request.ip,
        errorResponseBuilder: (_request, context) =>
          new Problem(
            'rate_limited',
            429,
            `Too many requests for this credential: at most ${context.max} a minute. Retry after ${Math.ceil(context.ttl / 1000)} s.`,
            { headers: { 'retry-after': String(Math.ceil(context.ttl / 1000)) } },
          ),
      });
      registerIdempotency(v1, options.db, options.rootSecret);
      for (const register of ROUTES) register(v1, options);
    },
    { prefix: '/v1' },
  );

  app.get('/v1/openapi.json', { logLevel: 'warn' }, async () => app.swagger());
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { url: '/v1/openapi.json' },
    staticCSP: true,
  });
}
