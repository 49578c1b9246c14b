// A partner's whole OAuth journey with a real browser for the person: log in and consent in
// Chromium, then the partner (oauth4webapi) exchanges the code, calls the API, refreshes, and
// loses access the moment the person revokes the app on their account page.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import type { Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { createApp } from '../src/services/oauth-apps.ts';
import { createWorkspace } from '../src/services/workspaces.ts';
import { signUp } from '../src/services/accounts.ts';
import { openTestStore } from './helpers/stores.ts';
import { freePort, startListeningApp } from './helpers/listening-app.ts';
import { launchChromium } from './helpers/chromium.ts';
import { discover, insecure } from './helpers/oauth-flow.ts';

const PASSWORD = 'correct horse battery staple';

describe('a partner connects an Edgegate account through the browser', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let browser: Browser;
  let partner: Server;
  let callbackBase: string;
  const callbacks: URL[] = [];

  beforeAll(async () => {
    store = await openTestStore('pglite');
    ({ app, url } = await startListeningApp(store));
    const port = await freePort();
    callbackBase = `http://127.0.0.1:${port}`;
    partner = createServer((req, res) => {
      const received = new URL(req.url ?? '/', callbackBase);
      if (received.pathname === '/callback') callbacks.push(received);
      res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Partner received the code</h1>');
    });
    await new Promise<void>((resolve) => partner.listen(port, '127.0.0.1', resolve));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => partner?.close(resolve));
    await app?.close();
    await store?.close();
  });

  it('logs in, picks a workspace, and the partner gets a token bound to it until revoked', async () => {
    const { user } = await signUp(store.db, {
      email: 'grace@example.com',
      password: PASSWORD,
      name: 'Grace',
    });
    const team = await createWorkspace(store.db, user.id, { name: 'Acme Analytics' });
    const created = await createApp(
      store.db,
      user.id,
      { kind: 'user', userId: user.id },
      {
        name: 'Partner Dashboards',
        description: 'Dashboards on top of your databases.',
        homepageUrl: 'https://partner.example',
        redirectUris: [`${callbackBase}/callback`],
        scopes: ['caches:read', 'metrics:read'],
      },
    );
    const client: oauth.Client = { client_id: created.clientId };
    const auth = oauth.ClientSecretBasic(created.clientSecret!);
    const redirectUri = `${callbackBase}/callback`;
    const as = await discover(url);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorizationUrl = new URL(as.authorization_endpoint!);
    for (const [k, v] of Object.entries({
      client_id: created.clientId,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: 'caches:read metrics:read',
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      workspace: team.slug,
    })) {
      authorizationUrl.searchParams.set(k, v);
    }

    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(authorizationUrl.toString());
    await expect(
      page.getByRole('heading', { name: 'Log in to continue to Partner Dashboards' }).isVisible(),
    ).resolves.toBe(true);
    await page.getByLabel('Email').fill('grace@example.com');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();

    await page
      .getByRole('heading', { name: 'Partner Dashboards wants to access your Edgegate workspace' })
      .waitFor();
    const consent = await page.content();
    expect(consent).toContain('See your caches and their settings');
    expect(consent).toContain('See cache metrics: hits, misses and latency');
    expect(consent).toContain('https://partner.example');
    await expect(page.getByLabel(/Acme Analytics/).isChecked()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.getByRole('heading', { name: 'Partner received the code' }).waitFor();

    const callback = callbacks.at(-1)!;
    expect(callback.searchParams.get('state')).toBe(state);
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as,
        client,
        auth,
        params,
        redirectUri,
        verifier,
        insecure,
      ),
    );
    expect(tokens.workspace_id).toBe(team.id);

    const call = (token: string) =>
      fetch(`${url}/v1/workspace`, { headers: { authorization: `Bearer ${token}` } });
    expect(await (await call(tokens.access_token)).json()).toMatchObject({
      data: { id: team.id, name: 'Acme Analytics' },
    });

    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure),
    );
    expect((await call(refreshed.access_token)).status).toBe(200);

    await page.goto(`${url}/settings/account/authorized-apps`);
    const row = page.getByRole('row', { name: /Partner Dashboards/ });
    expect(await row.textContent()).toContain('Acme Analytics');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: 'Yes, revoke access' }).click();
    await page.getByText('Access revoked.').waitFor();

    const after = await call(refreshed.access_token);
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const introspection = await oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, auth, refreshed.access_token, insecure),
    );
    expect(introspection.active).toBe(false);
    await expect(
      oauth
        .refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token!, insecure)
        .then((r) => oauth.processRefreshTokenResponse(as, client, r)),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
    await context.close();
  });
});
