// /v1/caches with OAuth bearer tokens on both stores: the happy path, validation, the origin
// guard, pagination, ETags, idempotency and isolation between workspaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { openTestStore, storeKinds } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { createStoreConfigSource } from '../../src/services/edge-config.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

const ALL = ['caches:read', 'caches:write', 'cacheRules:read', 'cacheRules:write', 'metrics:read'];

describe.each(storeKinds)('/v1/caches on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let tokenA: string;
  let tokenB: string;
  let readOnly: string;
  let n = 0;

  async function tenant(scopes = ALL) {
    n += 1;
    const { user, personalWorkspace } = await signUp(store.db, {
      email: `t${n}@example.com`,
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes,
    });
    return (await accessTokenFor(app, grant)).access_token;
  }

  const api = (token: string) => ({
    get: (url: string, headers: Record<string, string> = {}) =>
      app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}`, ...headers } }),
    post: (url: string, body: unknown, headers: Record<string, string> = {}) =>
      app.inject({
        method: 'POST',
        url,
        payload: body as object,
        headers: { authorization: `Bearer ${token}`, ...headers },
      }),
    patch: (url: string, body: unknown, headers: Record<string, string> = {}) =>
      app.inject({
        method: 'PATCH',
        url,
        payload: body as object,
        headers: { authorization: `Bearer ${token}`, ...headers },
      }),
    delete: (url: string) =>
      app.inject({ method: 'DELETE', url, headers: { authorization: `Bearer ${token}` } }),
  });

  const valid = { name: 'Orders DB', type: 'postgres', hostname: 'db.example.com', port: 5432 };

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
    tokenA = await tenant();
    tokenB = await tenant();
    readOnly = await tenant(['caches:read']);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('creates, reads, lists, changes and deletes a cache', async () => {
    const created = await api(tokenA).post('/v1/caches', valid);
    expect(created.statusCode).toBe(201);
    const cache = created.json().data;
    expect(cache).toMatchObject({
      name: 'Orders DB',
      type: 'postgres',
      hostname: 'db.example.com',
      port: 5432,
      defaultMode: 'auto',
      defaultTtlSeconds: 60,
    });
    expect(cache.id).toMatch(/^cch_[A-Za-z0-9]{22}$/);
    expect(created.headers.location).toBe(`/v1/caches/${cache.id}`);

    const read = await api(tokenA).get(`/v1/caches/${cache.id}`);
    expect(read.json().data).toEqual(cache);
    const etag = read.headers.etag as string;
    // Strong (If-Match compares strongly); a weak spelling of the same tag does not match.
    expect(etag).toMatch(/^"[^"]+"$/);

    const list = await api(tokenA).get('/v1/caches');
    expect(list.json().data.map((c: { id: string }) => c.id)).toContain(cache.id);

    const weak = await api(tokenA).patch(
      `/v1/caches/${cache.id}`,
      { defaultTtlSeconds: 120 },
      { 'if-match': `W/${etag}` },
    );
    expect(weak.statusCode).toBe(412);
    const patched = await api(tokenA).patch(
      `/v1/caches/${cache.id}`,
      { defaultTtlSeconds: 120 },
      { 'if-match': etag },
    );
    expect(patched.statusCode).toBe(200);
    expect(patched.json().data.defaultTtlSeconds).toBe(120);
    const stale = await api(tokenA).patch(
      `/v1/caches/${cache.id}`,
      { name: 'Stale' },
      { 'if-match': etag },
    );
    expect(stale.statusCode).toBe(412);
    expect(stale.headers['content-type']).toContain('application/problem+json');

    expect((await api(tokenA).delete(`/v1/caches/${cache.id}`)).statusCode).toBe(204);
    expect((await api(tokenA).get(`/v1/caches/${cache.id}`)).statusCode).toBe(404);
  });

  it('keeps sharedResults (default false), changes it, and delivers it to the edge', async () => {
    const created = await api(tokenA).post('/v1/caches', valid);
    const cache = created.json().data;
    expect(cache.sharedResults).toBe(false);
    const source = createStoreConfigSource(store);
    expect((await source.loadCache(cache.id))?.sharedResults).toBe(false);
    const patched = await api(tokenA).patch(`/v1/caches/${cache.id}`, { sharedResults: true });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().data.sharedResults).toBe(true);
    expect((await api(tokenA).get(`/v1/caches/${cache.id}`)).json().data.sharedResults).toBe(true);
    expect((await source.loadCache(cache.id))?.sharedResults).toBe(true);
    const shared = await api(tokenA).post('/v1/caches', { ...valid, sharedResults: true });
    expect(shared.json().data.sharedResults).toBe(true);
    const bad = await api(tokenA).post('/v1/caches', { ...valid, sharedResults: 'yes' });
    expect(bad.statusCode).toBe(422);
  });

  it('never lets another workspace see or touch a cache (404, not 403)', async () => {
    const cache = (await api(tokenA).post('/v1/caches', valid)).json().data;
    const etag = (await api(tokenA).get(`/v1/caches/${cache.id}`)).headers.etag;
    for (const response of [
      await api(tokenB).get(`/v1/caches/${cache.id}`),
      await api(tokenB).patch(`/v1/caches/${cache.id}`, { name: 'x' }),
      await api(tokenB).delete(`/v1/caches/${cache.id}`),
    ]) {
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({
        type: 'https://edgegate.dev/problems/cache.not_found',
        status: 404,
      });
    }
    expect(
      (await api(tokenB).get('/v1/caches')).json().data.map((c: { id: string }) => c.id),
    ).not.toContain(cache.id);
    // B's PATCH and DELETE changed nothing: A reads the cache back as it was, same version.
    const after = await api(tokenA).get(`/v1/caches/${cache.id}`);
    expect(after.statusCode).toBe(200);
    expect(after.json().data).toEqual(cache);
    expect(after.headers.etag).toBe(etag);
  });

  it('answers 403 insufficient_scope for a read-only credential writing', async () => {
    const response = await api(readOnly).post('/v1/caches', valid);
    expect(response.statusCode).toBe(403);
    expect(response.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(response.headers['www-authenticate']).toContain('scope="caches:write"');
  });

  it.each([
    [{ ...valid, type: 'oracle' }, 'type'],
    [{ ...valid, port: 0 }, 'port'],
    [{ ...valid, port: 70000 }, 'port'],
    [{ ...valid, port: '5432' }, 'port'],
    [{ ...valid, name: '' }, 'name'],
    [{ ...valid, hostname: 'not a host' }, 'hostname'],
    [{ ...valid, hostname: 'nowhere.example.com' }, 'hostname'],
    [{ ...valid, hostname: 'metadata.example.com' }, 'hostname'],
    [{ ...valid, hostname: '169.254.169.254' }, 'hostname'],
    [{ ...valid, password: 'secret' }, '(root)'],
    [{ name: 'x' }, 'type'],
  ])('refuses %j with a 422 naming %s', async (body, path) => {
    const response = await api(tokenA).post('/v1/caches', body);
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it('pages through caches with limit and cursor', async () => {
    const token = await tenant();
    for (let i = 0; i < 5; i++) await api(token).post('/v1/caches', { ...valid, name: `c${i}` });
    const first = (await api(token).get('/v1/caches?limit=2')).json();
    expect(first.data).toHaveLength(2);
    const second = (await api(token).get(`/v1/caches?limit=2&cursor=${first.nextCursor}`)).json();
    const third = (await api(token).get(`/v1/caches?limit=2&cursor=${second.nextCursor}`)).json();
    expect(third.data).toHaveLength(1);
    expect(third.nextCursor).toBeNull();
    const ids = [...first.data, ...second.data, ...third.data].map((c: { id: string }) => c.id);
    expect(new Set(ids).size).toBe(5);
    expect((await api(token).get('/v1/caches?limit=1000')).statusCode).toBe(400);
    expect((await api(token).get('/v1/caches?cursor=!!!')).statusCode).toBe(400);
  });

  it('replays the same response for a repeated Idempotency-Key and refuses a different body', async () => {
    const key = { 'idempotency-key': `k-${kind}-1` };
    const first = await api(tokenA).post('/v1/caches', { ...valid, name: 'Once' }, key);
    const again = await api(tokenA).post('/v1/caches', { ...valid, name: 'Once' }, key);
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(again.headers['idempotent-replayed']).toBe('true');
    const different = await api(tokenA).post('/v1/caches', { ...valid, name: 'Other' }, key);
    expect(different.statusCode).toBe(422);
    const names = (await api(tokenA).get('/v1/caches?limit=100'))
      .json()
      .data.map((c: { name: string }) => c.name);
    expect(names.filter((name: string) => name === 'Once')).toHaveLength(1);
  });

  it('creates once for concurrent requests with one Idempotency-Key; the others wait or replay', async () => {
    const key = { 'idempotency-key': `k-${kind}-concurrent` };
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        api(tokenA).post('/v1/caches', { ...valid, name: 'Concurrent' }, key),
      ),
    );
    for (const answer of answers) expect([201, 409]).toContain(answer.statusCode);
    const conflict = answers.find((a) => a.statusCode === 409);
    if (conflict) expect(conflict.headers['retry-after']).toBe('1');
    const names = (await api(tokenA).get('/v1/caches?limit=100'))
      .json()
      .data.map((c: { name: string }) => c.name);
    expect(names.filter((name: string) => name === 'Concurrent')).toHaveLength(1);
  });

  it('takes over a claim whose request never finished once its lease is over', async () => {
    const key = `k-${kind}-crashed`;
    // What a node that crashed mid-request leaves behind: a claim without a response.
    const credential = await store.db
      .selectFrom('idempotency_keys')
      .select('credential')
      .where('key', '=', `k-${kind}-1`)
      .executeTakeFirstOrThrow();
    await store.db
      .insertInto('idempotency_keys')
      .values({
        credential: credential.credential,
        key,
        request_hash: 'whatever was asked',
        expires_at: new Date(Date.now() + 86_400_000),
        created_at: new Date(Date.now() - 61_000),
      })
      .execute();
    const answer = await api(tokenA).post(
      '/v1/caches',
      { ...valid, name: 'After crash' },
      { 'idempotency-key': key },
    );
    expect(answer.statusCode).toBe(201);
    // A claim still inside its lease keeps answering "in progress".
    await store.db
      .updateTable('idempotency_keys')
      .set({ status: null, body: null, created_at: new Date() })
      .where('key', '=', key)
      .execute();
    const busy = await api(tokenA).post(
      '/v1/caches',
      { ...valid, name: 'After crash' },
      { 'idempotency-key': key },
    );
    expect(busy.statusCode).toBe(409);
  });

  it('applies concurrent PATCHes without If-Match one after another, none refused', async () => {
    const created = await api(tokenA).post('/v1/caches', { ...valid, name: 'Racing' });
    const id = created.json().data.id as string;
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        api(tokenA).patch(`/v1/caches/${id}`, { description: `writer ${i}` }),
      ),
    );
    expect(answers.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200, 200]);
    const final = await api(tokenA).get(`/v1/caches/${id}`);
    expect(final.headers.etag).toBe(`"${id}.7"`);
  });

  it('stores an IPv6 literal without brackets, the spelling the edge dials', async () => {
    const response = await api(tokenA).post('/v1/caches', { ...valid, hostname: '[::1]' });
    expect(response.statusCode).toBe(201);
    expect(response.json().data.hostname).toBe('::1');
  });

  it('refuses private origins when the operator denies them', async () => {
    const strict = await buildTestApp(store, { originPrivate: 'deny' });
    try {
      const response = await strict.inject({
        method: 'POST',
        url: '/v1/caches',
        payload: { ...valid, hostname: 'internal.example.com' },
        headers: { authorization: `Bearer ${tokenA}` },
      });
      expect(response.statusCode).toBe(422);
      expect(response.json().detail).toContain('10.0.0.5');
      // Documentation and IPv4-translated loopback addresses are special-purpose too.
      for (const hostname of ['192.0.2.2', '::ffff:0:7f00:1', '[::ffff:0:7f00:1]']) {
        const refused = await strict.inject({
          method: 'POST',
          url: '/v1/caches',
          payload: { ...valid, name: `refused ${hostname}`, hostname },
          headers: { authorization: `Bearer ${tokenA}` },
        });
        expect(refused.statusCode, hostname).toBe(422);
        expect(refused.headers['content-type']).toContain('application/problem+json');
        expect(refused.json().errors).toEqual([
          expect.objectContaining({ path: 'hostname', message: expect.stringContaining('deny') }),
        ]);
      }
      const names = (await store.db.selectFrom('caches').select('name').execute()).map(
        (c) => c.name,
      );
      expect(names.filter((n) => n.startsWith('refused '))).toEqual([]);
      const accepted = await strict.inject({
        method: 'POST',
        url: '/v1/caches',
        payload: { ...valid, name: 'public origin', hostname: '8.8.8.8' },
        headers: { authorization: `Bearer ${tokenA}` },
      });
      expect(accepted.statusCode).toBe(201);
    } finally {
      await strict.close();
    }
  });
});
