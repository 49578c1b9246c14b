// connect.js's callbacks in Chromium, Plaid Link's model: a partner page served by the test embeds
// the script with onSuccess, onExit and onEvent, and each fires with its payload — OPEN, the type
// chosen, each submission, a failed test, success with the result code; exit on cancel and on a
// closed window. The database is the machine's Postgres (trust on loopback, no password).
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { openTestStore } from './helpers/stores.ts';
import { freePort, startListeningApp } from './helpers/listening-app.ts';
import { clickAndAwaitClose, launchChromium } from './helpers/chromium.ts';
import { serviceTokenFor } from './helpers/tokens.ts';

interface Call {
  callback: 'onSuccess' | 'onExit' | 'onEvent';
  args: unknown[];
}

function partnerPage(edgegate: string): string {
  return `<!doctype html><html><head><title>Partner</title></head><body>
<button id="connect">Connect your database</button>
<script src="${edgegate}/connect.js"></script>
<script>
window.calls = [];
function record(callback) {
  return function () { window.calls.push({ callback: callback, args: Array.prototype.slice.call(arguments) }); };
}
document.getElementById('connect').addEventListener('click', function () {
  Edgegate.connect({
    state: 'st-1',
    url: function () {
      return fetch('/session', { method: 'POST' }).then(function (r) { return r.json(); })
        .then(function (d) { return d.redirect_url; });
    },
    onSuccess: record('onSuccess'),
    onExit: record('onExit'),
    onEvent: record('onEvent'),
  }).catch(function () {});
});
</script></body></html>`;
}

describe('connect.js callbacks', () => {
  let store: Store;
  let app: FastifyInstance;
  let browser: Browser;
  let partner: Server;
  let partnerBase = '';

  beforeAll(async () => {
    store = await openTestStore('pglite');
    let url: string;
    ({ app, url } = await startListeningApp(store));
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'callbacks@acme.example',
      password: 'long enough pw',
    });
    const credential = await serviceTokenFor(store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['connections:read', 'connections:write'],
    });
    const port = await freePort();
    partnerBase = `http://127.0.0.1:${port}`;
    partner = createServer(async (req, res) => {
      const path = new URL(req.url ?? '/', partnerBase).pathname;
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html' }).end(partnerPage(url));
      } else if (path === '/session') {
        const made = await fetch(`${url}/v1/connect/sessions`, {
          method: 'POST',
          headers: { authorization: credential, 'content-type': 'application/json' },
          body: JSON.stringify({
            whitelist: ['postgresql', 'mysql'],
            name: 'Acme warehouse',
            redirect_url: `${partnerBase}/callback`,
          }),
        });
        res.writeHead(made.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(((await made.json()) as { data: unknown }).data));
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<p>Back at Acme.</p>');
      }
    });
    await new Promise<void>((resolve) => partner.listen(port, '127.0.0.1', resolve));
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => partner?.close(resolve));
    await app?.close();
    await store?.close();
  });

  const callsOf = (page: Page) =>
    page.evaluate(() => (window as unknown as { calls: Call[] }).calls);

  async function open(page: Page): Promise<Page> {
    await page.goto(partnerBase);
    const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#connect')]);
    await popup.waitForURL(/\/connect\/egct_/);
    return popup;
  }

  it('reports open, the type chosen, each submission, a failed test, and success with the code', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const popup = await open(page);
    await popup.click('a[data-type="postgresql"]');
    await popup.waitForSelector('#field-host');
    await popup.fill('#field-host', '127.0.0.1');
    await popup.fill('#field-port', '1');
    await popup.fill('#field-database', 'test');
    await popup.fill('#field-user', 'postgres');
    await popup.selectOption('#field-sslmode', 'disable');
    await popup.click('#save');
    await popup.getByTestId('test-error').waitFor();
    await popup.fill('#field-port', '5432');
    await clickAndAwaitClose(popup, '#save');
    await page.waitForFunction(() =>
      (window as unknown as { calls: Call[] }).calls.some((c) => c.callback === 'onSuccess'),
    );
    const calls = await callsOf(page);
    const events = calls.filter((c) => c.callback === 'onEvent').map((c) => c.args);
    expect(events).toEqual([
      ['OPEN', { state: 'st-1' }],
      ['SELECT_TYPE', { type: 'postgresql' }],
      ['SUBMIT', { type: 'postgresql' }],
      ['ERROR', { type: 'postgresql', error_code: 'connection_refused' }],
      ['SUBMIT', { type: 'postgresql' }],
      ['SUCCESS', { state: 'st-1' }],
    ]);
    const success = calls.filter((c) => c.callback === 'onSuccess');
    expect(success).toEqual([
      { callback: 'onSuccess', args: [{ code: expect.stringMatching(/^egcc_/), state: 'st-1' }] },
    ]);
    expect(calls.some((c) => c.callback === 'onExit')).toBe(false);
    await context.close();
  });

  it('calls onExit with access_denied when the user cancels', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const popup = await open(page);
    await popup.click('a[data-type="mysql"]');
    await popup.waitForSelector('#cancel');
    await Promise.all([popup.waitForEvent('close'), popup.click('#cancel')]);
    await page.waitForFunction(() =>
      (window as unknown as { calls: Call[] }).calls.some((c) => c.callback === 'onExit'),
    );
    const calls = await callsOf(page);
    expect(calls.filter((c) => c.callback === 'onExit')).toEqual([
      { callback: 'onExit', args: [{ error_code: 'access_denied', state: 'st-1' }] },
    ]);
    expect(calls.filter((c) => c.callback === 'onEvent').map((c) => c.args[0])).toEqual([
      'OPEN',
      'SELECT_TYPE',
      'EXIT',
    ]);
    expect(calls.some((c) => c.callback === 'onSuccess')).toBe(false);
    await context.close();
  });

  it('takes a message the browser delivered without a source when it names its popup’s session', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const popup = await open(page);
    const popupUrl = new URL(popup.url());
    const session = popupUrl.pathname.split('/')[2] as string;
    // What Chromium hands the opener for a message posted just before the popup navigated.
    const deliver = (connect: string, type: string) =>
      page.evaluate(
        ([origin, connect, type]) =>
          window.dispatchEvent(
            new MessageEvent('message', {
              origin,
              source: null,
              data: {
                type: 'edgegate:connect:event',
                event: 'SELECT_TYPE',
                metadata: { type },
                connect,
              },
            }),
          ),
        [popupUrl.origin, connect, type] as const,
      );
    await deliver('egct_someone_else', 'mysql');
    await deliver('', 'mysql');
    await deliver(session, 'postgresql');
    const events = (await callsOf(page)).filter((c) => c.callback === 'onEvent').map((c) => c.args);
    expect(events).toEqual([
      ['OPEN', { state: 'st-1' }],
      ['SELECT_TYPE', { type: 'postgresql' }],
    ]);
    await context.close();
  });

  it('calls onExit with closed when the user closes the window', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const popup = await open(page);
    await popup.close();
    await page.waitForFunction(() =>
      (window as unknown as { calls: Call[] }).calls.some((c) => c.callback === 'onExit'),
    );
    const calls = await callsOf(page);
    expect(calls.filter((c) => c.callback === 'onExit')).toEqual([
      { callback: 'onExit', args: [{ error_code: 'closed', state: 'st-1' }] },
    ]);
    expect(calls.filter((c) => c.callback === 'onEvent').map((c) => c.args[0])).toEqual([
      'OPEN',
      'EXIT',
    ]);
    await context.close();
  });
});
