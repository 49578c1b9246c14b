// The OAuth 2.0 engine (oidc-provider) configured for Edgegate. Every departure from the engine's
// defaults carries a one-line reason.
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { API_SCOPES } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import { findMembershipRole } from '../db/queries/workspaces.ts';
import { deriveKey, safeEqual, sha256 } from '../services/crypto.ts';
import {
  accountMayUseGrant,
  findGrantBinding,
  findGrantWorkspace,
  touchGrant,
} from '../services/grants.ts';
import { createAdapterClass, type ClientRegistry } from './adapter.ts';
import { prefetchedMembership } from './request-state.ts';
import { flushTokenWrites } from './token-writes.ts';
import { signingJwks } from './keys.ts';
import { isEnginePath } from './engine-paths.ts';
import { userCodeThrottle } from './user-code-throttle.ts';
import { clientAuthThrottle } from './client-auth-throttle.ts';
import type { RateLimitStore } from '../services/rate-limit.ts';
import {
  deviceSuccessSource,
  renderError,
  userCodeConfirmSource,
  userCodeInputSource,
} from './pages.ts';

export interface OAuthSettings {
  publicUrl: string;
  secret: string;
  accessTokenTtlSeconds: number;
  trustProxy: boolean;
  /** Shared counters (Redis) for the user-code and client-authentication throttles; per process otherwise. */
  counters?: RateLimitStore;
}

export const GRANT_LIFETIME_SECONDS = 90 * 24 * 3600;
const REFRESH_ROLLING_SECONDS = 30 * 24 * 3600;

/** SPEC §4's paths; the engine's pages sit under /oauth2, away from the console's. */
export const OAUTH_ROUTES = {
  authorization: '/oauth2/auth',
  token: '/oauth2/token',
  revocation: '/oauth2/revoke',
  introspection: '/oauth2/introspect',
  device_authorization: '/oauth2/device/auth',
  code_verification: '/oauth2/device',
  jwks: '/oauth2/jwks',
  end_session: '/oauth2/session/end',
  userinfo: '/oauth2/me',
  pushed_authorization_request: '/oauth2/par',
  registration: '/oauth2/reg',
  backchannel_authentication: '/oauth2/backchannel',
  challenge: '/oauth2/challenge',
} as const;

export function apiResource(publicUrl: string): string {
  return `${publicUrl}/v1`;
}

export async function isMember(db: Db, userId: string, workspaceId: string): Promise<boolean> {
  return (await findMembershipRole(db, workspaceId, userId)) !== undefined;
}

export interface EdgegateProvider {
  provider: Provider;
  clients: ClientRegistry;
  resource: string;
  /** Detaches the engine's caches from app-change notifications. */
  dispose: () => void;
}

/** `pipelined` (store.pipelined) serves the single statements of the token and introspection paths. */
export function createProvider(
  db: Db,
  settings: OAuthSettings,
  pipelined: Db = db,
): EdgegateProvider {
  const { AdapterClass, clients, dispose } = createAdapterClass(db, pipelined);
  const resource = apiResource(settings.publicUrl);

  const configuration: Configuration = {
    // Our store, with bearer values hashed at rest (adapter.ts); the default is in memory.
    adapter: AdapterClass,
    // Only our login and consent pages may finish an interaction.
    interactions: { url: (_ctx, interaction) => `/oauth2/interaction/${interaction.uid}` },
    // The engine's defaults sit at the root (/auth, /token/revocation…); ours are SPEC §4's.
    routes: OAUTH_ROUTES,
    // Tokens are opaque and bound to the API resource; no ID tokens are needed, but the engine
    // validates clients against a signing key, so derive one from the root secret.
    jwks: signingJwks(settings.secret),
    // The only signing key is Ed25519 (the default RS256 would fail every client); code flow only.
    clientDefaults: {
      id_token_signed_response_alg: 'EdDSA',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    // client_secret_jwt would use the stored digest as an HMAC key; client_secret_post would be
    // advertised but refused, since every confidential app is registered for client_secret_basic
    // (the registry keeps no per-app method). So: basic, or none for PKCE-only public clients.
    clientAuthMethods: ['client_secret_basic', 'none'],
    // Signed cookies (the default has no keys): a tampered interaction or session cookie is ignored.
    cookies: { keys: [deriveKey(settings.secret, 'oauth cookies').toString('base64url')] },
    // API scopes belong to the resource server below; only offline_access is an OpenID scope.
    scopes: ['offline_access'],
    // Authorization Code only: no implicit or hybrid responses (RFC 9700).
    responseTypes: ['code'],
    // The partner's workspace hint preselects a workspace on the consent page.
    extraParams: ['workspace'],
    // RFC 9700: the redirect_uri must always be sent and match exactly.
    allowOmittingSingleRegisteredRedirectUri: false,
    features: {
      // Our log-in and consent pages (interactions.ts) replace the engine's demo ones.
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // Confidential clients only (SPEC §4), and only their own tokens (the default lets any
        // confidential client introspect any token, and a public client its own).
        allowedPolicy: async (_ctx, client, token) =>
          client.clientAuthMethod !== 'none' && token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        // A client may revoke only its own tokens.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      // Tokens authorize the API only: no ID-token claims or profile to serve.
      userinfo: { enabled: false },
      // The console has its own log-out; the engine's session only carries an interaction.
      rpInitiatedLogout: { enabled: false },
      // Not part of the product surface; fewer endpoints, fewer surprises.
      pushedAuthorizationRequests: { enabled: false },
      // RFC 8628 for partners' CLIs, with its pages in the console's look (pages.ts).
      deviceFlow: {
        enabled: true,
        // The engine's defaults, stated because the code page, docs and partners' CLIs show this
        // shape (XXXX-XXXX, consonants only: no look-alikes, no words).
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource,
        userCodeConfirmSource,
        successSource: deviceSuccessSource,
      },
      resourceIndicators: {
        enabled: true,
        // Without a resource every API scope would be silently dropped as a non-OpenID scope.
        defaultResource: async () => resource,
        // A code or refresh exchange without `resource` gets the one the user authorized.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator, client) => {
          if (indicator !== resource) throw new errors.InvalidTarget();
          const registered = await clients.lookup(client.clientId);
          const allowed = (registered?.scopes ?? []).filter((s) =>
            (API_SCOPES as readonly string[]).includes(s),
          );
          if (ctx.oidc.route === 'authorization') {
            // Refuse loudly instead of the engine's silent narrowing (which, for offline_access,
            // would bring the consent page back forever).
            const registeredScopes = registered?.scopes ?? [];
            const knowable = [...API_SCOPES, 'offline_access'] as readonly string[];
            const extra = String(ctx.oidc.params?.scope ?? '')
              .split(' ')
              .filter((s) => knowable.includes(s) && !registeredScopes.includes(s));
            if (extra.length) {
              throw new errors.InvalidScope(
                'requested scope is not allowed for this app',
                extra.join(' '),
              );
            }
          }
          return {
            scope: allowed.join(' '),
            audience: resource,
            accessTokenFormat: 'opaque',
            accessTokenTTL: settings.accessTokenTtlSeconds,
          };
        },
      },
    },
    // Revoking an access token already revokes every token of its grant (helpers/revoke.js); the
    // default would keep the emptied grant listed and unaudited, so every revocation ends the grant.
    revokeGrantPolicy: () => true,
    // Never reuse an earlier grant silently: each authorization shows consent and the workspace picker.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    // Confidential clients always get a refresh token; public clients when they ask for offline_access.
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') &&
      (client.clientAuthMethod !== 'none' || code.scopes.has('offline_access')),
    // Rotate on every use so reuse of an old one is detectable.
    rotateRefreshToken: true,
    // Tokens live with the grant, not with the browser session used to consent.
    expiresWithSession: async () => false,
    ttl: {
      // The default, stated because SPEC §4 fixes it: codes live at most a minute.
      AuthorizationCode: 60,
      // One hour unless configured (OAUTH_ACCESS_TOKEN_TTL); the resource server says the same.
      AccessToken: settings.accessTokenTtlSeconds,
      // Rolling 30 days, never past the 90-day absolute cap counted from the first issue.
      RefreshToken: (_ctx, token) => {
        const age = Math.floor(Date.now() / 1000) - (token as unknown as { iiat: number }).iiat;
        return Math.max(1, Math.min(REFRESH_ROLLING_SECONDS, GRANT_LIFETIME_SECONDS - age));
      },
      // The absolute cap; the default 14 days would end every refresh after two weeks.
      Grant: GRANT_LIFETIME_SECONDS,
      // The default (14 days), stated to silence the engine's "you should change it" notice.
      Session: 14 * 24 * 3600,
      // Ten minutes to log in and consent, not the default hour: a stale tab should start over.
      Interaction: 600,
      // The default (10 minutes, RFC 8628's example), stated for the same notice.
      DeviceCode: 600,
    },
    // workspace_id rides with each access token, so introspection returns it.
    extraTokenClaims: async (_ctx, token) => {
      const grantId = 'grantId' in token ? token.grantId : undefined;
      const workspaceId = grantId ? await findGrantWorkspace(pipelined, grantId) : undefined;
      if (!workspaceId) throw new errors.InvalidGrant('grant is not bound to a workspace');
      return { workspace_id: workspaceId };
    },
    // At every token issuance the user must still exist and still belong to the grant's workspace.
    findAccount: async (ctx, sub, token) => {
      const grantId = token
        ? (ctx.oidc.entities.Grant?.jti ?? (token as { grantId?: string }).grantId)
        : undefined;
      if (
        !(grantId && prefetchedMembership(sub, grantId)) &&
        !(await accountMayUseGrant(pipelined, sub, grantId))
      ) {
        return undefined;
      }
      return { accountId: sub, claims: async () => ({ sub }) };
    },
    renderError,
  };

  const provider = new Provider(settings.publicUrl, configuration);
  provider.proxy = settings.trustProxy;

  // Client secrets are 256-bit random values stored as SHA-256 digests: a fast hash compared
  // in constant time; every live secret (rotation overlap) is accepted.
  provider.Client.prototype.compareClientSecret = async function (
    this: { clientId: string },
    actual: string,
  ) {
    const registered = await clients.lookup(this.clientId);
    const digest = sha256(actual);
    return (registered?.secretHashes ?? []).some((hash) => safeEqual(hash, digest));
  };

  provider.use(userCodeThrottle(OAUTH_ROUTES.code_verification, settings.counters));
  provider.use(clientAuthThrottle(settings.counters));
  provider.use(async (ctx, next) => {
    // offline_access is dropped by the engine unless consent is prompted; ours always is. The
    // authorization endpoint answers GET (and HEAD) only: POST is not enabled (enableHttpPostMethods),
    // so the query is the only place its parameters come from.
    if (
      (ctx.method === 'GET' || ctx.method === 'HEAD') &&
      isEnginePath(ctx, OAUTH_ROUTES.authorization) &&
      String(ctx.query.scope ?? '')
        .split(' ')
        .includes('offline_access')
    ) {
      const prompts = new Set(
        String(ctx.query.prompt ?? '')
          .split(' ')
          .filter(Boolean),
      );
      if (!prompts.has('consent'))
        ctx.query = { ...ctx.query, prompt: [...prompts, 'consent'].join(' ') };
    }
    await next();
    await flushTokenWrites(db, pipelined, ctx as KoaContextWithOIDC);
    await afterResponse(ctx as KoaContextWithOIDC);
  });

  async function afterResponse(ctx: KoaContextWithOIDC) {
    const route = ctx.oidc?.route;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (!route || !body || typeof body !== 'object' || ctx.status !== 200) return;
    if (route === 'token' && body.access_token) {
      const grantId = ctx.oidc.entities.Grant?.jti;
      if (grantId) {
        // One (remembered) read gives both; cache_ids only when the user limited the app to some.
        const binding = await findGrantBinding(pipelined, grantId);
        if (binding) body.workspace_id = binding.workspaceId;
        if (binding?.cacheIds) body.cache_ids = binding.cacheIds;
        await touchGrant(pipelined, grantId);
      }
    } else if (route === 'introspection' && body.active === true) {
      // Refresh tokens carry no workspace claim of their own: take the grant's.
      const grantId =
        ctx.oidc.entities.RefreshToken?.grantId ?? ctx.oidc.entities.AccessToken?.grantId;
      if (typeof body.workspace_id !== 'string' && grantId) {
        const workspaceId = await findGrantWorkspace(pipelined, grantId);
        if (workspaceId) body.workspace_id = workspaceId;
      }
      // Leaving the workspace ends the grant's power even before anyone revokes it.
      const member =
        typeof body.sub === 'string' &&
        typeof body.workspace_id === 'string' &&
        (await isMember(pipelined, body.sub, body.workspace_id));
      if (!member) ctx.body = { active: false };
    } else if (route === 'discovery') {
      body.scopes_supported = [
        ...new Set([...((body.scopes_supported as string[]) ?? []), ...API_SCOPES]),
      ];
    }
  }

  return { provider, clients, resource, dispose };
}
