// The authorization flow in a real browser (Debian's chromium): the person signs up, the partner
// sends them to consent, they press Allow and the browser arrives at the partner's callback.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import {
  authorizationRequest,
  exchangeCode,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

const CHROMIUM = '/usr/bin/chromium';

/** A partner's callback endpoint on loopback that remembers every request it receives. */
async function startPartnerCallback(): Promise<{ server: Server; base: string; hits: URL[] }> {
  const hits: URL[] = [];
  const server = createServer((request, response) => {
    hits.push(new URL(request.url ?? '/', 'http://127.0.0.1'));
    response.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Partner connected</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { server, base: `http://127.0.0.1:${port}`, hits };
}

describe('consent in a browser', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let browser: Browser | undefined;
  let partnerSite: Awaited<ReturnType<typeof startPartnerCallback>>;
  let partner: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    partnerSite = await startPartnerCallback();
    await signUpBrowser(url, 'owner@partner.example');
    partner = await registerPartner(store.db, await userIdOf(store.db, 'owner@partner.example'), {
      redirectUris: [`${partnerSite.base}/callback`],
    });
  });
  afterAll(async () => {
    await browser?.close();
    partnerSite?.server.close();
    await app?.close();
    await store?.close();
  });

  it('Allow takes the browser to the partner callback with a code that works', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    const context = await browser.newContext({ baseURL: url });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto('/signup');
    await page.getByLabel('Email', { exact: true }).fill('ada@example.com');
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.waitForURL(/\/w\/[a-z0-9-]+$/);

    // The partner builds the authorization URL (PKCE, state); the browser opens it.
    const planned = await authorizationRequest(url, partner, { scope: 'caches:read' });
    await page.goto(planned.url.toString());
    await page.getByRole('heading', { name: /Partner Analytics wants to access/ }).waitFor();
    const workspace = await personalWorkspaceOf(store.db, 'ada@example.com');
    await page.getByRole('radio', { name: new RegExp(workspace.name) }).check();
    await page.getByRole('button', { name: 'Allow' }).click();

    await page.waitForURL(`${partnerSite.base}/callback?**`, { timeout: 5_000 });
    const callbackUrl = new URL(page.url());
    expect(callbackUrl.searchParams.get('state')).toBe(planned.state);
    const tokens = await exchangeCode(url, partner, { ...planned, callbackUrl });
    expect(tokens.workspace_id).toBe(workspace.id);
  });
});
