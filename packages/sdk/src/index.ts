// @edgegate/sdk: what partners install. Browser-safe (fetch and Web Crypto only); the desktop and
// CLI sign-ins that need a local server or a browser to launch are in `@edgegate/sdk/node`.
export { EdgegateClient, type EdgegateClientOptions, type EventPage } from './client.ts';
export type { Credentials, OAuthCredentials } from './credentials.ts';
export { EdgegateApiError, EdgegateAuthError, OAuthError } from './errors.ts';
export {
  OAUTH_PATHS,
  createAuthorizationUrl,
  discover,
  exchangeCode,
  parseCallback,
  refresh,
  revoke,
  type AuthorizationRequest,
  type AuthorizationUrlOptions,
  type CallbackChecks,
  type ClientCredentials,
  type ExchangeCodeOptions,
  type RefreshOptions,
  type RevokeOptions,
  type ServerMetadata,
  type ServerOptions,
  type TokenSet,
} from './oauth.ts';
export { paginate, type ListOptions, type Page } from './pagination.ts';
export { connectPageUrl, createConnectSession, exchangeConnectCode } from './connect.ts';
export type * from './types.ts';
export {
  ConnectionStringError,
  LEGACY_WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_ID_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  WebhookSignatureError,
  signWebhook,
  signWebhookMessage,
  toEdgeConnectionString,
  verifyWebhook,
  type AppScope,
  type EdgeConnectionStringInput,
  type VerifyWebhookOptions,
  type WebhookHeaders,
  type WebhookMessage,
} from '@edgegate/contract';
