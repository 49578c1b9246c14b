// Every console page the router serves, opened in a real browser by a signed-in person who has a
// workspace, a cache with traffic, an app, an API key, a service token, an invitation and an
// authorized app: no page may log a console error or trip the Content-Security-Policy, and the
// cache page's chart draws hits and misses in two colours.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { insertMetricSamples } from '../src/db/queries/cache-metrics.ts';
import { LATENCY_BOUNDS_MS } from '@edgegate/edge';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { launchChromium } from './helpers/chromium.ts';
import { freePort } from './helpers/listening-app.ts';
import { ConsoleClient } from './helpers/console-client.ts';
import {
  obtainCode,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  userIdOf,
} from './helpers/oauth-flow.ts';

const EMAIL = 'pages@example.com';
const PASSWORD = 'correct horse battery';

/** GET routes that are not console pages, and why. */
const NOT_CONSOLE_PAGES = [
  /^\/(metrics|healthz|readyz)$/, // operations endpoints
  /^\/assets\//, // stylesheets
  /^\/v1\//, // the JSON API
  /^\/docs/, // the API reference (Swagger UI, its own CSP)
  /^\/\.well-known\//, // OAuth metadata
  /^\/oauth2\//, // the provider's interaction pages: covered by the consent browser tests
  /^\/connect(\.js|\/)/, // the hosted connect page partners embed: covered by connect-browser
  /\*$/, // catch-alls
];

/** Full paths of the GET routes, read from Fastify's route tree. */
function getRoutes(app: FastifyInstance): string[] {
  const stack: string[] = [];
  const routes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false, method: 'GET' }).split('\n')) {
    const match = /^([│ ]*)(?:├── |└── )(.+?) \(GET\)$/.exec(line);
    if (!match) continue;
    const depth = (match[1] as string).length / 4;
    stack.length = depth;
    const parent = stack.at(-1) ?? '';
    const segment = match[2] as string;
    const path = parent === '/' ? `/${segment}` : parent + segment;
    stack.push(path);
    routes.push(path);
  }
  return routes;
}

interface Trouble {
  url: string;
  what: string;
}

async function watch(page: Page, troubles: Trouble[]) {
  page.on('console', (message) => {
    if (message.type() === 'error') troubles.push({ url: page.url(), what: message.text() });
  });
  page.on('pageerror', (error) => troubles.push({ url: page.url(), what: error.message }));
  await page.exposeFunction('reportCspViolation', (text: string) =>
    troubles.push({ url: page.url(), what: `CSP: ${text}` }),
  );
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      (window as unknown as { reportCspViolation(t: string): void }).reportCspViolation(
        `${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`,
      );
    });
  });
}

describe('every console page in a browser', () => {
  let store: Store | undefined;
  let app: FastifyInstance | undefined;
  let browser: Browser | undefined;
  let baseUrl = '';

  beforeAll(async () => {
    store = await openTestStore('pglite');
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    app = await buildTestApp(store, { publicUrl: baseUrl });
    await app.listen({ port, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await store?.close();
  });

  it('none logs an error or a CSP violation, and the chart has two colours', async () => {
    const db = store!.db;
    const oauthUser = await signUpBrowser(baseUrl, EMAIL, PASSWORD);
    const client = new ConsoleClient(app!);
    expect((await client.logIn(EMAIL, PASSWORD)).statusCode).toBe(303);

    const created = await client.post('/workspaces', { name: 'Page Tour' });
    const base = created.headers.location as string;
    const slug = base.split('/').at(-1) as string;
    const cache = await client.post(`${base}/caches`, {
      name: 'Orders',
      type: 'postgres',
      hostname: 'db.example.com',
      port: '5432',
      defaultMode: 'auto',
      defaultTtlSeconds: '60',
    });
    expect(cache.statusCode, cache.body).toBe(303);
    const cacheId = (cache.headers.location as string).split('/').at(-1) as string;
    const latency = (bucket: number) =>
      LATENCY_BOUNDS_MS.map((_, i) => (i === bucket ? 5 : 0)).concat(0);
    for (const [hits, misses] of [
      [40, 10],
      [25, 25],
    ] as const)
      await insertMetricSamples(db, [
        {
          cacheId,
          queries: hits + misses,
          hits,
          misses,
          uncacheable: 0,
          bytesServed: 4096,
          hitLatency: latency(2),
          missLatency: latency(9),
          templates: [
            {
              fingerprint: 'f1',
              normalized: 'SELECT * FROM orders WHERE id = $1',
              count: hits + misses,
            },
          ],
        },
      ]);
    const credentials = `${base}/settings/credentials`;
    expect(
      (await client.post(`${credentials}/apikeys`, { keyName: 'deploy' }, { from: credentials }))
        .statusCode,
    ).toBe(303);
    expect(
      (
        await client.post(
          `${credentials}/service-tokens`,
          { tokenName: 'edge', scope: ['caches:read', '', ''], cacheId: [cacheId, '', ''] },
          { from: credentials },
        )
      ).statusCode,
    ).toBe(303);
    const invited = await client.post(`${base}/invitations`, { role: 'member' }, { from: base });
    expect(invited.statusCode).toBe(303);
    const inviteToken = /\/invite\/(egi_[\w-]+)/.exec((await client.get(base)).body)?.[1];
    expect(inviteToken).toBeDefined();

    const userId = await userIdOf(db, EMAIL);
    const partner = await registerPartner(db, userId, {
      redirectUris: ['https://partner.example/callback'],
    });
    const workspace = await personalWorkspaceOf(db, EMAIL);
    await obtainCode(baseUrl, oauthUser, partner, {
      scope: 'caches:read',
      workspaceId: workspace.id,
    });

    const params: Record<string, string> = {
      slug,
      id: cacheId,
      appId: partner.appId,
      token: inviteToken as string,
    };
    const pages = getRoutes(app!)
      .filter((route) => !NOT_CONSOLE_PAGES.some((pattern) => pattern.test(route)))
      .map((route) => route.replace(/:(\w+)/g, (_, name: string) => params[name] ?? `:${name}`));
    expect(pages).toContain(`/w/${slug}/caches/${cacheId}`);
    expect(pages).toContain('/settings/account/authorized-apps');
    expect(pages.filter((p) => p.includes(':'))).toEqual([]);

    browser = await launchChromium();
    const troubles: Trouble[] = [];
    const signedOut = await (await browser.newContext({ baseURL: baseUrl })).newPage();
    await watch(signedOut, troubles);
    for (const path of ['/login', '/signup', `/invite/${inviteToken}`]) {
      const response = await signedOut.goto(path);
      expect(response?.status(), path).toBeLessThan(400);
    }

    const context = await browser.newContext({ baseURL: baseUrl });
    const page = await context.newPage();
    await watch(page, troubles);
    await page.goto('/login');
    await page.getByLabel('Email', { exact: true }).fill(EMAIL);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/workspaces$|\/w\//);
    const visited: string[] = [];
    for (const path of pages) {
      const response = await page.goto(path);
      expect(response?.status(), path).toBeLessThan(400);
      await page.waitForLoadState('load');
      visited.push(path);
    }
    expect(visited.length).toBeGreaterThanOrEqual(12);

    await page.goto(`/w/${slug}/caches/${cacheId}`);
    const chart = page.getByTestId('metrics-chart');
    await chart.waitFor();
    const fillOf = (selector: string) =>
      chart
        .locator(selector)
        .first()
        .evaluate((el) => getComputedStyle(el).fill);
    const hits = await fillOf('rect.hits');
    const misses = await fillOf('rect.misses');
    expect(hits).not.toBe(misses);
    expect([hits, misses]).not.toContain('rgb(0, 0, 0)');
    expect(await chart.evaluate((el) => el.getBoundingClientRect().width)).toBeGreaterThan(100);

    expect(troubles).toEqual([]);
  }, 180_000);

  it('Revoke and Revoke all ask first, and act only once confirmed', async () => {
    const db = store!.db;
    const email = 'revoker@example.com';
    const oauthUser = await signUpBrowser(baseUrl, email, PASSWORD);
    const userId = await userIdOf(db, email);
    const workspace = await personalWorkspaceOf(db, email);
    for (const name of ['Report Builder', 'Sync Robot', 'Backup Bot']) {
      const partner = await registerPartner(db, userId, {
        name,
        redirectUris: ['https://partner.example/callback'],
      });
      await obtainCode(baseUrl, oauthUser, partner, {
        scope: 'caches:read',
        workspaceId: workspace.id,
      });
    }

    browser ??= await launchChromium();
    const page = await (await browser.newContext({ baseURL: baseUrl })).newPage();
    await page.goto('/login');
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/workspaces$|\/w\//);
    await page.goto('/settings/account/authorized-apps');
    const rows = page.getByRole('row');
    const row = (name: string) => rows.filter({ hasText: name });
    await row('Report Builder').getByRole('button', { name: 'Revoke' }).click();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
      'Revoke Report Builder?',
    );
    await page.getByRole('link', { name: 'Cancel' }).click();
    await page.waitForURL(/\/authorized-apps$/);
    expect(await row('Report Builder').count()).toBe(1);

    await row('Report Builder').getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: 'Yes, revoke access' }).click();
    await page.waitForURL(/\/authorized-apps$/);
    await expect(page.getByRole('status').textContent()).resolves.toContain('Access revoked.');
    expect(await row('Report Builder').count()).toBe(0);
    expect(await row('Sync Robot').count()).toBe(1);

    await page.getByRole('button', { name: 'Revoke all apps' }).click();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
      'Revoke all apps?',
    );
    await page.goBack();
    await page.reload();
    expect(await row('Sync Robot').count()).toBe(1);
    await page.getByRole('button', { name: 'Revoke all apps' }).click();
    await page.getByRole('button', { name: 'Yes, revoke all apps' }).click();
    await page.waitForURL(/\/authorized-apps$/);
    await expect(page.getByRole('status').textContent()).resolves.toContain(
      'Revoked access for 2 apps.',
    );
    await expect(page.locator('main').textContent()).resolves.toContain(
      'You have not authorized any apps.',
    );
  }, 120_000);
});
