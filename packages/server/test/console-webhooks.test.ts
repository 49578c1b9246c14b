// The console's webhooks page on real Postgres: it lists an endpoint registered through the API,
// and its "Send a test event" button delivers a signed `webhook.test` event to a real receiver on
// loopback; members of other workspaces get 404 and a form without the CSRF token is refused.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { verifyWebhook } from '@edgegate/sdk';
import type { Store } from '../src/db/store.ts';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { ConsoleClient } from './helpers/console-client.ts';

interface Receipt {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A partner's endpoint: records every request and answers 200. */
async function startReceiver() {
  const receipts: Receipt[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      receipts.push({
        path: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    at: (path: string) => receipts.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function until<T>(read: () => Promise<T> | T, done: (value: T) => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('console webhooks page', () => {
  let store: Store;
  let app: FastifyInstance;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let n = 0;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    receiver = await startReceiver();
    app = await buildTestApp(store, { webhooks: { retryBaseMs: 50, pollMs: 50, timeoutMs: 2000 } });
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await store?.close();
  });

  async function user() {
    n += 1;
    const client = new ConsoleClient(app);
    await client.signUp(`hooks${n}-${Date.now()}@example.com`);
    return client;
  }

  async function workspaceOf(client: ConsoleClient, name: string) {
    const created = await client.post('/workspaces', { name });
    expect(created.statusCode, created.body).toBe(303);
    return created.headers.location as string;
  }

  /** Registers an endpoint through the API, with an API key made on the credentials page. */
  async function registerThroughApi(client: ConsoleClient, base: string, url: string) {
    const credentials = `${base}/settings/credentials`;
    const made = await client.post(
      `${credentials}/apikeys`,
      { keyName: 'webhooks' },
      { from: credentials },
    );
    expect(made.statusCode, made.body).toBe(303);
    const key = /data-testid="secret">([^<]+)</.exec((await client.get(credentials)).body)?.[1];
    expect(key).toMatch(/^egk_/);
    const response = await app.inject({
      method: 'POST',
      url: '/v1/webhooks',
      payload: { url },
      headers: { authorization: `Bearer ${key}` },
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().data as { id: string; secret: string };
  }

  it('lists an API-registered endpoint and its button delivers a signed webhook.test', async () => {
    const admin = await user();
    const base = await workspaceOf(admin, `Hooks ${n}`);
    const page = `${base}/settings/webhooks`;
    expect((await admin.get(base)).body).toContain(`href="${page}"`);
    expect((await admin.get(page)).body).toContain('No webhooks yet.');

    const url = `${receiver.url}/console-test`;
    const hook = await registerThroughApi(admin, base, url);
    const listed = await admin.get(page);
    expect(listed.statusCode).toBe(200);
    expect(listed.body).toContain(url);
    expect(listed.body).toContain('All events');
    expect(listed.body).toContain('No deliveries yet');
    expect(listed.body).toContain(`action="${page}/${hook.id}/test"`);
    expect(listed.body).not.toContain(hook.secret);

    const pressed = await admin.post(`${page}/${hook.id}/test`, {}, { from: page });
    expect(pressed.statusCode, pressed.body).toBe(303);
    expect(pressed.headers.location).toBe(page);
    const after = await admin.get(page);
    expect(after.body).toContain(`Test event queued for ${url}`);
    // The flash is shown once.
    expect((await admin.get(page)).body).not.toContain('Test event queued');

    const [receipt] = await until(
      () => receiver.at('/console-test'),
      (r) => r.length > 0,
      'the test event',
    );
    expect(await verifyWebhook(receipt!.body, receipt!.headers, hook.secret)).toMatchObject({
      type: 'webhook.test',
      data: { webhookId: hook.id },
    });
    const delivered = await until(
      () => admin.get(page),
      (r) => r.body.includes('data-testid="delivery-status">delivered<'),
      'the page to show the delivery',
    );
    expect(delivered.body).toContain('webhook.test');
  });

  it('gives a member of another workspace 404 and refuses a form without the CSRF token', async () => {
    const admin = await user();
    const base = await workspaceOf(admin, `Hooks ${n}`);
    const page = `${base}/settings/webhooks`;
    const hook = await registerThroughApi(admin, base, `${receiver.url}/guarded`);
    const test = `${page}/${hook.id}/test`;

    const outsider = await user();
    const own = await workspaceOf(outsider, `Elsewhere ${n}`);
    expect((await outsider.get(page)).statusCode).toBe(404);
    expect((await outsider.post(test, {}, { from: `${own}/settings/webhooks` })).statusCode).toBe(
      404,
    );
    const viaOwn = await outsider.post(
      `${own}/settings/webhooks/${hook.id}/test`,
      {},
      { from: `${own}/settings/webhooks` },
    );
    expect(viaOwn.statusCode).toBe(404);

    const refused = await admin.post(test, {}, { csrf: null });
    expect(refused.statusCode).toBe(403);
    await sleep(300);
    expect(receiver.at('/guarded')).toEqual([]);
    expect((await admin.get(page)).body).toContain('No deliveries yet');
  });
});
