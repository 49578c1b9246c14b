// Resolves the credential on a /v1 request to a principal bound to one workspace, and checks scopes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../db/store.ts';
import { Problem } from '../problem.ts';
import { sha256 } from '../services/crypto.ts';
import { onGrantsRevoked, touchGrant } from '../services/grants.ts';

export interface PrincipalWorkspace {
  id: string;
  name: string;
  slug: string;
  createdAt: Date;
}

export interface Principal {
  kind: 'oauth';
  userId: string;
  workspaceId: string;
  /** Read with the credential (and cached with it for at most a second). */
  workspace: PrincipalWorkspace;
  clientId: string;
  grantId: string;
  scopes: ReadonlySet<string>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** Revocation elsewhere (another node) must win within a second: cached answers live no longer. */
const CACHE_TTL_MS = 1000;
const CACHE_MAX = 10_000;

const REALM = 'Bearer realm="edgegate"';

export function createTokenResolver(db: Db) {
  const cache = new Map<string, { principal: Principal | undefined; until: number }>();
  onGrantsRevoked(() => cache.clear());

  async function lookup(idHash: string): Promise<Principal | undefined> {
    const row = await db
      .selectFrom('oauth_tokens as t')
      .innerJoin('oauth_grants as g', 'g.id', 't.grant_id')
      .innerJoin('memberships as m', (join) =>
        join.onRef('m.workspace_id', '=', 'g.workspace_id').onRef('m.user_id', '=', 'g.user_id'),
      )
      .innerJoin('workspaces as w', 'w.id', 'm.workspace_id')
      .select([
        'g.id as grantId',
        'g.user_id as userId',
        'w.id as workspaceId',
        'w.name as workspaceName',
        'w.slug as workspaceSlug',
        'w.created_at as workspaceCreatedAt',
        't.payload',
      ])
      .where('t.id_hash', '=', idHash)
      .where('t.kind', '=', 'AccessToken')
      .where('t.expires_at', '>', new Date())
      .where('g.expires_at', '>', new Date())
      .executeTakeFirst();
    if (!row) return undefined;
    const payload = row.payload as { clientId?: string; scope?: string };
    return {
      kind: 'oauth',
      userId: row.userId,
      workspaceId: row.workspaceId,
      workspace: {
        id: row.workspaceId,
        name: row.workspaceName,
        slug: row.workspaceSlug,
        createdAt: row.workspaceCreatedAt,
      },
      clientId: String(payload.clientId),
      grantId: row.grantId,
      scopes: new Set((payload.scope ?? '').split(' ').filter(Boolean)),
    };
  }

  return async function resolve(token: string): Promise<Principal | undefined> {
    const idHash = sha256(token);
    const hit = cache.get(idHash);
    if (hit && hit.until > Date.now()) return hit.principal;
    const principal = await lookup(idHash);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(idHash, { principal, until: Date.now() + CACHE_TTL_MS });
    if (principal) await touchGrant(db, principal.grantId);
    return principal;
  };
}

/** Adds authentication to every route of the plugin it is called in (the /v1 API). */
export function requireBearer(app: FastifyInstance, db: Db) {
  const resolve = createTokenResolver(db);
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      throw new Problem(
        'auth.missing_credentials',
        401,
        'Send an access token: Authorization: Bearer <token>.',
        {
          headers: { 'www-authenticate': REALM },
        },
      );
    }
    const principal = await resolve(match[1]);
    if (!principal) {
      throw new Problem(
        'auth.invalid_token',
        401,
        'The access token is invalid, expired or revoked.',
        {
          headers: { 'www-authenticate': `${REALM}, error="invalid_token"` },
        },
      );
    }
    request.principal = principal;
  });
}

/** The principal, which must hold `scope`; 403 insufficient_scope names the missing one. */
export function requireScope(request: FastifyRequest, scope: string): Principal {
  const principal = request.principal;
  if (!principal)
    throw new Problem('auth.missing_credentials', 401, 'Authentication required.', {
      headers: { 'www-authenticate': REALM },
    });
  if (!principal.scopes.has(scope)) {
    throw new Problem('auth.insufficient_scope', 403, `This credential lacks the scope ${scope}.`, {
      headers: { 'www-authenticate': `${REALM}, error="insufficient_scope", scope="${scope}"` },
    });
  }
  return principal;
}
