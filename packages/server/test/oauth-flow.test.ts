// The authorization-code flow end to end over real HTTP, as a partner drives it with oauth4webapi.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { createApp } from '../src/services/oauth-apps.ts';
import { openTestStore } from './helpers/stores.ts';
import { startListeningApp } from './helpers/listening-app.ts';
import {
  authorize,
  discover,
  exchangeCode,
  insecure,
  signUpBrowser,
  type PartnerApp,
} from './helpers/oauth-flow.ts';

describe('OAuth authorization code flow', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let partner: PartnerApp;
  let workspaceId: string;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    const owner = await store.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'owner@partner.example')
      .executeTakeFirstOrThrow();
    const created = await createApp(
      store.db,
      owner.id,
      { kind: 'user', userId: owner.id },
      {
        name: 'Partner Analytics',
        redirectUris: ['https://partner.example/callback'],
        scopes: ['caches:read', 'caches:write', 'metrics:read'],
      },
    );
    partner = {
      clientId: created.clientId,
      clientSecret: created.clientSecret!,
      redirectUri: 'https://partner.example/callback',
    };
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('discovers the server per RFC 8414', async () => {
    const as = await discover(url);
    expect(as.issuer).toBe(url);
    expect(as.token_endpoint).toBe(`${url}/oauth2/token`);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.scopes_supported).toEqual(expect.arrayContaining(['caches:read', 'offline_access']));
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
  });

  it('issues workspace-bound tokens that work on /v1/workspace, refresh, and die on revoke', async () => {
    const user = await signUpBrowser(url, 'ada@example.com');
    const ws = await store.db
      .selectFrom('workspaces')
      .innerJoin('users', 'users.id', 'workspaces.personal_for')
      .select('workspaces.id')
      .where('users.email', '=', 'ada@example.com')
      .executeTakeFirstOrThrow();
    workspaceId = ws.id;
    const flow = await authorize(url, user, partner, {
      scope: 'caches:read metrics:read',
      workspaceId,
    });
    expect(flow.consentPage).toContain('Partner Analytics');
    expect(flow.consentPage).toContain('See your caches and their settings');
    expect(flow.callbackUrl.searchParams.get('iss')).toBe(url);
    const tokens = await exchangeCode(url, partner, flow);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.workspace_id).toBe(workspaceId);
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.scope).toBe('caches:read metrics:read');

    const me = await fetch(`${url}/v1/workspace`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(me.status).toBe(200);
    expect((await me.json()).data.id).toBe(workspaceId);

    const as = await discover(url);
    const client = { client_id: partner.clientId };
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(
        as,
        client,
        oauth.ClientSecretBasic(partner.clientSecret!),
        tokens.refresh_token!,
        insecure,
      ),
    );
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);

    const revoked = await oauth.revocationRequest(
      as,
      client,
      oauth.ClientSecretBasic(partner.clientSecret!),
      refreshed.access_token,
      insecure,
    );
    await oauth.processRevocationResponse(revoked);
    const after = await fetch(`${url}/v1/workspace`, {
      headers: { authorization: `Bearer ${refreshed.access_token}` },
    });
    expect(after.status).toBe(401);
  });
});
