// Builds the control-plane HTTP app; the order of registration is the boot order.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import cookie from '@fastify/cookie';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { Store } from './db/store.ts';
import { registerProblemHandler, sendProblem, toProblem } from './plugins/problem-handler.ts';
import { registerRejectUnstorableText } from './plugins/reject-unstorable-text.ts';
import { REQUEST_ID_HEADER, registerRequestIdHeader, requestIdOf } from './plugins/request-id.ts';
import { registerConsoleSession } from './plugins/console-session.ts';
import { createMetricsRegistry, registerHttpMetrics } from './plugins/metrics.ts';
import type { Registry } from 'prom-client';
import { registerHealthRoutes } from './routes/health.ts';
import { registerHomeRoutes } from './routes/console/home.ts';
import { registerSignupRoutes } from './routes/console/signup.ts';
import { registerLoginRoutes } from './routes/console/login.ts';
import { registerWorkspacesRoutes } from './routes/console/workspaces.ts';
import { registerWorkspaceRoutes } from './routes/console/workspace.ts';
import { registerInvitationRoutes } from './routes/console/invitation.ts';
import { registerIntegrationsRoutes } from './routes/console/integrations.ts';
import { registerAuthorizedAppsRoutes } from './routes/console/authorized-apps.ts';
import type { EdgeSessions } from './services/edge-sessions.ts';
import { registerCachesRoutes } from './routes/console/caches.ts';
import { registerCredentialsRoutes } from './routes/console/credentials.ts';
import { registerWebhooksRoutes } from './routes/console/webhooks.ts';
import { registerV1Routes } from './routes/v1/index.ts';
import { createProvider, type EdgegateProvider } from './oauth/provider.ts';
import { mountProvider } from './oauth/mount.ts';
import { registerInteractionRoutes } from './oauth/interactions.ts';
import { createLoginThrottle } from './services/login-throttle.ts';
import { startHousekeeping } from './services/housekeeping.ts';
import { createMemoryRateLimitStore, type RateLimitStore } from './services/rate-limit.ts';
import { EventEmitter } from 'node:events';
import { createReadiness, storeAnswers, type Readiness } from './services/readiness.ts';
import { checkReplicationPrerequisites } from './replication/prerequisites.ts';
import { createKeyring } from './connect/keyring.ts';
import { registerHostedConnectPages } from './routes/connect/hosted-page.ts';
import { startWebhookDispatcher } from './connect/webhook-dispatcher.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The OAuth engine, for operators' tools and benchmarks that mint artefacts directly. */
    oauth: EdgegateProvider;
  }
}

export interface AppDeps {
  config: Pick<Config, 'publicUrl' | 'secret'> &
    Partial<
      Pick<
        Config,
        | 'previousSecret'
        | 'trustProxy'
        | 'accessTokenTtlSeconds'
        | 'originPrivate'
        | 'apiRateLimit'
        | 'edgeHost'
        | 'edgePgPort'
        | 'edgeMysqlPort'
        | 'edgeMssqlPort'
        | 'edgeTls'
      >
    >;
  /** Tests resolve origin hostnames without DNS. */
  resolveOrigin?: (hostname: string) => Promise<string[]>;
  store: Store;
  logger: Logger;
  /** The shared tier's counters (REDIS_URL): limits and throttles count across nodes there. */
  rateLimitStore?: RateLimitStore;
  /** What /readyz checks (and the drain switch); default: the store answers. */
  readiness?: Readiness;
  /** Shared with an edge in the same process, so /metrics shows both planes. */
  metricsRegistry?: Registry;
  /**
   * An edge in the same process: flushed before metrics are read, so they are current; its
   * sessions are listed and ended by the API.
   */
  edge?: { flushMetrics(): Promise<void> } & Partial<EdgeSessions>;
  /** How long the connect page's "Test and save" may take (default 10 s). */
  connectTestTimeoutMs?: number;
  /** Webhook delivery timing; tests shorten the back-off. */
  webhooks?: { retryBaseMs?: number; pollMs?: number; timeoutMs?: number; maxAgeMs?: number };
}

export async function buildApp({
  config,
  store,
  logger,
  rateLimitStore,
  readiness,
  resolveOrigin,
  metricsRegistry,
  edge,
  connectTestTimeoutMs,
  webhooks,
}: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Form bodies and JSON above this are refused with 413 before anything parses them.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    genReqId: requestIdOf,
    // Errors Fastify raises before routing (a malformed URL, an over-long parameter) are problems too.
    frameworkErrors: (error, request, reply) =>
      sendProblem(request, reply.header(REQUEST_ID_HEADER, request.id), toProblem(error)),
    // Client addresses feed log-in throttling; only trust forwarded headers from known proxies.
    trustProxy: toFastifyTrustProxy(config.trustProxy ?? false),
  });
  const db = store.db;
  const stopHousekeeping = startHousekeeping(db, app.log);
  app.addHook('onClose', async () => stopHousekeeping());
  const publicOrigin = new URL(config.publicUrl).origin;

  registerRequestIdHeader(app);
  registerProblemHandler(app, { storeAnswers: storeAnswers(db) });
  registerRejectUnstorableText(app);
  registerHttpMetrics(app, metricsRegistry ?? createMetricsRegistry());
  await app.register(cookie);
  await app.register(formbody);
  registerConsoleSession(app, {
    db,
    secret: config.secret,
    secureCookies: config.publicUrl.startsWith('https:'),
    publicOrigin,
  });

  // One set of counters for every throttle: per process, or shared by all nodes through Redis.
  const counters = rateLimitStore ?? createMemoryRateLimitStore();
  const throttle = createLoginThrottle(counters);
  registerHealthRoutes(app, readiness ?? createReadiness({ store: storeAnswers(db) }));
  registerHomeRoutes(app);
  registerSignupRoutes(app, db);
  registerLoginRoutes(app, db, throttle);
  registerWorkspacesRoutes(app, db);
  registerWorkspaceRoutes(app, db, config.publicUrl);
  registerInvitationRoutes(app, db);
  // What the console pages and the API share to act on caches.
  const keyring = createKeyring(config.secret, config.previousSecret);
  const resourceDeps = {
    db,
    pipelined: store.pipelined,
    keyring,
    replication: {
      keyring,
      check: checkReplicationPrerequisites,
      privateRanges: config.originPrivate ?? 'allow',
    },
    bus: new EventEmitter(),
    publicUrl: config.publicUrl,
    originPolicy: {
      privateRanges: config.originPrivate ?? 'allow',
      ...(resolveOrigin ? { resolve: resolveOrigin } : {}),
    },
    edge: {
      host: config.edgeHost ?? 'localhost',
      pgPort: config.edgePgPort ?? 6432,
      mysqlPort: config.edgeMysqlPort ?? 6033,
      mssqlPort: config.edgeMssqlPort ?? 1433,
      // Unknown (undefined) when the caller did not say: then no warning is given either way.
      ...(config.edgeTls === undefined ? {} : { pgTls: config.edgeTls !== null }),
    },
    ...(edge ? { flushEdgeMetrics: () => edge.flushMetrics() } : {}),
    ...(edge?.sessions && edge.kill
      ? { edgeSessions: { sessions: edge.sessions, kill: edge.kill } }
      : {}),
  };
  registerIntegrationsRoutes(app, db);
  registerAuthorizedAppsRoutes(app, db);
  registerCachesRoutes(app, resourceDeps);
  registerCredentialsRoutes(app, db);
  registerWebhooksRoutes(app, resourceDeps);
  await registerHostedConnectPages(app, {
    db,
    keyring: resourceDeps.keyring,
    bus: resourceDeps.bus,
    secret: config.secret,
    publicUrl: config.publicUrl,
    originPolicy: resourceDeps.originPolicy,
    counters,
    ...(connectTestTimeoutMs ? { testTimeoutMs: connectTestTimeoutMs } : {}),
  });

  const oauth = createProvider(
    db,
    {
      publicUrl: config.publicUrl,
      secret: config.secret,
      accessTokenTtlSeconds: config.accessTokenTtlSeconds ?? 3600,
      trustProxy: config.trustProxy !== undefined && config.trustProxy !== false,
      counters,
    },
    store.pipelined,
  );
  app.decorate('oauth', oauth);
  app.addHook('onClose', async () => oauth.dispose());
  mountProvider(app, oauth.provider);
  registerInteractionRoutes(app, { db, throttle, ...oauth });
  await registerV1Routes(app, {
    ...resourceDeps,
    rootSecret: config.secret,
    rateLimitPerMinute: config.apiRateLimit ?? 1200,
    counters,
  });
  const dispatcher = startWebhookDispatcher({
    db,
    keyring: resourceDeps.keyring,
    logger: app.log,
    policy: resourceDeps.originPolicy,
    bus: resourceDeps.bus,
    ...webhooks,
  });
  app.addHook('onClose', async () => dispatcher.stop());
  return app;
}

function toFastifyTrustProxy(value: boolean | number | string) {
  return typeof value === 'number' ? (_address: string, hop: number) => hop < value : value;
}
