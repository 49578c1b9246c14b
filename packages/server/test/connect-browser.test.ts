// The connect flow as a partner ships it, in Chromium: the partner's page loads /connect.js and
// opens the hosted page in a popup for postgresql + mysql; the user picks postgresql, types a wrong
// password (sees why, keeps the host), then the right one for a Postgres that checks passwords; the
// partner's backend exchanges the code for the connection, and its webhook receiver gets a
// correctly signed `connection.created`.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Frame, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { verifyWebhook } from '@edgegate/contract';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { openTestStore } from './helpers/stores.ts';
import { freePort, startListeningApp } from './helpers/listening-app.ts';
import { clickAndAwaitClose, launchChromium } from './helpers/chromium.ts';
import { serviceTokenFor } from './helpers/tokens.ts';
import {
  startThrowawayCluster,
  type ThrowawayCluster,
} from '../../edge/test/helpers/throwaway-cluster.ts';

const body = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });

function partnerPage(edgegate: string): string {
  return `<!doctype html><html><head><title>Partner</title></head><body>
<h1>Acme Analytics</h1>
<button id="connect">Connect your database</button>
<pre id="result"></pre>
<script src="${edgegate}/connect.js"></script>
<script>
document.getElementById('connect').addEventListener('click', function () {
  var state = 'st-' + Math.random().toString(36).slice(2);
  Edgegate.connect({
    state: state,
    url: function () {
      return fetch('/session', { method: 'POST' }).then(function (r) { return r.json(); })
        .then(function (d) { return d.redirect_url; });
    },
  }).then(function (result) {
    if (result.state !== state) throw new Error('state mismatch');
    return fetch('/exchange', { method: 'POST', body: result.code }).then(function (r) { return r.json(); });
  }).then(function (connection) {
    document.getElementById('result').textContent = JSON.stringify(connection);
  }).catch(function (error) {
    document.getElementById('result').textContent = 'error: ' + (error.code || error.message);
  });
});
</script></body></html>`;
}

// Chromium shares two cores with the rest of the suite: a test gets 90 s, and each browser step
// 25 s, so a step that hangs fails with its own name rather than the test's timeout.
describe('a partner embeds the hosted connect flow', { timeout: 90_000 }, () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let browser: Browser;
  let partner: Server;
  let cluster: ThrowawayCluster;
  let credential: string;
  const hooks: { body: string; signature: string | undefined }[] = [];

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    store = await openTestStore('pglite');
    ({ app, url } = await startListeningApp(store));
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'owner@acme.example',
      password: 'long enough pw',
    });
    // The partner's backend holds a service token of the workspace.
    credential = await serviceTokenFor(store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['connections:read', 'connections:write'],
    });
    const port = await freePort();
    const partnerUrl = `http://127.0.0.1:${port}`;
    const api = (path: string, payload: unknown) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { authorization: credential, 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      });
    partner = createServer(async (req, res) => {
      const path = new URL(req.url ?? '/', partnerUrl).pathname;
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html' }).end(partnerPage(url));
      } else if (path === '/session') {
        const made = await api('/v1/connect/sessions', {
          whitelist: ['postgresql', 'mysql'],
          name: 'Acme warehouse',
          redirect_url: `${partnerUrl}/callback`,
        });
        res.writeHead(made.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify((await made.json()).data));
      } else if (path === '/exchange') {
        const exchanged = await api('/v1/connect/exchange', { code: await body(req) });
        res.writeHead(exchanged.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(await exchanged.json()));
      } else if (path === '/embed') {
        const src = new URL(req.url ?? '/', partnerUrl).searchParams.get('src') ?? '';
        res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><html><body>
<pre id="result"></pre>
<iframe title="Connect your database" src="${src.replace(/"/g, '&quot;')}" width="600" height="800"></iframe>
<script>
window.addEventListener('message', function (event) {
  if (!event.data || event.data.type !== 'edgegate:connect') return;
  document.getElementById('result').textContent = JSON.stringify({ origin: event.origin, data: event.data });
});
</script></body></html>`);
      } else if (path === '/hooks') {
        hooks.push({
          body: await body(req),
          signature: req.headers['edgegate-signature'] as string | undefined,
        });
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<p>Back at Acme.</p>');
      }
    });
    await new Promise<void>((resolve) => partner.listen(port, '127.0.0.1', resolve));
    const webhook = await api('/v1/webhooks', { url: `${partnerUrl}/hooks` });
    expect(webhook.status).toBe(201);
    webhookSecret = ((await webhook.json()) as { data: { secret: string } }).data.secret;
    partnerBase = partnerUrl;
    browser = await launchChromium();
  }, 120_000);
  let webhookSecret = '';
  let partnerBase = '';

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => partner?.close(resolve));
    await app?.close();
    await store?.close();
    await cluster?.stop();
  });

  it('collects, tests and hands over a Postgres connection', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(partnerBase);
    const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#connect')]);
    await popup.waitForURL(/\/connect\/egct_/);
    // Two types allowed: the picker comes first.
    await popup.getByRole('link', { name: /PostgreSQL/ }).click();
    await popup.waitForSelector('#field-host');
    await popup.fill('#field-host', '127.0.0.1');
    await popup.fill('#field-port', String(cluster.port));
    await popup.fill('#field-database', cluster.database);
    await popup.fill('#field-user', cluster.users.scram);
    await popup.fill('#field-password', 'not the password');
    await popup.selectOption('#field-sslmode', 'disable');
    await popup.click('#save');
    const error = popup.getByTestId('test-error');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/password/i);
    expect(await popup.inputValue('#field-host')).toBe('127.0.0.1');
    expect(await popup.inputValue('#field-password')).toBe('');

    await popup.fill('#field-password', cluster.password(cluster.users.scram));
    await clickAndAwaitClose(popup, '#save');
    await page.waitForFunction(() => document.getElementById('result')?.textContent !== '');
    const result = JSON.parse((await page.textContent('#result')) ?? '{}') as {
      data: { connectionId: string; type: string; name: string };
    };
    expect(result.data).toMatchObject({ type: 'postgresql', name: 'Acme warehouse' });

    // The webhook follows, signed with the secret shown at creation.
    const deadline = Date.now() + 15_000;
    while (!hooks.some((h) => h.body.includes('connection.created')) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const hook = hooks.find((h) => h.body.includes('connection.created'));
    expect(hook, 'the webhook receiver got connection.created').toBeDefined();
    const event = (await verifyWebhook(hook!.body, hook!.signature, webhookSecret)) as {
      type: string;
      data: { connectionId: string };
    };
    expect(event.type).toBe('connection.created');
    expect(event.data.connectionId).toBe(result.data.connectionId);
    await expect(verifyWebhook(hook!.body, hook!.signature, 'whsec_wrong')).rejects.toThrow();
    await context.close();
  });

  async function newContext() {
    const context = await browser.newContext();
    context.setDefaultTimeout(25_000);
    return context;
  }

  async function newSession(): Promise<string> {
    const made = await fetch(`${partnerBase}/session`, { method: 'POST' });
    return ((await made.json()) as { redirect_url: string }).redirect_url;
  }

  async function fillRight(frame: Page | Frame) {
    await frame.fill('#field-host', '127.0.0.1');
    await frame.fill('#field-port', String(cluster.port));
    await frame.fill('#field-database', cluster.database);
    await frame.fill('#field-user', cluster.users.scram);
    await frame.fill('#field-password', cluster.password(cluster.users.scram));
    await frame.selectOption('#field-sslmode', 'disable');
  }

  it('works as a full page: the user lands on redirect_url with the code and state', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${await newSession()}?state=full-page`);
    await page.click('a[data-type="postgresql"]');
    await fillRight(page);
    await Promise.all([page.waitForURL(`${partnerBase}/callback?**`), page.click('#save')]);
    const landed = new URL(page.url());
    expect(landed.searchParams.get('state')).toBe('full-page');
    const exchanged = await fetch(`${partnerBase}/exchange`, {
      method: 'POST',
      body: landed.searchParams.get('code') ?? '',
    });
    expect(exchanged.status).toBe(200);
    await context.close();
  });

  it('falls back to a full-page redirect when the popup is blocked', async () => {
    const context = await newContext();
    const page = await context.newPage();
    // A popup blocker: window.open returns null.
    await page.addInitScript(() => {
      window.open = () => null;
    });
    await page.goto(partnerBase);
    await Promise.all([page.waitForURL(/\/connect\/egct_.*state=st-/), page.click('#connect')]);
    await page.click('a[data-type="postgresql"]');
    await fillRight(page);
    await Promise.all([page.waitForURL(`${partnerBase}/callback?**`), page.click('#save')]);
    const landed = new URL(page.url());
    expect(landed.searchParams.get('state')).toMatch(/^st-/);
    expect(landed.searchParams.get('code')).toMatch(/^egcc_/);
    await context.close();
  });

  it('works in an iframe of the partner and posts the result to the parent', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const src = await newSession();
    await page.goto(
      `${partnerBase}/embed?src=${encodeURIComponent(`${src}?type=postgresql&state=framed`)}`,
    );
    const frame =
      page.frames().find((f) => f.url().startsWith(url)) ??
      (await (await page.waitForSelector('iframe')).contentFrame())!;
    await frame.waitForSelector('#field-host');
    await fillRight(frame);
    await frame.click('#save');
    await page.waitForFunction(() => document.getElementById('result')?.textContent !== '');
    const received = JSON.parse((await page.textContent('#result')) ?? '{}') as {
      origin: string;
      data: { code: string; state: string };
    };
    expect(received.origin).toBe(url);
    expect(received.data.state).toBe('framed');
    const exchanged = await fetch(`${partnerBase}/exchange`, {
      method: 'POST',
      body: received.data.code,
    });
    expect(exchanged.status).toBe(200);
    await context.close();
  });
});
