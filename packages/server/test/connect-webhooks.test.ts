// Webhooks on both stores, delivered to a real HTTP receiver on loopback: the secret shown once,
// signed deliveries a partner can verify, retries with back-off and Retry-After, permanent
// failures, the delivery log, endpoints refused by the origin guard (also when DNS changes after
// creation), a restart with deliveries still queued, and two dispatchers sharing one queue.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import {
  signWebhook,
  signWebhookMessage,
  verifyWebhook,
  WebhookSignatureError,
} from '@edgegate/contract';
import { migrateToLatest, openStore, type Db, type Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { appendEvent } from '../src/connect/events.ts';
import { revokeGrant } from '../src/services/grants.ts';
import { deleteExpiredOAuthRows } from '../src/db/queries/oauth-store.ts';
import { createKeyring, openSecret } from '../src/connect/keyring.ts';
import {
  startWebhookDispatcher,
  type WebhookDispatcherOptions,
} from '../src/connect/webhook-dispatcher.ts';
import { createTestDatabase, openTestStore, storeKinds, type StoreKind } from './helpers/stores.ts';
import { buildTestApp, TEST_SECRET, testResolver } from './helpers/app.ts';
import { accessTokenFor, consentedGrant, serviceTokenFor } from './helpers/tokens.ts';

const SCOPES = ['caches:read', 'caches:write', 'connections:read', 'connections:write'];
const FAST = { retryBaseMs: 50, pollMs: 50, timeoutMs: 2000 };

type Answer = number | { status: number; headers: Record<string, string> };

interface Receipt {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A partner's endpoint: records every request; each path answers as its handler says (200 else). */
async function startReceiver() {
  const receipts: Receipt[] = [];
  const handlers = new Map<string, (nth: number) => Answer>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      receipts.push({
        path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      });
      const nth = receipts.filter((r) => r.path === path).length;
      const answer = handlers.get(path)?.(nth) ?? 200;
      const { status, headers } =
        typeof answer === 'number' ? { status: answer, headers: {} } : answer;
      res.writeHead(status, headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    receipts,
    at: (path: string) => receipts.filter((r) => r.path === path),
    answer: (path: string, handler: (nth: number) => Answer) => handlers.set(path, handler),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

async function until<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fireEvent(db: Db, workspaceId: string, name = 'Orders DB') {
  return db.transaction().execute((tx) =>
    appendEvent(tx, workspaceId, 'connection.created', {
      connectionId: 'conn_test',
      type: 'postgresql',
      name,
    }),
  );
}

const deliveriesOf = (db: Db, webhookId: string) =>
  db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).execute();

interface Person {
  workspaceId: string;
  userId: string;
  grantId: string;
  oauth: string;
}

let people = 0;
async function person(app: FastifyInstance, db: Db): Promise<Person> {
  people += 1;
  const { user, personalWorkspace } = await signUp(db, {
    email: `w${people}-${Date.now()}@example.com`,
    password: 'long enough pw',
  });
  const grant = await consentedGrant(app, db, {
    userId: user.id,
    workspaceId: personalWorkspace.id,
    scopes: SCOPES,
  });
  const { access_token } = await accessTokenFor(app, grant);
  return {
    workspaceId: personalWorkspace.id,
    userId: user.id,
    grantId: grant.grantId,
    oauth: `Bearer ${access_token}`,
  };
}

const api = (app: FastifyInstance, authorization: string) => ({
  get: (url: string) => app.inject({ method: 'GET', url, headers: { authorization } }),
  post: (url: string, body: unknown) =>
    app.inject({ method: 'POST', url, payload: body as object, headers: { authorization } }),
  delete: (url: string) => app.inject({ method: 'DELETE', url, headers: { authorization } }),
});

async function createHook(app: FastifyInstance, who: Person, url: string) {
  const response = await api(app, who.oauth).post('/v1/webhooks', { url });
  expect(response.statusCode, response.body).toBe(201);
  return response.json().data as { id: string; secret: string; events: string[] | null };
}

describe.each(storeKinds)('webhooks on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let receiver: Receiver;

  beforeAll(async () => {
    store = await openTestStore(kind);
    receiver = await startReceiver();
    app = await buildTestApp(store, { webhooks: FAST });
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await store?.close();
  });

  it('shows the signing secret once, seals it at rest and never lists it', async () => {
    const alice = await person(app, store.db);
    const response = await api(app, alice.oauth).post('/v1/webhooks', {
      url: `${receiver.url}/listed`,
      description: 'Partner backend',
    });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.headers['cache-control']).toBe('no-store');
    const created = response.json().data;
    expect(created).toMatchObject({
      url: `${receiver.url}/listed`,
      description: 'Partner backend',
      events: null,
    });
    expect(created.id).toMatch(/^wh_[A-Za-z0-9]{22}$/);
    // Standard Webhooks: whsec_ and 32 random bytes in standard base64.
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

    const listed = await api(app, alice.oauth).get('/v1/webhooks');
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({
      data: [
        {
          id: created.id,
          url: created.url,
          description: 'Partner backend',
          events: null,
          createdAt: created.createdAt,
        },
      ],
      nextCursor: null,
    });
    expect(listed.body).not.toContain(created.secret);

    const row = await store.db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(row.secret).not.toContain(created.secret);
    const opened = await openSecret(
      store.db,
      createKeyring(TEST_SECRET),
      row.key_id,
      `webhook:${created.id}`,
      row.secret,
    );
    expect(opened).toBe(created.secret);
  });

  it('delivers a signed event that verifyWebhook accepts, and rejects tampering', async () => {
    const alice = await person(app, store.db);
    const hook = await createHook(app, alice, `${receiver.url}/signed`);
    const event = await fireEvent(store.db, alice.workspaceId);

    const [receipt] = await until(
      () => receiver.at('/signed'),
      (r) => r.length > 0,
      'a delivery',
    );
    expect(receipt!.headers['content-type']).toBe('application/json');
    expect(receipt!.headers['user-agent']).toBe('Edgegate-Webhooks/1');
    expect(receipt!.headers['edgegate-event-id']).toBe(event.id);
    expect(receipt!.headers['edgegate-delivery-id']).toBe(`dlv_${hook.id}_${event.id}`);
    const signature = receipt!.headers['edgegate-signature'] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);

    const verified = await verifyWebhook(receipt!.body, signature, hook.secret);
    expect(verified).toEqual({
      id: event.id,
      type: 'connection.created',
      workspaceId: alice.workspaceId,
      createdAt: event.created_at.toISOString(),
      data: { connectionId: 'conn_test', type: 'postgresql', name: 'Orders DB' },
    });
    expect(Object.keys(JSON.parse(receipt!.body))).toEqual([
      'id',
      'type',
      'workspaceId',
      'createdAt',
      'data',
    ]);

    const tampered = receipt!.body.replace('Orders DB', 'Orders DC');
    await expect(verifyWebhook(tampered, signature, hook.secret)).rejects.toThrow(
      WebhookSignatureError,
    );
    await expect(
      verifyWebhook(receipt!.body, signature, `whsec_${'A'.repeat(43)}`),
    ).rejects.toThrow(/no signature matches/);
    const old = await signWebhook(receipt!.body, hook.secret, Math.floor(Date.now() / 1000) - 600);
    await expect(verifyWebhook(receipt!.body, old, hook.secret)).rejects.toThrow(/too old/);

    const deliveries = await until(
      () => api(app, alice.oauth).get(`/v1/webhooks/${hook.id}/deliveries`),
      (r) => r.json().data[0]?.status === 'delivered',
      'the delivery to be recorded',
    );
    expect(deliveries.json().data).toEqual([
      expect.objectContaining({
        id: `dlv_${hook.id}_${event.id}`,
        eventId: event.id,
        eventType: 'connection.created',
        status: 'delivered',
        attempts: 1,
        lastStatus: 200,
        lastError: null,
        nextAttemptAt: null,
      }),
    ]);
    expect(deliveries.json().data[0].finishedAt).not.toBeNull();
  });

  it('signs the Standard Webhooks way: the SDK and the standardwebhooks package both verify it', async () => {
    const alice = await person(app, store.db);
    const hook = await createHook(app, alice, `${receiver.url}/standard`);
    const event = await fireEvent(store.db, alice.workspaceId);
    const [receipt] = await until(
      () => receiver.at('/standard'),
      (r) => r.length > 0,
      'a delivery',
    );
    const headers = receipt!.headers;
    expect(headers['webhook-id']).toBe(event.id);
    expect(Math.abs(Number(headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(30);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);

    expect(await verifyWebhook(receipt!.body, headers, hook.secret)).toMatchObject({
      id: event.id,
      type: 'connection.created',
    });
    // A Fetch Headers object works as well as Node's req.headers.
    const fetchHeaders = new Headers(headers as Record<string, string>);
    expect(await verifyWebhook(receipt!.body, fetchHeaders, hook.secret)).toMatchObject({
      id: event.id,
    });
    // The independent implementation (npm standardwebhooks) agrees.
    const standard = new StandardWebhook(hook.secret);
    expect(standard.verify(receipt!.body, headers as Record<string, string>)).toMatchObject({
      id: event.id,
    });

    const tampered = receipt!.body.replace('Orders DB', 'Orders DC');
    await expect(verifyWebhook(tampered, headers, hook.secret)).rejects.toThrow(
      /no signature matches/,
    );
    expect(() => standard.verify(tampered, headers as Record<string, string>)).toThrow();
    const otherSecret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    await expect(verifyWebhook(receipt!.body, headers, otherSecret)).rejects.toThrow(
      /no signature matches/,
    );
    const otherId = { ...headers, 'webhook-id': 'evt_other' };
    await expect(verifyWebhook(receipt!.body, otherId, hook.secret)).rejects.toThrow(
      /no signature matches/,
    );
    const stale = await signWebhookMessage(
      { id: event.id, timestamp: Math.floor(Date.now() / 1000) - 600, body: receipt!.body },
      [hook.secret],
    );
    await expect(verifyWebhook(receipt!.body, stale, hook.secret)).rejects.toThrow(/too old/);
    expect(() => standard.verify(receipt!.body, stale)).toThrow();
    await expect(verifyWebhook(receipt!.body, {}, hook.secret)).rejects.toThrow(
      /headers are required/,
    );
  });

  it('rotates a secret: both sign during the overlap, only the new one after it', async () => {
    const alice = await person(app, store.db);
    const hook = await createHook(app, alice, `${receiver.url}/rotated`);
    const rotated = await api(app, alice.oauth).post(`/v1/webhooks/${hook.id}/rotate-secret`, {
      overlapSeconds: 3600,
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    expect(rotated.headers['cache-control']).toBe('no-store');
    const next = rotated.json().data as { secret: string; previousSecretExpiresAt: string };
    expect(next.secret).toMatch(/^whsec_/);
    expect(next.secret).not.toBe(hook.secret);
    expect(Date.parse(next.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(3500_000);

    const first = await fireEvent(store.db, alice.workspaceId);
    const [during] = await until(
      () => receiver.at('/rotated'),
      (r) => r.length > 0,
      'a delivery during the overlap',
    );
    expect((during!.headers['webhook-signature'] as string).split(' ')).toHaveLength(2);
    for (const secret of [hook.secret, next.secret]) {
      expect(await verifyWebhook(during!.body, during!.headers, secret)).toMatchObject({
        id: first.id,
      });
      expect(
        new StandardWebhook(secret).verify(during!.body, during!.headers as Record<string, string>),
      ).toMatchObject({ id: first.id });
      // The legacy header carries one v1 per secret too.
      const legacy = during!.headers['edgegate-signature'] as string;
      expect(await verifyWebhook(during!.body, legacy, secret)).toMatchObject({ id: first.id });
    }

    const ended = await api(app, alice.oauth).post(`/v1/webhooks/${hook.id}/rotate-secret`, {
      overlapSeconds: 0,
    });
    expect(ended.statusCode, ended.body).toBe(200);
    expect(ended.json().data.previousSecretExpiresAt).toBeNull();
    const latest = ended.json().data.secret as string;
    const second = await fireEvent(store.db, alice.workspaceId);
    const [, after] = await until(
      () => receiver.at('/rotated'),
      (r) => r.length > 1,
      'a delivery after the overlap',
    );
    expect((after!.headers['webhook-signature'] as string).split(' ')).toHaveLength(1);
    expect(await verifyWebhook(after!.body, after!.headers, latest)).toMatchObject({
      id: second.id,
    });
    for (const retired of [hook.secret, next.secret]) {
      await expect(verifyWebhook(after!.body, after!.headers, retired)).rejects.toThrow(
        /no signature matches/,
      );
    }
    // The receiver may list several secrets while it rolls out the new one.
    expect(await verifyWebhook(after!.body, after!.headers, [next.secret, latest])).toMatchObject({
      id: second.id,
    });

    const bad = await api(app, alice.oauth).post(`/v1/webhooks/${hook.id}/rotate-secret`, {
      overlapSeconds: -1,
    });
    expect(bad.statusCode).toBe(422);
    expect(bad.headers['content-type']).toContain('application/problem+json');
    const mallory = await person(app, store.db);
    const foreign = await api(app, mallory.oauth).post(`/v1/webhooks/${hook.id}/rotate-secret`, {});
    expect(foreign.statusCode).toBe(404);
  });

  it('sends a signed test event to the one endpoint asked, outside the event log', async () => {
    const alice = await person(app, store.db);
    const hook = await createHook(app, alice, `${receiver.url}/test-event`);
    await createHook(app, alice, `${receiver.url}/test-event-other`);
    const sent = await api(app, alice.oauth).post(`/v1/webhooks/${hook.id}/test`, {});
    expect(sent.statusCode, sent.body).toBe(202);
    const { eventId, deliveryId } = sent.json().data;
    expect(deliveryId).toBe(`dlv_${hook.id}_${eventId}`);
    const [receipt] = await until(
      () => receiver.at('/test-event'),
      (r) => r.length > 0,
      'the test event',
    );
    expect(receipt!.headers['webhook-id']).toBe(eventId);
    const expected = {
      id: eventId,
      type: 'webhook.test',
      workspaceId: alice.workspaceId,
      data: { webhookId: hook.id, message: expect.stringContaining('test event') },
    };
    expect(await verifyWebhook(receipt!.body, receipt!.headers, hook.secret)).toMatchObject(
      expected,
    );
    expect(
      new StandardWebhook(hook.secret).verify(
        receipt!.body,
        receipt!.headers as Record<string, string>,
      ),
    ).toMatchObject(expected);
    const deliveries = await until(
      () => api(app, alice.oauth).get(`/v1/webhooks/${hook.id}/deliveries`),
      (r) => r.json().data[0]?.status === 'delivered',
      'the test delivery to be recorded',
    );
    expect(deliveries.json().data[0]).toMatchObject({ id: deliveryId, eventType: 'webhook.test' });
    await sleep(300);
    expect(receiver.at('/test-event-other')).toEqual([]);
    const events = await api(app, alice.oauth).get('/v1/events');
    expect(events.json().data.map((e: { type: string }) => e.type)).not.toContain('webhook.test');
    const mallory = await person(app, store.db);
    expect(
      (await api(app, mallory.oauth).post(`/v1/webhooks/${hook.id}/test`, {})).statusCode,
    ).toBe(404);
  });

  it('retries 500s with back-off and delivers on the third attempt', async () => {
    const alice = await person(app, store.db);
    receiver.answer('/flaky', (nth) => (nth <= 2 ? 500 : 200));
    const hook = await createHook(app, alice, `${receiver.url}/flaky`);
    const event = await fireEvent(store.db, alice.workspaceId);

    const [row] = await until(
      () => deliveriesOf(store.db, hook.id),
      (rows) => rows[0]?.status === 'delivered',
      'delivery after two 500s',
    );
    expect(row).toMatchObject({ attempts: 3, last_status: 200, last_error: null });
    const receipts = receiver.at('/flaky');
    expect(receipts).toHaveLength(3);
    expect(new Set(receipts.map((r) => r.headers['edgegate-event-id']))).toEqual(
      new Set([event.id]),
    );
    expect(new Set(receipts.map((r) => r.body)).size).toBe(1);
    // Each retry waits at least the back-off (50 ms, then 100 ms, less 20 % jitter).
    expect(receipts[1]!.at - receipts[0]!.at).toBeGreaterThanOrEqual(40);
    expect(receipts[2]!.at - receipts[1]!.at).toBeGreaterThanOrEqual(80);
  });

  it('waits as long as Retry-After says on a 429', async () => {
    const alice = await person(app, store.db);
    receiver.answer('/busy', (nth) =>
      nth === 1 ? { status: 429, headers: { 'retry-after': '1' } } : 204,
    );
    const hook = await createHook(app, alice, `${receiver.url}/busy`);
    await fireEvent(store.db, alice.workspaceId);
    await until(
      () => deliveriesOf(store.db, hook.id),
      (rows) => rows[0]?.status === 'delivered',
      'delivery after a 429',
    );
    const [first, second] = receiver.at('/busy');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  it('fails at once when the endpoint answers 410, and says why', async () => {
    const alice = await person(app, store.db);
    receiver.answer('/gone', () => 410);
    const hook = await createHook(app, alice, `${receiver.url}/gone`);
    await fireEvent(store.db, alice.workspaceId);
    await until(
      () => deliveriesOf(store.db, hook.id),
      (rows) => rows[0]?.status === 'failed',
      'the delivery to fail',
    );
    await sleep(300);
    expect(receiver.at('/gone')).toHaveLength(1);
    const [delivery] = (
      await api(app, alice.oauth).get(`/v1/webhooks/${hook.id}/deliveries`)
    ).json().data;
    expect(delivery).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastStatus: 410,
      lastError: 'the endpoint answered 410',
      nextAttemptAt: null,
    });
  });

  it('keeps webhooks to their workspace', async () => {
    const alice = await person(app, store.db);
    const bob = await person(app, store.db);
    const hook = await createHook(app, alice, `${receiver.url}/private`);
    expect((await api(app, bob.oauth).delete(`/v1/webhooks/${hook.id}`)).statusCode).toBe(404);
    const theirs = await api(app, bob.oauth).get(`/v1/webhooks/${hook.id}/deliveries`);
    expect(theirs.statusCode).toBe(404);
    expect(theirs.json().type).toBe('https://edgegate.dev/problems/webhook.not_found');
    expect((await api(app, bob.oauth).get('/v1/webhooks')).json().data).toEqual([]);

    // Bob's events never reach Alice's endpoint, which does receive Alice's own event, sent after.
    await fireEvent(store.db, bob.workspaceId);
    const hers = await fireEvent(store.db, alice.workspaceId);
    await until(
      () => receiver.at('/private'),
      (r) => r.length > 0,
      "Alice's event",
    );
    await sleep(200);
    const received = receiver.at('/private').map((r) => r.headers['edgegate-event-id']);
    expect(received).toEqual([hers.id]);

    expect((await api(app, alice.oauth).delete(`/v1/webhooks/${hook.id}`)).statusCode).toBe(204);
    expect((await api(app, alice.oauth).get('/v1/webhooks')).json().data).toEqual([]);
    expect((await api(app, alice.oauth).delete(`/v1/webhooks/${hook.id}`)).statusCode).toBe(404);
  });

  it.each([
    ['http://example.com/hook', 'validation_failed'],
    ['http://169.254.169.254/latest/meta-data', 'validation_failed'],
    ['https://169.254.169.254/latest/meta-data', 'origin.forbidden_address'],
    ['https://metadata.example.com/hook', 'origin.forbidden_address'],
    ['https://nowhere.example.com/hook', 'origin.unresolvable'],
  ])('refuses the endpoint %s with a 422 (%s)', async (url, code) => {
    const alice = await person(app, store.db);
    const response = await api(app, alice.oauth).post('/v1/webhooks', { url });
    expect(response.statusCode, response.body).toBe(422);
    expect(response.json().type).toBe(`https://edgegate.dev/problems/${code}`);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain('url');
  });

  it('ends an endpoint with the credential that registered it', async () => {
    const alice = await person(app, store.db);
    const hooks = () =>
      store.db
        .selectFrom('webhooks')
        .select('id')
        .where('workspace_id', '=', alice.workspaceId)
        .execute()
        .then((rows) => rows.map((row) => row.id).sort());
    // Registered by the app (OAuth), by an API key the app minted, and by a service token.
    const byApp = await createHook(app, alice, `${receiver.url}/owner-app`);
    const minted = await api(app, alice.oauth).post('/v1/apikeys', { name: 'partner key' });
    expect(minted.statusCode, minted.body).toBe(201);
    const key = minted.json().data as { id: string; key: string };
    const byKey = await createHook(
      app,
      { ...alice, oauth: `Bearer ${key.key}` },
      `${receiver.url}/owner-key`,
    );
    const token = await serviceTokenFor(store.db, {
      userId: alice.userId,
      workspaceId: alice.workspaceId,
      scopes: ['connections:read', 'connections:write'],
    });
    const byToken = await createHook(
      app,
      { ...alice, oauth: token },
      `${receiver.url}/owner-token`,
    );
    expect(await hooks()).toEqual([byApp.id, byKey.id, byToken.id].sort());

    // An expired API key gets no new events, though its endpoint stays listed until it is deleted.
    await store.db
      .updateTable('api_keys')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', key.id)
      .execute();
    const afterExpiry = await fireEvent(store.db, alice.workspaceId, 'after key expiry');
    const queued = await store.db
      .selectFrom('webhook_deliveries')
      .select('webhook_id')
      .where('event_id', '=', afterExpiry.id)
      .execute();
    expect(queued.map((row) => row.webhook_id).sort()).toEqual([byApp.id, byToken.id].sort());

    // Deleting the service token deletes its endpoint and what was queued for it.
    await store.db.deleteFrom('service_tokens').where('id', '=', token.split(':')[0]!).execute();
    expect(await hooks()).toEqual([byApp.id, byKey.id].sort());
    expect(await deliveriesOf(store.db, byToken.id)).toEqual([]);

    // Deleting an API key through the API ends its endpoint too, and the log says so.
    const second = await api(app, alice.oauth).post('/v1/apikeys', { name: 'second key' });
    const secondKey = second.json().data as { id: string; key: string };
    const bySecond = await createHook(
      app,
      { ...alice, oauth: `Bearer ${secondKey.key}` },
      `${receiver.url}/owner-second`,
    );
    expect((await api(app, alice.oauth).delete(`/v1/apikeys/${secondKey.id}`)).statusCode).toBe(
      204,
    );
    expect(await hooks()).toEqual([byApp.id, byKey.id].sort());

    // Revoking the app's grant ends its endpoint and the key it minted, with that key's endpoint.
    await revokeGrant(store.db, alice.grantId, {
      reason: 'revoked_by_user',
      actorUserId: alice.userId,
    });
    expect(await hooks()).toEqual([]);
    expect(await deliveriesOf(store.db, byApp.id)).toEqual([]);

    const log = await store.db
      .selectFrom('audit_events')
      .select(['target', 'data'])
      .where('workspace_id', '=', alice.workspaceId)
      .where('action', '=', 'webhook.deleted')
      .execute();
    const byTarget = (a: { target: string | null }, b: { target: string | null }) =>
      String(a.target) < String(b.target) ? -1 : 1;
    expect(log.sort(byTarget)).toEqual(
      [
        {
          target: bySecond.id,
          data: { url: `${receiver.url}/owner-second`, reason: 'API key deleted' },
        },
        {
          target: byApp.id,
          data: { url: `${receiver.url}/owner-app`, reason: 'grant revoked_by_user' },
        },
        {
          target: byKey.id,
          data: { url: `${receiver.url}/owner-key`, reason: 'grant revoked_by_user' },
        },
      ].sort(byTarget),
    );
  });

  it("records an expired grant's endpoint going with it when housekeeping deletes the grant", async () => {
    const alice = await person(app, store.db);
    const hook = await createHook(app, alice, `${receiver.url}/expired-grant`);
    await store.db
      .updateTable('oauth_grants')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('id', '=', alice.grantId)
      .execute();
    await deleteExpiredOAuthRows(store.db, new Date());
    const left = await store.db
      .selectFrom('webhooks')
      .select('id')
      .where('id', '=', hook.id)
      .execute();
    expect(left).toEqual([]);
    const log = await store.db
      .selectFrom('audit_events')
      .select(['action', 'data'])
      .where('target', '=', hook.id)
      .where('action', '=', 'webhook.deleted')
      .execute();
    expect(log).toEqual([
      {
        action: 'webhook.deleted',
        data: { url: `${receiver.url}/expired-grant`, reason: 'grant expired' },
      },
    ]);
  });

  it("stops an API key's endpoint when its owner leaves the workspace", async () => {
    const alice = await person(app, store.db);
    const minted = await api(app, alice.oauth).post('/v1/apikeys', { name: 'partner key' });
    const key = minted.json().data as { key: string };
    const byKey = await createHook(
      app,
      { ...alice, oauth: `Bearer ${key.key}` },
      `${receiver.url}/left`,
    );
    const byApp = await createHook(app, alice, `${receiver.url}/stays`);
    // The membership row alone, so the grant (which removeMember would also end) stays.
    await store.db
      .deleteFrom('memberships')
      .where('workspace_id', '=', alice.workspaceId)
      .where('user_id', '=', alice.userId)
      .execute();
    const event = await fireEvent(store.db, alice.workspaceId, 'after leaving');
    const queued = await store.db
      .selectFrom('webhook_deliveries')
      .select('webhook_id')
      .where('event_id', '=', event.id)
      .execute();
    expect(queued.map((row) => row.webhook_id)).toEqual([byApp.id]);
    expect(byKey.id).not.toBe(byApp.id);
  });

  // Registered on Postgres only: PGlite runs one transaction at a time, so there is nothing to race.
  if (kind === 'postgres')
    it('skips an endpoint deleted while an event is being queued, without failing the change', async () => {
      const alice = await person(app, store.db);
      const doomed = await createHook(app, alice, `${receiver.url}/doomed`);
      const kept = await createHook(app, alice, `${receiver.url}/kept`);
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let signal!: () => void;
      const deletedUncommitted = new Promise<void>((resolve) => (signal = resolve));
      const deleting = store.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('webhooks').where('id', '=', doomed.id).execute();
        signal();
        await held;
      });
      await deletedUncommitted;
      const firing = fireEvent(store.db, alice.workspaceId, 'during a delete');
      await sleep(150); // the event's insert now waits for the endpoint's row
      release();
      await deleting;
      const event = await firing;
      const queued = await store.db
        .selectFrom('webhook_deliveries')
        .select('webhook_id')
        .where('event_id', '=', event.id)
        .execute();
      expect(queued.map((row) => row.webhook_id)).toEqual([kept.id]);
    });

  it('answers 401, not 500, when the credential is revoked while it registers an endpoint', async () => {
    const alice = await person(app, store.db);
    const token = await serviceTokenFor(store.db, {
      userId: alice.userId,
      workspaceId: alice.workspaceId,
      scopes: ['connections:read', 'connections:write'],
    });
    // Resolved once, so this node remembers it for up to a second …
    expect((await api(app, token).get('/v1/webhooks')).statusCode).toBe(200);
    // … and revoked behind its back (as another node would, without this node hearing of it).
    await store.db.deleteFrom('service_tokens').where('id', '=', token.split(':')[0]!).execute();
    const response = await api(app, token).post('/v1/webhooks', { url: `${receiver.url}/late` });
    expect(response.statusCode, response.body).toBe(401);
    expect(response.json().type).toBe('https://edgegate.dev/problems/auth.invalid_token');
    const left = await store.db
      .selectFrom('webhooks')
      .select('id')
      .where('workspace_id', '=', alice.workspaceId)
      .execute();
    expect(left).toEqual([]);
  });

  it('subscribes a credential only to the events it may read', async () => {
    const alice = await person(app, store.db);
    const token = await serviceTokenFor(store.db, {
      userId: alice.userId,
      workspaceId: alice.workspaceId,
      scopes: ['connections:read', 'connections:write'],
    });
    const every = await api(app, token).post('/v1/webhooks', { url: `${receiver.url}/narrow` });
    expect(every.statusCode, every.body).toBe(201);
    expect(every.json().data.events).toEqual([
      'connection.created',
      'connection.updated',
      'connection.deleted',
    ]);
    const caches = await api(app, token).post('/v1/webhooks', {
      url: `${receiver.url}/narrow`,
      events: ['cache.created'],
    });
    expect(caches.statusCode).toBe(403);
    expect(caches.headers['www-authenticate']).toContain('scope="caches:read"');

    const reader = await serviceTokenFor(store.db, {
      userId: alice.userId,
      workspaceId: alice.workspaceId,
      scopes: ['connections:read'],
    });
    expect((await api(app, reader).get('/v1/webhooks')).statusCode).toBe(200);
    const refused = await api(app, reader).post('/v1/webhooks', { url: `${receiver.url}/narrow` });
    expect(refused.statusCode).toBe(403);
  });
});

/**
 * One database opened by several "processes": each open() is a new pool on Postgres; PGlite lives
 * in this process's memory, so every open() shares the one store (and closing it is the drop).
 */
async function sharedDatabase(kind: StoreKind) {
  if (kind === 'pglite') {
    const store = await openTestStore('pglite');
    return {
      open: async () => ({ ...store, close: async () => {} }),
      drop: () => store.close(),
    };
  }
  const database = await createTestDatabase();
  let migrated = false;
  return {
    async open(): Promise<Store> {
      const store = await openStore({ databaseUrl: database.url, dataDir: 'unused' });
      if (!migrated) await migrateToLatest(store.db);
      migrated = true;
      return store;
    },
    drop: () => database.drop(),
  };
}

describe.each(storeKinds)('the webhook queue on %s', (kind) => {
  let shared: Awaited<ReturnType<typeof sharedDatabase>>;
  let receiver: Receiver;
  const dispatcherOptions = (
    db: Db,
    extra: Partial<WebhookDispatcherOptions> = {},
  ): WebhookDispatcherOptions => ({
    db,
    keyring: createKeyring(TEST_SECRET),
    logger: pino({ level: 'silent' }),
    policy: { privateRanges: 'allow', resolve: testResolver },
    ...FAST,
    ...extra,
  });

  /** A workspace with one webhook, made through the API of an app that is closed again. */
  async function workspaceWithHook(url: string) {
    const store = await shared.open();
    const app = await buildTestApp(store, { webhooks: FAST });
    const alice = await person(app, store.db);
    const hook = await createHook(app, alice, url);
    await app.close();
    await store.close();
    return { workspaceId: alice.workspaceId, hook };
  }

  beforeAll(async () => {
    shared = await sharedDatabase(kind);
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
    await shared?.drop();
  });

  it('delivers what was queued before a restart, including a lease its process left', async () => {
    let down = true;
    receiver.answer('/restart', () => (down ? 503 : 200));
    const first = await shared.open();
    const app = await buildTestApp(first, { webhooks: FAST });
    const alice = await person(app, first.db);
    const hook = await createHook(app, alice, `${receiver.url}/restart`);
    await fireEvent(first.db, alice.workspaceId);
    await until(
      () => deliveriesOf(first.db, hook.id),
      (rows) => (rows[0]?.attempts ?? 0) >= 2,
      'two refused attempts',
    );
    await app.close();
    await first.close();

    const second = await shared.open();
    const [pending] = await deliveriesOf(second.db, hook.id);
    expect(pending).toMatchObject({ status: 'pending', last_status: 503, lease_until: null });
    // As if the process had died mid-attempt: its lease runs out, then anyone may claim the row.
    await second.db
      .updateTable('webhook_deliveries')
      .set({ lease_until: new Date(Date.now() - 1000) })
      .where('id', '=', pending!.id)
      .execute();
    down = false;
    const dispatcher = startWebhookDispatcher(dispatcherOptions(second.db));
    try {
      const [delivered] = await until(
        () => deliveriesOf(second.db, hook.id),
        (rows) => rows[0]?.status === 'delivered',
        'delivery after the restart',
      );
      expect(delivered!.attempts).toBe(pending!.attempts + 1);
      const last = receiver.at('/restart').at(-1)!;
      await verifyWebhook(last.body, last.headers['edgegate-signature'] as string, hook.secret);
    } finally {
      await dispatcher.stop();
      await second.close();
    }
  });

  it('lets two dispatchers share the queue and deliver each event once', async () => {
    const { workspaceId, hook } = await workspaceWithHook(`${receiver.url}/shared`);
    const one = await shared.open();
    const two = await shared.open();
    const events = [];
    for (let i = 0; i < 30; i++) events.push(await fireEvent(one.db, workspaceId, `db ${i}`));
    const dispatchers = [
      startWebhookDispatcher(dispatcherOptions(one.db, { batch: 4 })),
      startWebhookDispatcher(dispatcherOptions(two.db, { batch: 4 })),
    ];
    try {
      const rows = await until(
        () => deliveriesOf(one.db, hook.id),
        (r) => r.length === 30 && r.every((d) => d.status === 'delivered'),
        'all 30 deliveries',
      );
      await sleep(200);
      const received = receiver.at('/shared').map((r) => r.headers['edgegate-event-id']);
      expect(received).toHaveLength(30);
      expect(new Set(received)).toEqual(new Set(events.map((e) => e.id)));
      expect(rows.every((d) => d.attempts === 1)).toBe(true);
    } finally {
      await Promise.all(dispatchers.map((d) => d.stop()));
      await one.close();
      await two.close();
    }
  });

  it("shares batches fairly: one workspace's hanging endpoint does not hold up another's events", async () => {
    // An endpoint that accepts connections and never answers.
    const held = new Set<Socket>();
    const tarpit = createNetServer((socket) => {
      held.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => tarpit.listen(0, '127.0.0.1', resolve));
    const tarpitUrl = `http://127.0.0.1:${(tarpit.address() as AddressInfo).port}/hang`;
    const slow = await workspaceWithHook(tarpitUrl);
    const fast = await workspaceWithHook(`${receiver.url}/fair`);
    const store = await shared.open();
    for (let i = 0; i < 10; i++) await fireEvent(store.db, slow.workspaceId, `slow ${i}`);
    await fireEvent(store.db, fast.workspaceId, 'fast');
    const started = Date.now();
    const dispatcher = startWebhookDispatcher(
      dispatcherOptions(store.db, { batch: 4, timeoutMs: 2_000 }),
    );
    try {
      await until(
        () => receiver.at('/fair'),
        (r) => r.length === 1,
        'the fast delivery',
        5_000,
      );
      // In the first batch, before the hanging requests time out (2 s each batch otherwise).
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      await dispatcher.stop();
      await store.close();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => tarpit.close(resolve));
    }
  });

  it('re-checks the address at connect time, so a host that now resolves to metadata is refused', async () => {
    const { workspaceId, hook } = await workspaceWithHook('https://db.example.com/hook');
    const store = await shared.open();
    const rebound = async () => ['169.254.169.254'];
    const dispatcher = startWebhookDispatcher(
      dispatcherOptions(store.db, { policy: { privateRanges: 'allow', resolve: rebound } }),
    );
    try {
      await fireEvent(store.db, workspaceId);
      const [row] = await until(
        () => deliveriesOf(store.db, hook.id),
        (rows) => (rows[0]?.attempts ?? 0) >= 1 && rows[0]?.lease_until === null,
        'a refused attempt',
      );
      expect(row).toMatchObject({ status: 'pending', last_status: null });
      expect(row!.last_error).toContain('does not send webhooks to');
    } finally {
      await dispatcher.stop();
      // Its delivery would keep retrying against the next tests' dispatchers.
      await store.db.deleteFrom('webhooks').where('id', '=', hook.id).execute();
      await store.close();
    }
  });

  it('gives a delivery up once it is older than maxAgeMs', async () => {
    receiver.answer('/down', () => 502);
    const { workspaceId, hook } = await workspaceWithHook(`${receiver.url}/down`);
    const store = await shared.open();
    const dispatcher = startWebhookDispatcher(dispatcherOptions(store.db, { maxAgeMs: 300 }));
    try {
      await fireEvent(store.db, workspaceId);
      const [row] = await until(
        () => deliveriesOf(store.db, hook.id),
        (rows) => rows[0]?.status === 'failed',
        'the delivery to be given up',
      );
      expect(row).toMatchObject({ last_status: 502, last_error: 'the endpoint answered 502' });
      expect(row!.attempts).toBeGreaterThanOrEqual(2);
      expect(row!.finished_at!.getTime() - row!.created_at.getTime()).toBeGreaterThanOrEqual(290);
    } finally {
      await dispatcher.stop();
      await store.close();
    }
  });
});
