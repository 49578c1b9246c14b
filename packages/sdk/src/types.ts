// The API's request and response types, inferred from the same zod schemas the server validates
// with (`@edgegate/contract`), so the client cannot drift from the server.
import type { z } from 'zod';
import type {
  apiKeyCreatedSchema,
  apiKeySchema,
  connectExchangeResultSchema,
  connectionCacheCreateSchema,
  connectionCacheResultSchema,
  connectionStringSchema,
  connectSessionCreatedSchema,
  serviceTokenCreatedSchema,
  serviceTokenSchema,
  webhookCreatedSchema,
  webhookCreateSchema,
  webhookSecretRotatedSchema,
  webhookSecretRotateSchema,
  webhookDeliverySchema,
  webhookSchema,
  ApiKeyCreate,
  Cache,
  CacheCreate,
  CacheMetrics,
  CacheUpdate,
  Connection,
  ConnectionStringRequest,
  ConnectionType,
  ConnectSession,
  ConnectSessionCreate,
  MetricsWindow,
  ProblemBody,
  Rule,
  RuleCreate,
  RuleUpdate,
  ServiceTokenCreate,
  Workspace,
  WorkspaceEvent,
} from '@edgegate/contract';

// Re-exported as a list of names (not `export … from`): the declaration bundler inlines them.
export type {
  ApiKeyCreate,
  Cache,
  CacheCreate,
  CacheMetrics,
  CacheUpdate,
  Connection,
  ConnectionStringRequest,
  ConnectionType,
  ConnectSession,
  ConnectSessionCreate,
  MetricsWindow,
  ProblemBody,
  Rule,
  RuleCreate,
  RuleUpdate,
  ServiceTokenCreate,
  Workspace,
  WorkspaceEvent,
};

export type ApiKey = z.infer<typeof apiKeySchema>;
/** Carries `key`, the secret, shown this once. */
export type ApiKeyCreated = z.infer<typeof apiKeyCreatedSchema>;
export type ServiceToken = z.infer<typeof serviceTokenSchema>;
/** Carries `token`, the secret, shown this once; send `Authorization: <id>:<token>`. */
export type ServiceTokenCreated = z.infer<typeof serviceTokenCreatedSchema>;
export type EdgeConnectionString = z.infer<typeof connectionStringSchema>;
export type ConnectSessionCreated = z.infer<typeof connectSessionCreatedSchema>;
export type ConnectExchangeResult = z.infer<typeof connectExchangeResultSchema>;
export type ConnectionCacheCreate = z.input<typeof connectionCacheCreateSchema>;
export type ConnectionCacheResult = z.infer<typeof connectionCacheResultSchema>;
export type Webhook = z.infer<typeof webhookSchema>;
export type WebhookCreate = z.input<typeof webhookCreateSchema>;
/** Carries `secret` (`whsec_…`), the signing secret, shown this once. */
export type WebhookCreated = z.infer<typeof webhookCreatedSchema>;
export type WebhookDelivery = z.infer<typeof webhookDeliverySchema>;
export type WebhookSecretRotate = z.input<typeof webhookSecretRotateSchema>;
export type WebhookSecretRotated = z.infer<typeof webhookSecretRotatedSchema>;
