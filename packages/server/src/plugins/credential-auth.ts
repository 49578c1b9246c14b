// Resolves the credential on a /v1 request (OAuth access token, API key, or service token) to a
// principal bound to one workspace, with its scopes and any narrowing to named caches.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createMemoryRateLimitStore, type RateLimitStore } from '../services/rate-limit.ts';
import type { Db } from '../db/store.ts';
import {
  findApiKeyCredential,
  findOAuthCredential,
  findServiceTokenCredential,
  touchCredential,
} from '../db/queries/credentials.ts';
import { Problem } from '../problem.ts';
import { sha256 } from '../services/crypto.ts';
import { touchGrant } from '../services/grants.ts';
import { onCredentialsRevoked } from '../services/revocation-events.ts';

export interface PrincipalWorkspace {
  id: string;
  name: string;
  slug: string;
  createdAt: Date;
}

/** `console` is a signed-in member acting through the console pages (never sent as a header). */
export type CredentialKind = 'oauth' | 'api_key' | 'service_token' | 'console';

export interface Principal {
  kind: CredentialKind;
  /** The grant, API key or service token. */
  credentialId: string;
  /** The person acting; null for service tokens, which belong to the workspace. */
  userId: string | null;
  workspaceId: string;
  /** Read with the credential (and cached with it for at most a second). */
  workspace: PrincipalWorkspace;
  /** The OAuth app behind the credential, if any. */
  clientId: string | null;
  /** Each usable scope, with null for "every cache of the workspace" or the caches it is limited to. */
  access: ReadonlyMap<string, ReadonlySet<string> | null>;
  /** When the credential itself stops working (API keys and service tokens); null when it does not. */
  expiresAt: Date | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** Revocation elsewhere (another node) must win within a second: cached answers live no longer. */
const CACHE_TTL_MS = 1000;
const CACHE_MAX = 10_000;
const TOUCH_INTERVAL_MS = 60_000;
export const REALM = 'Bearer realm="edgegate"';

type Presented =
  | { kind: 'oauth'; token: string }
  | { kind: 'api_key'; token: string; email?: string }
  | { kind: 'service_token'; id: string; token: string };

/** Reads the Authorization header in any of its three accepted forms (SPEC §5). */
export function parseAuthorization(header: string | undefined): Presented | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer?.[1])
    return bearer[1].startsWith('egk_')
      ? { kind: 'api_key', token: bearer[1] }
      : { kind: 'oauth', token: bearer[1] };
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.lastIndexOf(':');
    const token = decoded.slice(colon + 1);
    if (colon > 0 && token.startsWith('egk_'))
      return { kind: 'api_key', token, email: decoded.slice(0, colon) };
    return undefined;
  }
  const service = /^(st_[A-Za-z0-9]+):(egst_[A-Za-z0-9_-]+)\s*$/.exec(header.trim());
  if (service?.[1] && service[2])
    return { kind: 'service_token', id: service[1], token: service[2] };
  return undefined;
}

function allCaches(scopes: Iterable<string>): Map<string, null> {
  return new Map([...scopes].map((s) => [s, null]));
}

export function createCredentialResolver(db: Db) {
  const cache = new Map<string, { principal: Principal | undefined; until: number }>();
  const touched = new Map<string, number>();
  const unsubscribe = onCredentialsRevoked(() => cache.clear());

  async function lookup(presented: Presented): Promise<Principal | undefined> {
    const now = new Date();
    const workspaceOf = (row: {
      workspaceId: string;
      workspaceName: string;
      workspaceSlug: string;
      workspaceCreatedAt: Date;
    }) => ({
      id: row.workspaceId,
      name: row.workspaceName,
      slug: row.workspaceSlug,
      createdAt: row.workspaceCreatedAt,
    });
    if (presented.kind === 'oauth') {
      const row = await findOAuthCredential(db, sha256(presented.token), now);
      if (!row) return undefined;
      const payload = row.payload as { clientId?: string; scope?: string };
      // A consent limited to some caches narrows every scope to them, as an API key's does.
      const narrowed = row.cacheIds ? new Set(row.cacheIds) : null;
      const scopes = (payload.scope ?? '').split(' ').filter(Boolean);
      return {
        kind: 'oauth',
        credentialId: row.credentialId,
        userId: row.userId,
        workspaceId: row.workspaceId,
        workspace: workspaceOf(row),
        clientId: payload.clientId ?? null,
        access: narrowed ? new Map(scopes.map((s) => [s, narrowed])) : allCaches(scopes),
        // The grant outlives its access tokens (refresh), and revoking it ends what it minted.
        expiresAt: null,
      };
    }
    if (presented.kind === 'api_key') {
      const row = await findApiKeyCredential(db, sha256(presented.token), now);
      if (!row) return undefined;
      if (
        presented.email !== undefined &&
        presented.email.trim().toLowerCase() !== row.email.toLowerCase()
      )
        return undefined;
      const narrowed = row.cacheIds ? new Set(row.cacheIds) : null;
      return {
        kind: 'api_key',
        credentialId: row.credentialId,
        userId: row.userId,
        workspaceId: row.workspaceId,
        workspace: workspaceOf(row),
        clientId: row.clientId,
        access: new Map(row.scopes.map((s) => [s, narrowed])),
        expiresAt: row.expiresAt,
      };
    }
    const row = await findServiceTokenCredential(db, presented.id, sha256(presented.token), now);
    if (!row) return undefined;
    const access = new Map<string, Set<string> | null>();
    for (const { scope, cacheId } of row.accesses) {
      const current = access.get(scope);
      if (current === null) continue;
      if (cacheId === null) access.set(scope, null);
      else access.set(scope, new Set([...(current ?? []), cacheId]));
    }
    return {
      kind: 'service_token',
      credentialId: row.credentialId,
      userId: null,
      workspaceId: row.workspaceId,
      workspace: workspaceOf(row),
      clientId: null,
      access,
      expiresAt: row.expiresAt,
    };
  }

  async function touch(principal: Principal) {
    const now = Date.now();
    const key = `${principal.kind}:${principal.credentialId}`;
    if (now - (touched.get(key) ?? 0) < TOUCH_INTERVAL_MS) return;
    touched.set(key, now);
    if (touched.size > CACHE_MAX) touched.clear();
    if (principal.kind === 'oauth') await touchGrant(db, principal.credentialId);
    else if (principal.kind !== 'console')
      await touchCredential(db, principal.kind, principal.credentialId, new Date(now));
  }

  async function resolve(presented: Presented): Promise<Principal | undefined> {
    const key =
      presented.kind === 'service_token'
        ? `st:${presented.id}:${sha256(presented.token)}`
        : `${presented.kind}:${sha256(presented.token)}:${'email' in presented ? (presented.email ?? '') : ''}`;
    const hit = cache.get(key);
    if (hit && hit.until > Date.now()) return hit.principal;
    const principal = await lookup(presented);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(key, { principal, until: Date.now() + CACHE_TTL_MS });
    if (principal) await touch(principal);
    return principal;
  }

  return { resolve, dispose: unsubscribe };
}

/** Requests with a missing or invalid credential one address may send a minute (all nodes, with Redis). */
export const FAILED_AUTH_PER_MINUTE = 60;

/** Adds authentication to every route of the plugin it is called in (the /v1 API). */

export function requireCredential(
  app: FastifyInstance,
  db: Db,
  counters: RateLimitStore = createMemoryRateLimitStore(),
) {
  const { resolve, dispose } = createCredentialResolver(db);
  app.addHook('onClose', async () => dispose());
  app.decorateRequest('principal', undefined);
  const failures = {
    hit: (ip: string, windowMs: number) => counters.hit(`failed-auth ${ip}`, windowMs),
  };
  /**
   * A failure counts against the address; past the limit it is answered 429 instead of 401. The
   * credential is looked up first (one indexed read of its digest, remembered for a second), so a
   * credential that verifies is never refused, whoever else shares its address: throttling the
   * address before the lookup let anyone behind the same proxy lock every partner out.
   */
  async function refuse(request: FastifyRequest, unthrottled: Problem): Promise<never> {
    const failed = await failures.hit(request.ip, 60_000);
    if (failed.count > FAILED_AUTH_PER_MINUTE) {
      const retryAfter = Math.max(1, Math.ceil((failed.resetAt - Date.now()) / 1000));
      throw new Problem(
        'rate_limited',
        429,
        `Too many requests with missing or invalid credentials from this address. Retry after ${retryAfter} s.`,
        { headers: { 'retry-after': String(retryAfter) } },
      );
    }
    throw unthrottled;
  }
  app.addHook('onRequest', async (request) => {
    const presented = parseAuthorization(request.headers.authorization);
    if (!presented) {
      return refuse(
        request,
        new Problem(
          'auth.missing_credentials',
          401,
          'Send a credential: `Authorization: Bearer <access token or API key>`, HTTP Basic `email:<API key>`, or `Authorization: <service token id>:<token>`.',
          { headers: { 'www-authenticate': REALM } },
        ),
      );
    }
    const principal = await resolve(presented);
    if (!principal) {
      return refuse(
        request,
        new Problem('auth.invalid_token', 401, 'The credential is invalid, expired or revoked.', {
          headers: { 'www-authenticate': `${REALM}, error="invalid_token"` },
        }),
      );
    }
    request.principal = principal;
  });
}

/** 403 insufficient_scope naming the missing scope(s), as RFC 6750 §3.1 describes. */
export function insufficientScope(scope: string | readonly string[], detail: string): Problem {
  const named = typeof scope === 'string' ? scope : scope.join(' ');
  return new Problem('auth.insufficient_scope', 403, detail, {
    headers: { 'www-authenticate': `${REALM}, error="insufficient_scope", scope="${named}"` },
  });
}

/**
 * The expiry of a credential `principal` creates: never later than the principal's own, so a
 * short-lived key cannot mint a longer-lived one. Absent means "as long as the creator".
 */
export function childExpiry(
  principal: Principal,
  requested: string | null | undefined,
): Date | null {
  const wanted = requested ? new Date(requested) : null;
  const cap = principal.expiresAt;
  if (cap === null) return wanted;
  if (wanted === null) return cap;
  if (wanted.getTime() > cap.getTime()) {
    const message = `must not be later than ${cap.toISOString()}, when the credential creating it expires`;
    throw new Problem('validation_failed', 422, `expiresAt: ${message}`, {
      errors: [{ path: 'expiresAt', message }],
    });
  }
  return wanted;
}

/** The principal, which must hold `scope` (on some cache at least); 403 insufficient_scope names it. */
export function requireScope(request: FastifyRequest, scope: string): Principal {
  const principal = request.principal;
  if (!principal)
    throw new Problem('auth.missing_credentials', 401, 'Authentication required.', {
      headers: { 'www-authenticate': REALM },
    });
  if (!principal.access.has(scope))
    throw insufficientScope(scope, `This credential lacks the scope ${scope}.`);
  return principal;
}

/** The principal, which must hold `scope` on every cache of the workspace (creating, listing all). */
export function requireWorkspaceScope(request: FastifyRequest, scope: string): Principal {
  const principal = requireScope(request, scope);
  if (principal.access.get(scope) !== null) {
    throw insufficientScope(
      scope,
      `This credential holds ${scope} only for some caches, and this needs it for the whole workspace.`,
    );
  }
  return principal;
}

/** Whether the principal may use `scope` on this cache (a cache it can see; 404 is the caller's). */
export function assertCacheScope(principal: Principal, scope: string, cacheId: string): void {
  const caches = principal.access.get(scope);
  if (caches === undefined)
    throw insufficientScope(scope, `This credential lacks the scope ${scope}.`);
  if (caches !== null && !caches.has(cacheId)) {
    throw insufficientScope(scope, `This credential holds ${scope} only for other caches.`);
  }
}

/** The caches a principal may use `scope` on: null for all of the workspace. */
export function cachesWithScope(principal: Principal, scope: string): ReadonlySet<string> | null {
  const caches = principal.access.get(scope);
  return caches === undefined ? new Set() : caches;
}
