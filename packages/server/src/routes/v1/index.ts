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
import { requireCredential } from '../../plugins/credential-auth.ts';
import { registerIdempotency } from '../../plugins/idempotency.ts';
import type { V1Deps } from './support/deps.ts';
import {
  createMemoryRateLimitStore,
  rateLimitPluginStore,
  type RateLimitStore,
} from '../../services/rate-limit.ts';
import { documentSharedHeaders } from './support/openapi-headers.ts';
import {
  RATE_LIMIT_WINDOW_SECONDS,
  registerRateLimitHeaders,
} from './support/rate-limit-headers.ts';
import { registerGetWorkspace } from './workspace/get-workspace.ts';
import { registerGetCaches } from './caches/get-caches.ts';
import { registerPostCache } from './caches/post-cache.ts';
import { registerGetCache } from './caches/get-cache.ts';
import { registerPatchCache } from './caches/patch-cache.ts';
import { registerDeleteCache } from './caches/delete-cache.ts';
import { registerGetCacheMetrics } from './caches/get-cache-metrics.ts';
import { registerGetCacheSessions } from './caches/get-cache-sessions.ts';
import { registerDeleteCacheSession } from './caches/delete-cache-session.ts';
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
import { registerPostWebhookSecretRotation } from './webhooks/post-webhook-secret-rotation.ts';
import { registerPostWebhookTest } from './webhooks/post-webhook-test.ts';
import { documentWebhooks } from './support/openapi-webhooks.ts';

export interface V1Options extends V1Deps {
  /** Key material for sealing stored idempotent responses. */
  rootSecret: string;
  /** Requests per minute per credential. */
  rateLimitPerMinute: number;
  /**
   * Counters for the per-credential limit and failed-authentication throttling: shared through
   * Redis when configured, so the limit is per credential, not per node.
   */
  counters?: RateLimitStore;
}

const ROUTES = [
  registerGetWorkspace,
  registerGetCaches,
  registerPostCache,
  registerGetCache,
  registerPatchCache,
  registerDeleteCache,
  registerGetCacheMetrics,
  registerGetCacheSessions,
  registerDeleteCacheSession,
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
  registerPostWebhookSecretRotation,
  registerPostWebhookTest,
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
      documentWebhooks(
        documentSharedHeaders(
          'openapiObject' in document ? document.openapiObject : document.swaggerObject,
        ),
      ),
  });

  await app.register(
    async (v1) => {
      v1.setValidatorCompiler(validatorCompiler);
      v1.setSerializerCompiler(serializerCompiler);
      const counters = options.counters ?? createMemoryRateLimitStore();
      requireCredential(v1, options.db, counters);
      // The plugin only counts (global: false); registerRateLimitHeaders answers with the counts.
      await v1.register(rateLimit, {
        global: false,
        max: options.rateLimitPerMinute,
        timeWindow: RATE_LIMIT_WINDOW_SECONDS * 1000,
        store: rateLimitPluginStore(counters),
        skipOnError: true,
        keyGenerator: (request) =>
          request.principal
            ? `${request.principal.kind}:${request.principal.credentialId}`
            : request.ip,
      });
      registerRateLimitHeaders(v1, options.rateLimitPerMinute);
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
