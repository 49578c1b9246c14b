// Real OAuth tokens for API tests without a browser: a consented grant bound to a workspace, and
// authorization codes minted through the engine's own model, exchanged at the token endpoint.
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../src/db/store.ts';
import { createApp } from '../../src/services/oauth-apps.ts';
import { bindGrantToWorkspace } from '../../src/services/grants.ts';
import { consolePrincipal } from '../../src/routes/console/principal.ts';
import { createServiceToken } from '../../src/services/service-tokens.ts';

export interface PartnerGrant {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  grantId: string;
  userId: string;
  scope: string;
  mintCode(): Promise<{ code: string; verifier: string }>;
}

export async function consentedGrant(
  app: FastifyInstance,
  db: Db,
  options: { userId: string; workspaceId: string; scopes: string[] },
): Promise<PartnerGrant> {
  const redirectUri = 'https://partner.example/callback';
  const created = await createApp(
    db,
    options.userId,
    { kind: 'user', userId: options.userId },
    {
      name: 'Test Partner',
      redirectUris: [redirectUri],
      scopes: options.scopes as never,
    },
  );
  const { provider, resource } = app.oauth;
  const scope = options.scopes.join(' ');
  const grant = new provider.Grant({ accountId: options.userId, clientId: created.clientId });
  grant.addResourceScope(resource, scope);
  const grantId = await grant.save();
  await bindGrantToWorkspace(db, grantId, options.workspaceId);
  const client = await provider.Client.find(created.clientId);
  return {
    clientId: created.clientId,
    clientSecret: created.clientSecret!,
    redirectUri,
    grantId,
    userId: options.userId,
    scope,
    async mintCode() {
      const verifier = randomBytes(32).toString('base64url');
      const code = new provider.AuthorizationCode({
        accountId: options.userId,
        client: client!,
        gty: 'authorization_code',
        codeChallenge: createHash('sha256').update(verifier).digest('base64url'),
        codeChallengeMethod: 'S256',
        grantId,
        redirectUri,
        resource,
        scope,
        authTime: Math.floor(Date.now() / 1000),
      });
      return { code: await code.save(), verifier };
    },
  };
}

/** Exchanges a freshly minted code at the real token endpoint. */
export async function accessTokenFor(
  app: FastifyInstance,
  grant: PartnerGrant,
): Promise<{ access_token: string; refresh_token: string }> {
  const { code, verifier } = await grant.mintCode();
  const response = await app.inject({
    method: 'POST',
    url: '/oauth2/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${grant.clientId}:${grant.clientSecret}`).toString('base64')}`,
    },
    payload: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: grant.redirectUri,
      code_verifier: verifier,
    }).toString(),
  });
  if (response.statusCode !== 200)
    throw new Error(`token exchange failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

/** A service token made the way the console makes one (they are first-party only): `id:token`. */
export async function serviceTokenFor(
  db: Db,
  options: { userId: string; workspaceId: string; scopes: string[]; cacheId?: string },
): Promise<string> {
  const user = await db
    .selectFrom('users')
    .selectAll()
    .where('id', '=', options.userId)
    .executeTakeFirstOrThrow();
  const { slug } = await db
    .selectFrom('workspaces')
    .select('slug')
    .where('id', '=', options.workspaceId)
    .executeTakeFirstOrThrow();
  const { principal } = await consolePrincipal(db, user, slug);
  const { row, token } = await createServiceToken(db, principal, {
    name: 'partner backend',
    accesses: options.scopes.map((scope) => ({
      scope: scope as never,
      ...(options.cacheId ? { cacheId: options.cacheId } : {}),
    })),
  });
  return `${row.id}:${token}`;
}
