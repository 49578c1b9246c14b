// Where the server sends the browser: only to a registered redirect URI, matched exactly (a
// loopback port excepted for native apps); anything else is an error page, never a redirect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  obtainTokens,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  startAuthorization,
  textOf,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe('redirect URIs', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspaceId: string;
  let web: RegisteredPartner;
  let cli: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    const ownerId = await userIdOf(store.db, 'owner@partner.example');
    web = await registerPartner(store.db, ownerId, {
      redirectUris: ['https://partner.example/callback'],
    });
    cli = await registerPartner(store.db, ownerId, {
      name: 'Partner CLI',
      clientType: 'public',
      scopes: ['caches:read', 'offline_access'],
      redirectUris: ['http://127.0.0.1/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspaceId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  async function expectErrorPage(
    started: Awaited<ReturnType<typeof startAuthorization>>,
    error: string,
  ) {
    expect(started.leftTo).toBeUndefined();
    expect(started.response.status).toBe(400);
    expect(started.response.headers.get('location')).toBeNull();
    expect(started.response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(textOf(started.page)).toContain('Cannot continue');
    expect(textOf(started.page)).toContain(error);
  }

  it.each([
    ['a trailing slash', 'https://partner.example/callback/'],
    ['a different path', 'https://partner.example/callbacks'],
    ['http instead of https', 'http://partner.example/callback'],
    ['an extra query', 'https://partner.example/callback?next=/admin'],
    ['another port', 'https://partner.example:8443/callback'],
    ['another host', 'https://evil.example/callback'],
  ])(
    'shows an error page, never a redirect, for a redirect_uri with %s',
    async (_, redirectUri) => {
      const started = await startAuthorization(url, user, web, {
        scope: 'caches:read',
        redirectUri,
      });
      await expectErrorPage(started, 'invalid_redirect_uri');
      expect(textOf(started.page)).toContain('has not registered');
    },
  );

  it('shows an error page, never a redirect, for an unknown client_id', async () => {
    const started = await startAuthorization(url, user, web, {
      scope: 'caches:read',
      clientId: 'egc_doesnotexist000000000000',
    });
    await expectErrorPage(started, 'invalid_client');
    expect(textOf(started.page)).toContain('not registered with Edgegate');
  });

  it('lets a native app use its loopback redirect on any port and delivers the code there', async () => {
    const redirectUri = 'http://127.0.0.1:54321/callback';
    const tokens = await obtainTokens(url, user, cli, {
      scope: 'caches:read',
      redirectUri,
      workspaceId,
    });
    const callback = tokens.flow.callbackUrl;
    expect(`${callback.origin}${callback.pathname}`).toBe(redirectUri);
    expect(callback.searchParams.get('code')).toBeTruthy();
    expect(tokens.workspace_id).toBe(workspaceId);
  });

  it.each([
    ['another path', 'http://127.0.0.1:54321/other'],
    ['another loopback name', 'http://localhost:54321/callback'],
    ['https on loopback', 'https://127.0.0.1:54321/callback'],
  ])('holds a native app to the rest of its loopback redirect: %s', async (_, redirectUri) => {
    const started = await startAuthorization(url, user, cli, { scope: 'caches:read', redirectUri });
    await expectErrorPage(started, 'invalid_redirect_uri');
  });
});
