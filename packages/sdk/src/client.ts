// The typed /v1 client: one method per endpoint (packages/server/src/routes/v1/index.ts), grouped
// by resource, single objects unwrapped from their `{data}` envelope, lists as pages.
import { authorizerFor, type Credentials } from './credentials.ts';
import { fetchOf, trimBaseUrl, type TokenSet } from './oauth.ts';
import { paginate, type ListOptions, type Page } from './pagination.ts';
import { Transport, type ApiRequest } from './transport.ts';
import type {
  ApiKey,
  ApiKeyCreate,
  ApiKeyCreated,
  Cache,
  CacheCreate,
  CacheMetrics,
  CacheUpdate,
  Connection,
  ConnectionCacheCreate,
  ConnectionCacheResult,
  ConnectionStringRequest,
  ConnectionType,
  ConnectExchangeResult,
  ConnectSession,
  ConnectSessionCreate,
  ConnectSessionCreated,
  EdgeConnectionString,
  MetricsWindow,
  Rule,
  RuleCreate,
  RuleUpdate,
  ServiceToken,
  ServiceTokenCreate,
  ServiceTokenCreated,
  Webhook,
  WebhookCreate,
  WebhookCreated,
  WebhookSecretRotate,
  WebhookSecretRotated,
  WebhookDelivery,
  Workspace,
  WorkspaceEvent,
} from './types.ts';

export interface EdgegateClientOptions {
  /** The Edgegate server, e.g. `https://edgegate.example`. */
  baseUrl: string;
  credentials: Credentials;
  /**
   * Called with every rotated token pair (OAuth only) before the call that needed it goes on.
   * Persist it: the previous refresh token no longer works.
   */
  onTokens?: (tokens: TokenSet) => void | Promise<void>;
  fetch?: typeof fetch;
  /** Retries of a call answered 429 or 503; 3 unless set. */
  maxRetries?: number;
}

/** A page of the event log: `nextCursor` is always set; keep it to ask later for what happened since. */
export interface EventPage {
  data: WorkspaceEvent[];
  nextCursor: string;
  hasMore: boolean;
}

const segment = encodeURIComponent;

export class EdgegateClient {
  readonly #transport: Transport;

  constructor(options: EdgegateClientOptions) {
    const baseUrl = trimBaseUrl(options.baseUrl);
    const fetch = fetchOf(options);
    this.#transport = new Transport({
      baseUrl,
      fetch,
      maxRetries: options.maxRetries ?? 3,
      authorizer: authorizerFor(options.credentials, {
        baseUrl,
        fetch,
        onTokens: options.onTokens,
      }),
    });
  }

  /** The workspace the credential is bound to. */
  readonly workspace = {
    get: () => this.#data<Workspace>({ method: 'GET', path: '/v1/workspace' }),
  };

  readonly caches = {
    list: (options: ListOptions = {}) =>
      this.#call<Page<Cache>>({ method: 'GET', path: '/v1/caches', query: { ...options } }),
    pages: (options: ListOptions = {}) => paginate(this.caches.list, options),
    get: (id: string) => this.#data<Cache>({ method: 'GET', path: `/v1/caches/${segment(id)}` }),
    /** The hostname must resolve and pass the server's origin guard. */
    create: (input: CacheCreate) =>
      this.#data<Cache>({ method: 'POST', path: '/v1/caches', body: input }),
    update: (id: string, input: CacheUpdate) =>
      this.#data<Cache>({ method: 'PATCH', path: `/v1/caches/${segment(id)}`, body: input }),
    delete: (id: string) =>
      this.#call<void>({ method: 'DELETE', path: `/v1/caches/${segment(id)}` }),
    metrics: (id: string, options: { window?: MetricsWindow } = {}) =>
      this.#data<CacheMetrics>({
        method: 'GET',
        path: `/v1/caches/${segment(id)}/metrics`,
        query: { ...options },
      }),
  };

  readonly rules = {
    list: (cacheId: string, options: ListOptions = {}) =>
      this.#call<Page<Rule>>({
        method: 'GET',
        path: `/v1/caches/${segment(cacheId)}/rules`,
        query: { ...options },
      }),
    pages: (cacheId: string, options: ListOptions = {}) =>
      paginate((page) => this.rules.list(cacheId, page), options),
    get: (cacheId: string, ruleId: string) =>
      this.#data<Rule>({ method: 'GET', path: ruleUrl(cacheId, ruleId) }),
    create: (cacheId: string, input: RuleCreate) =>
      this.#data<Rule>({
        method: 'POST',
        path: `/v1/caches/${segment(cacheId)}/rules`,
        body: input,
      }),
    update: (cacheId: string, ruleId: string, input: RuleUpdate) =>
      this.#data<Rule>({ method: 'PATCH', path: ruleUrl(cacheId, ruleId), body: input }),
    delete: (cacheId: string, ruleId: string) =>
      this.#call<void>({ method: 'DELETE', path: ruleUrl(cacheId, ruleId) }),
  };

  readonly connectionStrings = {
    /** The origin's connection string in, the one through the edge out; never stored. */
    create: (input: ConnectionStringRequest) =>
      this.#data<EdgeConnectionString>({
        method: 'POST',
        path: '/v1/connection-strings',
        body: input,
      }),
  };

  readonly apiKeys = {
    list: (options: ListOptions = {}) =>
      this.#call<Page<ApiKey>>({ method: 'GET', path: '/v1/apikeys', query: { ...options } }),
    pages: (options: ListOptions = {}) => paginate(this.apiKeys.list, options),
    /** An OAuth access token may mint an API key for the same user and workspace. */
    create: (input: ApiKeyCreate) =>
      this.#data<ApiKeyCreated>({ method: 'POST', path: '/v1/apikeys', body: input }),
    delete: (id: string) =>
      this.#call<void>({ method: 'DELETE', path: `/v1/apikeys/${segment(id)}` }),
  };

  readonly serviceTokens = {
    list: (options: ListOptions = {}) =>
      this.#call<Page<ServiceToken>>({
        method: 'GET',
        path: '/v1/service-tokens',
        query: { ...options },
      }),
    pages: (options: ListOptions = {}) => paginate(this.serviceTokens.list, options),
    create: (input: ServiceTokenCreate) =>
      this.#data<ServiceTokenCreated>({ method: 'POST', path: '/v1/service-tokens', body: input }),
    delete: (id: string) =>
      this.#call<void>({ method: 'DELETE', path: `/v1/service-tokens/${segment(id)}` }),
  };

  readonly connectionTypes = {
    /** The connect catalog, each type with its form as JSON Schema. */
    list: () => this.#data<ConnectionType[]>({ method: 'GET', path: '/v1/connection-types' }),
  };

  readonly connect = {
    /** A single-use link to the hosted connect page; open `redirect_url` (see `connectPageUrl`). */
    createSession: (input: ConnectSessionCreate) =>
      this.#data<ConnectSessionCreated>({
        method: 'POST',
        path: '/v1/connect/sessions',
        body: input,
      }),
    getSession: (token: string) =>
      this.#data<ConnectSession>({ method: 'GET', path: `/v1/connect/sessions/${segment(token)}` }),
    /** The page's single-use result code → the connection it made. */
    exchange: (code: string) =>
      this.#data<ConnectExchangeResult>({
        method: 'POST',
        path: '/v1/connect/exchange',
        body: { code },
      }),
  };

  readonly connections = {
    list: (options: ListOptions = {}) =>
      this.#call<Page<Connection>>({
        method: 'GET',
        path: '/v1/connections',
        query: { ...options },
      }),
    pages: (options: ListOptions = {}) => paginate(this.connections.list, options),
    get: (id: string) =>
      this.#data<Connection>({ method: 'GET', path: `/v1/connections/${segment(id)}` }),
    delete: (id: string) =>
      this.#call<void>({ method: 'DELETE', path: `/v1/connections/${segment(id)}` }),
    /** A cache in front of the connection's database, with its edge connection string (shown once). */
    createCache: (id: string, input: ConnectionCacheCreate = {}) =>
      this.#data<ConnectionCacheResult>({
        method: 'POST',
        path: `/v1/connections/${segment(id)}/cache`,
        body: input,
      }),
  };

  readonly events = {
    /** Omit `cursor` to start from the first event. */
    list: (options: ListOptions = {}) =>
      this.#call<EventPage>({ method: 'GET', path: '/v1/events', query: { ...options } }),
    /** Pages up to the present; the last one's `nextCursor` is where to resume later. */
    pages: (options: ListOptions = {}) =>
      paginate(this.events.list, options, (page) => (page.hasMore ? page.nextCursor : null)),
  };

  readonly webhooks = {
    list: (options: ListOptions = {}) =>
      this.#call<Page<Webhook>>({ method: 'GET', path: '/v1/webhooks', query: { ...options } }),
    pages: (options: ListOptions = {}) => paginate(this.webhooks.list, options),
    create: (input: WebhookCreate) =>
      this.#data<WebhookCreated>({ method: 'POST', path: '/v1/webhooks', body: input }),
    delete: (id: string) =>
      this.#call<void>({ method: 'DELETE', path: `/v1/webhooks/${segment(id)}` }),
    /** A new signing secret (shown once); the previous one keeps signing during the overlap. */
    rotateSecret: (id: string, input: WebhookSecretRotate = {}) =>
      this.#data<WebhookSecretRotated>({
        method: 'POST',
        path: `/v1/webhooks/${segment(id)}/rotate-secret`,
        body: input,
      }),
    /** The latest delivery attempts, newest first. */
    deliveries: (id: string) =>
      this.#data<WebhookDelivery[]>({
        method: 'GET',
        path: `/v1/webhooks/${segment(id)}/deliveries`,
      }),
  };

  #call<T>(request: ApiRequest): Promise<T> {
    return this.#transport.request<T>(request);
  }

  async #data<T>(request: ApiRequest): Promise<T> {
    return (await this.#transport.request<{ data: T }>(request)).data;
  }
}

function ruleUrl(cacheId: string, ruleId: string): string {
  return `/v1/caches/${segment(cacheId)}/rules/${segment(ruleId)}`;
}
