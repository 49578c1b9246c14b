// The hosted connect flow without a browser, on both stores: sessions minted by each kind of
// credential, the generated page, a real "Test and save" against the local Postgres, the single-use
// code and its exchange, connections and their sealed secrets, reconnect, cancel, the event log,
// a cache made from a connection, and key rotation.
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { sha256 } from '../src/services/crypto.ts';
import { createKeyring, openSecret, rotateKeys } from '../src/connect/keyring.ts';
import { openConnection, originConnectionString } from '../src/connect/connections.ts';
import { toEdgeConnectionString } from '@edgegate/contract';
import { openTestStore, storeKinds } from './helpers/stores.ts';
import { buildTestApp, TEST_SECRET } from './helpers/app.ts';
import { accessTokenFor, consentedGrant, serviceTokenFor } from './helpers/tokens.ts';

const SCOPES = ['caches:read', 'caches:write', 'connections:read', 'connections:write'];
const PARTNER = 'https://partner.example';
const LOCAL_PG = { host: '127.0.0.1', port: '5432', database: 'test', user: 'postgres' };

function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!match) throw new Error(`no hidden field ${name}`);
  return match[1]!.replace(/&amp;/g, '&').replace(/&quot;/g, '"');
}

function redirectOf(html: string): URL {
  const href = /<a href="([^"]+)" id="continue"/.exec(html)?.[1];
  if (!href) throw new Error('no continue link');
  return new URL(href.replace(/&amp;/g, '&'));
}

describe.each(storeKinds)('connect flow on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let n = 0;

  interface Person {
    workspaceId: string;
    userId: string;
    oauth: string;
    clientId: string;
  }

  async function person(scopes = SCOPES): Promise<Person> {
    n += 1;
    const { user, personalWorkspace } = await signUp(store.db, {
      email: `c${n}@example.com`,
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes,
    });
    const { access_token } = await accessTokenFor(app, grant);
    return {
      workspaceId: personalWorkspace.id,
      userId: user.id,
      oauth: `Bearer ${access_token}`,
      clientId: grant.clientId,
    };
  }

  const post = (authorization: string, url: string, body: unknown) =>
    app.inject({ method: 'POST', url, payload: body as object, headers: { authorization } });
  const get = (authorization: string, url: string) =>
    app.inject({ method: 'GET', url, headers: { authorization } });

  async function session(who: Person, body: Record<string, unknown> = {}) {
    const response = await post(who.oauth, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'Orders DB',
      redirect_url: `${PARTNER}/connected`,
      ...body,
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().data as { redirect_url: string; token: string; expires_at: string };
  }

  const pagePath = (token: string) => `/connect/${token}`;

  async function submit(
    token: string,
    fields: Record<string, string>,
    options: { type?: string; state?: string; origin?: string } = {},
  ) {
    const form = await app.inject({
      method: 'GET',
      url: pagePath(token) + `?type=${options.type ?? 'postgresql'}`,
    });
    const payload = new URLSearchParams({
      _csrf: hidden(form.body, '_csrf'),
      type: options.type ?? 'postgresql',
      state: options.state ?? '',
      ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [`f.${k}`, v])),
    });
    return app.inject({
      method: 'POST',
      url: pagePath(token),
      payload: payload.toString(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: options.origin ?? 'http://localhost:8080',
      },
    });
  }

  async function completed(who: Person, body: Record<string, unknown> = {}) {
    const s = await session(who, body);
    const done = await submit(
      s.token,
      { ...LOCAL_PG, password: 'pw with spaces & symbols/?' },
      {
        state: 'xyz',
      },
    );
    expect(done.statusCode, done.body).toBe(200);
    const target = redirectOf(done.body);
    return { ...s, code: target.searchParams.get('code')!, target, page: done.body };
  }

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
  });

  it('runs at most 16 credential tests at once, even when a burst arrives together', async () => {
    // An origin that accepts and never answers: each test holds its slot until the deadline.
    const held = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = String((silent.address() as AddressInfo).port);
    const slow = await buildTestApp(store, { connectTestTimeoutMs: 1_500 });
    try {
      const alice = await person();
      const links = [await session(alice), await session(alice)];
      const forms = await Promise.all(
        Array.from({ length: 18 }, async (_, i) => {
          const token = links[i % 2]!.token;
          const form = await slow.inject({
            method: 'GET',
            url: `${pagePath(token)}?type=postgresql`,
          });
          return { token, csrf: hidden(form.body, '_csrf') };
        }),
      );
      const answers = await Promise.all(
        forms.map(({ token, csrf }) =>
          slow.inject({
            method: 'POST',
            url: pagePath(token),
            payload: new URLSearchParams({
              _csrf: csrf,
              type: 'postgresql',
              // Its lookup takes 300 ms: every post of the burst is in flight before one test starts.
              'f.host': 'slow.localhost.example',
              'f.port': port,
              'f.database': 'test',
              'f.user': 'postgres',
              'f.sslmode': 'disable',
            }).toString(),
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              origin: 'http://localhost:8080',
            },
          }),
        ),
      );
      const statuses = answers.map((answer) => answer.statusCode).sort();
      expect(statuses).toEqual([...Array(16).fill(422), 503, 503]);
      expect(answers.find((a) => a.statusCode === 503)!.headers['retry-after']).toBe('5');
    } finally {
      await slow.close();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('lists the catalog with JSON Schema forms and UI hints', async () => {
    const alice = await person();
    const response = await get(alice.oauth, '/v1/connection-types');
    expect(response.statusCode).toBe(200);
    const types = response.json().data as {
      id: string;
      schema: { properties: Record<string, { 'x-edgegate'?: { secret?: boolean } }> };
      secretFields: string[];
    }[];
    expect(types.map((t) => t.id).sort()).toEqual([
      'mariadb',
      'mssql',
      'mysql',
      'postgresql',
      'redis',
    ]);
    const postgres = types.find((t) => t.id === 'postgresql')!;
    expect(postgres.secretFields).toEqual(['password']);
    expect(postgres.schema.properties.password?.['x-edgegate']?.secret).toBe(true);
    expect(postgres.schema.properties.host).toBeDefined();
  });

  it('mints a single-use session whose token is stored only as a digest', async () => {
    const alice = await person();
    const before = Date.now();
    const s = await session(alice);
    expect(s.redirect_url).toBe(`http://localhost:8080/connect/${s.token}`);
    expect(s.token).toMatch(/^egct_[A-Za-z0-9_-]{43}$/);
    const ttl = Date.parse(s.expires_at) - before;
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThan(610_000);
    const rows = await store.db.selectFrom('connect_sessions').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(s.token);
    expect(rows.some((r) => r.token_hash === sha256(s.token))).toBe(true);
  });

  it('refuses bad session requests with problem+json naming the field', async () => {
    const alice = await person();
    const cases: [Record<string, unknown>, number, string][] = [
      [{ type: 'postgresql', whitelist: ['mysql'] }, 422, 'type'],
      [{ type: undefined }, 422, 'type'],
      [{ type: 'oracle' }, 422, 'type'],
      [{ redirect_url: 'http://partner.example/x' }, 422, 'redirect_url'],
      [{ redirect_url: 'javascript:alert(1)' }, 422, 'redirect_url'],
      [{ ttlSeconds: 8 * 24 * 3600 }, 422, 'ttlSeconds'],
      [{ whitelist: ['mysql', 'mysql'], type: undefined }, 422, 'whitelist'],
      // An OAuth app may only send users back to its own registered origins.
      [{ redirect_url: 'https://evil.example/cb' }, 422, 'redirect_url'],
    ];
    for (const [body, status, path] of cases) {
      const response = await post(alice.oauth, '/v1/connect/sessions', {
        type: 'postgresql',
        name: 'x',
        redirect_url: `${PARTNER}/cb`,
        ...body,
      });
      expect(response.statusCode, JSON.stringify(body)).toBe(status);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(JSON.stringify(response.json().errors ?? [])).toContain(path);
    }
    const missing = await post(alice.oauth, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'x',
      redirect_url: `${PARTNER}/cb`,
      connection: 'conn_doesnotexist',
    });
    expect(missing.statusCode).toBe(404);
    const reader = await person(['connections:read']);
    const forbidden = await post(reader.oauth, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'x',
      redirect_url: `${PARTNER}/cb`,
    });
    expect(forbidden.statusCode).toBe(403);
  });

  it('shows a type picker for a whitelist and a generated form for one type', async () => {
    const alice = await person();
    const s = await session(alice, { type: undefined, whitelist: ['postgresql', 'mysql'] });
    const picker = await app.inject({ method: 'GET', url: pagePath(s.token) });
    expect(picker.statusCode).toBe(200);
    expect(picker.body).toContain('data-type="postgresql"');
    expect(picker.body).toContain('data-type="mysql"');
    expect(picker.headers['content-security-policy']).toContain(`frame-ancestors ${PARTNER}`);
    expect(picker.headers['referrer-policy']).toBe('same-origin');
    const form = await app.inject({ method: 'GET', url: `${pagePath(s.token)}?type=mysql` });
    expect(form.body).toContain('name="f.host"');
    expect(form.body).toMatch(/name="f.password"\s+type="password"/);
    expect(form.body).toContain('Test Partner');
    const single = await session(alice);
    const direct = await app.inject({ method: 'GET', url: pagePath(single.token) });
    expect(direct.body).toContain('name="f.sslmode"');
  });

  it('answers unknown, reused and expired links with an error page, never a redirect', async () => {
    const unknown = await app.inject({ method: 'GET', url: '/connect/egct_nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.headers['content-type']).toContain('text/html');
    expect(unknown.headers.location).toBeUndefined();
    const alice = await person();
    const done = await completed(alice);
    const reused = await app.inject({ method: 'GET', url: pagePath(done.token) });
    expect(reused.statusCode).toBe(410);
    expect(reused.body).toContain('already used');
    const expired = await session(alice);
    await store.db
      .updateTable('connect_sessions')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('token_hash', '=', sha256(expired.token))
      .execute();
    const page = await app.inject({ method: 'GET', url: pagePath(expired.token) });
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain('expired');
    const status = await get(alice.oauth, `/v1/connect/sessions/${expired.token}`);
    expect(status.json().data.status).toBe('expired');
  });

  it('keeps what was typed (never the password) and says what is wrong', async () => {
    const alice = await person();
    const s = await session(alice);
    const bad = await submit(s.token, { ...LOCAL_PG, port: '70000', password: 'sekret-typed' });
    expect(bad.statusCode).toBe(422);
    expect(bad.body).toContain('value="127.0.0.1"');
    expect(bad.body).not.toContain('sekret-typed');
    expect(bad.body).toMatch(/65535/);
    const refused = await submit(s.token, { ...LOCAL_PG, port: '1', password: 'sekret-typed' });
    expect(refused.statusCode).toBe(422);
    expect(refused.body).toContain('data-testid="test-error"');
    expect(refused.body).not.toContain('sekret-typed');
    const metadata = await submit(s.token, { ...LOCAL_PG, host: '169.254.169.254' });
    expect(metadata.statusCode).toBe(422);
    expect(metadata.body).toContain('never connects there');
  });

  it('says in a plain sentence that a host name does not resolve, without a resolver code', async () => {
    const alice = await person();
    const s = await session(alice);
    const page = await submit(s.token, { ...LOCAL_PG, host: 'db.nonexistent.invalid' });
    expect(page.statusCode).toBe(422);
    expect(page.body).toContain('data-testid="test-error"');
    expect(page.body).toContain(
      'The host name &quot;db.nonexistent.invalid&quot; could not be resolved.',
    );
    expect(page.body).not.toMatch(/\((ENOTFOUND|EAI_AGAIN|ESERVFAIL)\)/);
    expect(page.body).not.toContain('does not resolve');
  });

  it('says on the page, the connection and its event when the server did not check the password', async () => {
    // The machine's Postgres trusts loopback: a wrong password gets in as well as a right one.
    const alice = await person();
    const done = await completed(alice);
    expect(done.page).toContain('data-testid="warning"');
    expect(done.page).toContain('The server did not check the password');
    expect(done.page).toContain('user &quot;postgres&quot;');
    const { connectionId } = (
      await post(alice.oauth, '/v1/connect/exchange', { code: done.code })
    ).json().data;
    const shown = await get(alice.oauth, `/v1/connections/${connectionId}`);
    expect(shown.json().data.passwordVerified).toBe(false);
    const events = (await get(alice.oauth, '/v1/events')).json().data;
    expect(events[0]).toMatchObject({
      type: 'connection.created',
      data: { connectionId, passwordVerified: false },
    });
    // Without a password typed there is nothing to warn about; the flag still says unchecked.
    const s = await session(alice);
    const empty = await submit(s.token, LOCAL_PG);
    expect(empty.statusCode, empty.body).toBe(200);
    expect(empty.body).not.toContain('data-testid="warning"');
  });

  it("echoes the partner's end_user and metadata on the session, the connection and its event", async () => {
    const alice = await person();
    const endUser = { id: 'user-42', email: 'ada@partner.example', display_name: 'Ada' };
    const metadata = { plan: 'pro', seats: 3, tags: ['eu', 'beta'] };
    const done = await completed(alice, { end_user: endUser, metadata });
    const status = await get(alice.oauth, `/v1/connect/sessions/${done.token}`);
    expect(status.json().data).toMatchObject({ end_user: endUser, metadata });
    const { connectionId } = (
      await post(alice.oauth, '/v1/connect/exchange', { code: done.code })
    ).json().data;
    const shown = (await get(alice.oauth, `/v1/connections/${connectionId}`)).json().data;
    expect(shown).toMatchObject({ endUser, metadata });
    const events = (await get(alice.oauth, '/v1/events')).json().data;
    expect(events[0]).toMatchObject({
      type: 'connection.created',
      data: { connectionId, endUser, metadata },
    });
    // A session without them makes a connection that says so.
    const plain = await completed(alice);
    const other = (await post(alice.oauth, '/v1/connect/exchange', { code: plain.code })).json()
      .data.connectionId as string;
    expect((await get(alice.oauth, `/v1/connections/${other}`)).json().data).toMatchObject({
      endUser: null,
      metadata: null,
    });
  });

  it('refuses an end_user or metadata it cannot keep, naming the field (422)', async () => {
    const alice = await person();
    const cases: [Record<string, unknown>, string][] = [
      [{ end_user: { email: 'a@b.example' } }, 'end_user.id'],
      [{ end_user: { id: 'x', email: 'not an email' } }, 'end_user.email'],
      [{ end_user: { id: 'x', role: 'admin' } }, 'end_user'],
      [{ metadata: ['not', 'an', 'object'] }, 'metadata'],
      [{ metadata: { big: 'x'.repeat(5000) } }, 'metadata'],
      [
        { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) },
        'metadata',
      ],
    ];
    for (const [body, path] of cases) {
      const response = await post(alice.oauth, '/v1/connect/sessions', {
        type: 'postgresql',
        name: 'Orders DB',
        redirect_url: `${PARTNER}/connected`,
        ...body,
      });
      expect(response.statusCode, JSON.stringify(body)).toBe(422);
      expect(response.headers['content-type']).toContain('application/problem+json');
      const paths = (response.json().errors as { path: string }[]).map((e) => e.path);
      expect(paths, JSON.stringify(body)).toContain(path);
    }
  });

  it('refuses forms without the page token or from another site', async () => {
    const alice = await person();
    const s = await session(alice);
    const noToken = await app.inject({
      method: 'POST',
      url: pagePath(s.token),
      payload: 'type=postgresql&f.host=127.0.0.1',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(noToken.statusCode).toBe(403);
    expect(noToken.headers['content-type']).toContain('text/html');
    const foreign = await submit(s.token, LOCAL_PG, { origin: 'https://evil.example' });
    expect(foreign.statusCode).toBe(403);
  });

  it('tests for real, seals the secret, and hands back a single-use code', async () => {
    const alice = await person();
    const done = await completed(alice);
    expect(done.target.origin + done.target.pathname).toBe(`${PARTNER}/connected`);
    expect(done.target.searchParams.get('state')).toBe('xyz');
    expect(done.code).toMatch(/^egcc_/);

    const exchanged = await post(alice.oauth, '/v1/connect/exchange', { code: done.code });
    expect(exchanged.statusCode, exchanged.body).toBe(200);
    expect(exchanged.json().data).toMatchObject({ type: 'postgresql', name: 'Orders DB' });
    const again = await post(alice.oauth, '/v1/connect/exchange', { code: done.code });
    expect(again.statusCode).toBe(404);

    const connectionId = exchanged.json().data.connectionId as string;
    // The row of this very connection: no plaintext anywhere, and the sealed value opens to it.
    const row = await store.db
      .selectFrom('connections')
      .selectAll()
      .where('id', '=', connectionId)
      .executeTakeFirstOrThrow();
    expect(row.workspace_id).toBe(alice.workspaceId);
    expect(JSON.stringify(row)).not.toContain('pw with spaces');
    expect(row.config).toMatchObject({ host: '127.0.0.1', port: 5432, user: 'postgres' });
    expect(row.config).not.toHaveProperty('password');
    expect(row.secret_fields).toEqual(['password']);
    expect(await openConnection(store.db, createKeyring(TEST_SECRET), row)).toMatchObject({
      password: 'pw with spaces & symbols/?',
    });

    const shown = await get(alice.oauth, `/v1/connections/${connectionId}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.json().data.secretFields).toEqual(['password']);
    expect(shown.body).not.toContain('pw with spaces');
    const status = await get(alice.oauth, `/v1/connect/sessions/${done.token}`);
    expect(status.json().data).toMatchObject({
      status: 'completed',
      result_connection: connectionId,
    });
  });

  it('a code is worthless to another workspace or another app', async () => {
    const alice = await person();
    const mallory = await person();
    const done = await completed(alice);
    const foreign = await post(mallory.oauth, '/v1/connect/exchange', { code: done.code });
    expect(foreign.statusCode).toBe(404);
    const peek = await get(mallory.oauth, `/v1/connect/sessions/${done.token}`);
    expect(peek.statusCode).toBe(404);
    // Another app in Alice's own workspace cannot take the code her partner app's session made.
    const otherApp = await consentedGrant(app, store.db, {
      userId: alice.userId,
      workspaceId: alice.workspaceId,
      scopes: SCOPES,
    });
    const other = `Bearer ${(await accessTokenFor(app, otherApp)).access_token}`;
    expect((await post(other, '/v1/connect/exchange', { code: done.code })).statusCode).toBe(404);
    // The right app still can: the failed attempts did not consume it.
    expect((await post(alice.oauth, '/v1/connect/exchange', { code: done.code })).statusCode).toBe(
      200,
    );
    const listed = await get(mallory.oauth, '/v1/connections');
    expect(listed.json().data).toEqual([]);
  });

  it('an expired code is refused', async () => {
    const alice = await person();
    const done = await completed(alice);
    await store.db
      .updateTable('connect_sessions')
      .set({ code_expires_at: new Date(Date.now() - 1000) })
      .where('token_hash', '=', sha256(done.token))
      .execute();
    expect((await post(alice.oauth, '/v1/connect/exchange', { code: done.code })).statusCode).toBe(
      404,
    );
  });

  it('works with an API key and a service token too', async () => {
    const alice = await person();
    const key = await post(alice.oauth, '/v1/apikeys', { name: 'backend' });
    expect(key.statusCode, key.body).toBe(201);
    const apiKey = `Bearer ${key.json().data.key as string}`;
    // A key an OAuth app minted acts for that app: its redirect_url stays on the app's origins.
    const elsewhere = await post(apiKey, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'via key',
      redirect_url: 'http://localhost:3000/back',
    });
    expect(elsewhere.statusCode).toBe(422);
    const made = await post(apiKey, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'via key',
      redirect_url: `${PARTNER}/back`,
    });
    expect(made.statusCode, made.body).toBe(201);
    const svc = await serviceTokenFor(store.db, {
      ...alice,
      scopes: ['connections:read', 'connections:write'],
    });
    // A service token belongs to the workspace, not to an app: any https (or loopback) URL, and
    // only that URL's origin may frame the page.
    const local = await post(svc, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'via service token',
      redirect_url: 'http://localhost:3000/back',
    });
    expect(local.statusCode, local.body).toBe(201);
    const page = await app.inject({ method: 'GET', url: pagePath(local.json().data.token) });
    expect(page.headers['content-security-policy']).toContain(
      'frame-ancestors http://localhost:3000;',
    );
    const done = await completed({ ...alice, oauth: svc });
    expect((await post(svc, '/v1/connect/exchange', { code: done.code })).statusCode).toBe(200);
  });

  it('reconnect updates the same connection; cancel sends access_denied', async () => {
    const alice = await person();
    const first = await completed(alice);
    const { connectionId } = (
      await post(alice.oauth, '/v1/connect/exchange', { code: first.code })
    ).json().data;
    const again = await completed(alice, { connection: connectionId });
    const second = (await post(alice.oauth, '/v1/connect/exchange', { code: again.code })).json()
      .data;
    expect(second.connectionId).toBe(connectionId);
    const count = await store.db
      .selectFrom('connections')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('workspace_id', '=', alice.workspaceId)
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);

    const s = await session(alice, { state: 'from-body' });
    const form = await app.inject({ method: 'GET', url: pagePath(s.token) });
    const cancelled = await app.inject({
      method: 'POST',
      url: `${pagePath(s.token)}/cancel`,
      payload: `_csrf=${encodeURIComponent(hidden(form.body, '_csrf'))}&state=from-body`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(cancelled.statusCode).toBe(200);
    const target = redirectOf(cancelled.body);
    expect(target.searchParams.get('error')).toBe('access_denied');
    expect(target.searchParams.get('state')).toBe('from-body');
    expect(cancelled.body).toContain('edgegate:connect');
    const status = await get(alice.oauth, `/v1/connect/sessions/${s.token}`);
    expect(status.json().data.status).toBe('cancelled');
  });

  it('replays every change from the event log by cursor', async () => {
    const alice = await person();
    const done = await completed(alice);
    const { connectionId } = (
      await post(alice.oauth, '/v1/connect/exchange', { code: done.code })
    ).json().data;
    const cache = await post(alice.oauth, `/v1/connections/${connectionId}/cache`, {});
    expect(cache.statusCode, cache.body).toBe(201);
    const edgeString = new URL(cache.json().data.connectionString as string);
    expect(edgeString.host).toBe('localhost:6432');
    expect(edgeString.searchParams.get('application_name')).toBe(cache.json().data.cache.id);
    expect(decodeURIComponent(edgeString.password)).toBe('pw with spaces & symbols/?');
    expect(
      (
        await app.inject({
          method: 'DELETE',
          url: `/v1/connections/${connectionId}`,
          headers: { authorization: alice.oauth },
        })
      ).statusCode,
    ).toBe(204);
    expect((await get(alice.oauth, `/v1/connections/${connectionId}`)).statusCode).toBe(404);

    const first = await get(alice.oauth, '/v1/events?limit=2');
    expect(first.statusCode, first.body).toBe(200);
    const page1 = first.json();
    expect(page1.data.map((e: { type: string }) => e.type)).toEqual([
      'connection.created',
      'cache.created',
    ]);
    expect(page1.hasMore).toBe(true);
    const rest = (await get(alice.oauth, `/v1/events?cursor=${page1.nextCursor}`)).json();
    expect(rest.data.map((e: { type: string }) => e.type)).toEqual(['connection.deleted']);
    expect(rest.hasMore).toBe(false);
    const none = (await get(alice.oauth, `/v1/events?cursor=${rest.nextCursor}`)).json();
    expect(none.data).toEqual([]);
    expect(none.nextCursor).toBe(rest.nextCursor);
    const mallory = await person();
    expect((await get(mallory.oauth, '/v1/events')).json().data).toEqual([]);
  });

  it('connection scopes are workspace-wide: a credential narrowed to a cache cannot use them', async () => {
    const alice = await person();
    const done = await completed(alice);
    const { connectionId } = (
      await post(alice.oauth, '/v1/connect/exchange', { code: done.code })
    ).json().data;
    const cache = await post(alice.oauth, '/v1/caches', {
      name: 'c',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: 5432,
    });
    expect(cache.statusCode, cache.body).toBe(201);
    const narrowed = await serviceTokenFor(store.db, {
      ...alice,
      scopes: ['connections:read', 'connections:write', 'caches:write'],
      cacheId: cache.json().data.id,
    });
    for (const response of [
      await get(narrowed, '/v1/connections'),
      await get(narrowed, `/v1/connections/${connectionId}`),
      await post(narrowed, '/v1/connect/sessions', {
        type: 'postgresql',
        name: 'x',
        redirect_url: `${PARTNER}/cb`,
        connection: connectionId,
      }),
      await app.inject({
        method: 'DELETE',
        url: `/v1/connections/${connectionId}`,
        headers: { authorization: narrowed },
      }),
    ]) {
      expect(response.statusCode, response.body).toBe(403);
    }
    // The stored password comes back only to a credential that may also change connections.
    const reader = await person(['connections:read', 'caches:write']);
    const onlyRead = await post(reader.oauth, `/v1/connections/${connectionId}/cache`, {});
    expect(onlyRead.statusCode).toBe(403);
  });

  it('ignores a ?type= the session does not allow, refuses opaque origins and odd hosts', async () => {
    const alice = await person();
    const single = await session(alice);
    const forced = await app.inject({ method: 'GET', url: `${pagePath(single.token)}?type=redis` });
    expect(forced.statusCode).toBe(200);
    expect(forced.body).toContain('name="f.sslmode"');
    const two = await session(alice, { type: undefined, whitelist: ['postgresql', 'mysql'] });
    for (const query of ['?type=nope', '?type=mysql&type=redis']) {
      const page = await app.inject({ method: 'GET', url: `${pagePath(two.token)}${query}` });
      expect(page.statusCode, query).toBe(200);
    }
    const opaque = await submit(single.token, LOCAL_PG, { origin: 'null' });
    expect(opaque.statusCode).toBe(403);
    for (const redirect of ['https://*/cb', 'https://a;sandbox/cb', 'https://a,b/cb']) {
      const response = await post(alice.oauth, '/v1/connect/sessions', {
        type: 'postgresql',
        name: 'x',
        redirect_url: redirect,
      });
      expect(response.statusCode, redirect).toBe(422);
    }
  });

  it("a reconnect offers only the connection's own type", async () => {
    const alice = await person();
    const done = await completed(alice);
    const { connectionId } = (
      await post(alice.oauth, '/v1/connect/exchange', { code: done.code })
    ).json().data;
    const again = await session(alice, {
      type: undefined,
      whitelist: ['mysql', 'postgresql'],
      connection: connectionId,
    });
    const page = await app.inject({ method: 'GET', url: pagePath(again.token) });
    expect(page.body).toContain('name="f.sslmode"');
    expect(page.body).not.toContain('data-type="mysql"');
  });

  it('caps the pending sessions of a workspace', async () => {
    const alice = await person();
    await store.db
      .insertInto('connect_sessions')
      .values(
        Array.from({ length: 100 }, (_, i) => ({
          id: `cs_cap${i}`,
          token_hash: `cap_${alice.workspaceId}_${i}`,
          workspace_id: alice.workspaceId,
          created_by: 'test',
          types: ['postgresql'],
          name: 'n',
          redirect_url: `${PARTNER}/cb`,
          frame_origins: [PARTNER],
          expires_at: new Date(Date.now() + 600_000),
        })),
      )
      .execute();
    const refused = await post(alice.oauth, '/v1/connect/sessions', {
      type: 'postgresql',
      name: 'x',
      redirect_url: `${PARTNER}/cb`,
    });
    expect(refused.statusCode).toBe(429);
  });

  it('quotes SQL Server values, so ";" and quotes in a password survive', () => {
    const text = originConnectionString('mssql', {
      host: 'db.example.com',
      port: 1433,
      database: 'shop',
      user: 'app',
      password: 'a;b"c=d',
      encrypt: 'require',
    });
    expect(text).toContain('Password="a;b""c=d"');
    const edge = toEdgeConnectionString({
      cacheId: 'cch_abc',
      cacheType: 'mssql',
      connectionString: text,
      edgeHost: 'localhost',
      edgePort: 1433,
    });
    expect(edge).toContain('Password="a;b""c=d"');
  });

  it('rotates keys without losing a secret, and binds each sealed value to its row', async () => {
    const alice = await person();
    await completed(alice);
    const before = await store.db.selectFrom('connections').selectAll().execute();
    const keyring = createKeyring(TEST_SECRET);
    const opened = await Promise.all(before.map((row) => openConnection(store.db, keyring, row)));
    const report = await rotateKeys(store.db, keyring);
    expect(report.resealedConnections).toBe(before.length);
    expect(report.retiredKeys).toBeGreaterThan(0);
    const after = await store.db.selectFrom('connections').selectAll().execute();
    for (const row of after) {
      const old = before.find((b) => b.id === row.id)!;
      expect(row.key_id).not.toBe(old.key_id);
      expect(await openConnection(store.db, createKeyring(TEST_SECRET), row)).toEqual(
        opened[before.indexOf(old)],
      );
    }
    // A new root secret: the old one is given as previous, rotation re-wraps, then it is not needed.
    const next = 'next-root-secret-next-root-secret-0123456789';
    const report2 = await rotateKeys(store.db, createKeyring(next, TEST_SECRET));
    expect(report2.rewrappedKeys).toBeGreaterThan(0);
    const row = (await store.db.selectFrom('connections').selectAll().execute())[0]!;
    expect((await openConnection(store.db, createKeyring(next), row)).password).toBe(
      'pw with spaces & symbols/?',
    );
    await expect(openConnection(store.db, createKeyring(TEST_SECRET), row)).rejects.toThrow();
    // Copying one row's sealed secrets onto another row does not open there.
    const [a, b] = await store.db.selectFrom('connections').selectAll().limit(2).execute();
    if (a && b) {
      await expect(
        openSecret(store.db, createKeyring(next), a.key_id, `connection:${b.id}`, a.secrets),
      ).rejects.toThrow();
    }
  });
});
