// /v1/caches/{id}/rules on both stores: the happy path, keys derived from table names, SQL text
// and exact queries, validation, scopes and narrowing, ETags, idempotency, pagination, isolation.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { listAuditEvents } from '../../src/db/queries/audit-events.ts';
import { signUp } from '../../src/services/accounts.ts';
import { sha256 } from '../../src/services/crypto.ts';
import { openTestStore, storeKinds } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

const ALL = ['caches:read', 'caches:write', 'cacheRules:read', 'cacheRules:write'];
const PROBLEMS = 'https://edgegate.dev/problems/';

describe.each(storeKinds)('/v1/caches/{id}/rules on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let a: Tenant;
  let b: Tenant;
  let n = 0;

  interface Tenant {
    token: string;
    userId: string;
    workspaceId: string;
  }

  async function tokenFor(userId: string, workspaceId: string, scopes: string[]) {
    const grant = await consentedGrant(app, store.db, { userId, workspaceId, scopes });
    return (await accessTokenFor(app, grant)).access_token;
  }

  async function tenant(): Promise<Tenant> {
    n += 1;
    const { user, personalWorkspace } = await signUp(store.db, {
      email: `rules${n}@example.com`,
      password: 'long enough pw',
    });
    const token = await tokenFor(user.id, personalWorkspace.id, ALL);
    return { token, userId: user.id, workspaceId: personalWorkspace.id };
  }

  const api = (authorization: string) => {
    const send = (
      method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
      url: string,
      body?: unknown,
      headers: Record<string, string> = {},
    ) =>
      app.inject({
        method,
        url,
        ...(body === undefined ? {} : { payload: body as object }),
        headers: { authorization, ...headers },
      });
    return {
      get: (url: string) => send('GET', url),
      post: (url: string, body: unknown, headers?: Record<string, string>) =>
        send('POST', url, body, headers),
      patch: (url: string, body: unknown, headers?: Record<string, string>) =>
        send('PATCH', url, body, headers),
      delete: (url: string) => send('DELETE', url),
    };
  };
  const bearer = (token: string) => api(`Bearer ${token}`);

  async function newCache(owner: Tenant, type = 'postgres'): Promise<string> {
    const response = await bearer(owner.token).post('/v1/caches', {
      name: `${type} cache`,
      type,
      hostname: 'db.example.com',
      port: type === 'postgres' ? 5432 : 3306,
    });
    expect(response.statusCode).toBe(201);
    return response.json().data.id;
  }

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
    a = await tenant();
    b = await tenant();
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('a rule created without transactionPolicy gets the default the OpenAPI document and docs/edge.md name', async () => {
    const cacheId = await newCache(a);
    const created = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
      kind: 'table',
      key: 'invoices',
      mode: 'auto',
    });
    expect(created.statusCode).toBe(201);
    const read = await bearer(a.token).get(`/v1/caches/${cacheId}/rules/${created.json().data.id}`);
    const stored = read.json().data.transactionPolicy;
    expect(stored).toBe('never');

    const openapi = (await app.inject({ url: '/v1/openapi.json' })).json();
    const body =
      openapi.paths['/v1/caches/{id}/rules'].post.requestBody.content['application/json'].schema;
    expect(body.properties.transactionPolicy.default).toBe(stored);

    const guide = readFileSync(new URL('../../../../docs/edge.md', import.meta.url), 'utf8');
    const line = guide.split('\n').find((text) => text.includes('`transactionPolicy`'));
    expect(line).toContain(`\`${stored}\` (a rule's default)`);
  });

  it('creates, reads, lists, changes and deletes a rule, recording each in the audit log', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    const created = await bearer(a.token).post(rules, {
      kind: 'table',
      key: 'orders',
      mode: 'manual',
      ttlSeconds: 30,
    });
    expect(created.statusCode).toBe(201);
    const rule = created.json().data;
    expect(rule).toMatchObject({
      cacheId,
      kind: 'table',
      key: 'orders',
      sql: null,
      mode: 'manual',
      ttlSeconds: 30,
      transactionPolicy: 'never',
    });
    expect(rule.id).toMatch(/^rul_[A-Za-z0-9]{22}$/);
    expect(created.headers.location).toBe(`${rules}/${rule.id}`);

    const read = await bearer(a.token).get(`${rules}/${rule.id}`);
    expect(read.statusCode).toBe(200);
    expect(read.json().data).toEqual(rule);
    const etag = read.headers.etag as string;
    // Strong (If-Match compares strongly); a weak spelling of the same tag does not match.
    expect(etag).toMatch(/^"[^"]+"$/);

    const list = await bearer(a.token).get(rules);
    expect(list.json()).toEqual({ data: [rule], nextCursor: null });

    const patched = await bearer(a.token).patch(
      `${rules}/${rule.id}`,
      { mode: 'auto', transactionPolicy: 'untilWrite' },
      { 'if-match': etag },
    );
    expect(patched.statusCode).toBe(200);
    expect(patched.json().data).toMatchObject({
      mode: 'auto',
      ttlSeconds: 30,
      transactionPolicy: 'untilWrite',
    });
    expect(patched.headers.etag).not.toBe(etag);

    expect((await bearer(a.token).delete(`${rules}/${rule.id}`)).statusCode).toBe(204);
    const gone = await bearer(a.token).get(`${rules}/${rule.id}`);
    expect(gone.statusCode).toBe(404);
    expect(gone.json().type).toBe(`${PROBLEMS}rule.not_found`);

    const actions = (await listAuditEvents(store.db, a.workspaceId, 50))
      .filter((event) => event.target === rule.id)
      .map((event) => event.action);
    expect(actions.sort()).toEqual(['rule.created', 'rule.deleted', 'rule.updated']);
  });

  it('refuses a PATCH whose If-Match names an older version (412)', async () => {
    const cacheId = await newCache(a);
    const created = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
      kind: 'table',
      key: 'items',
      mode: 'off',
    });
    const url = `/v1/caches/${cacheId}/rules/${created.json().data.id}`;
    const etag = created.headers.etag as string;
    expect(
      (await bearer(a.token).patch(url, { mode: 'auto' }, { 'if-match': etag })).statusCode,
    ).toBe(200);
    const stale = await bearer(a.token).patch(url, { mode: 'off' }, { 'if-match': etag });
    expect(stale.statusCode).toBe(412);
    expect(stale.json().type).toBe(`${PROBLEMS}precondition_failed`);
    expect((await bearer(a.token).get(url)).json().data.mode).toBe('auto');
  });

  it('stores table names in one spelling: unquoted parts lower-cased, quotes only where needed', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    const keyOf = async (key: string) => {
      const response = await bearer(a.token).post(rules, { kind: 'table', key, mode: 'off' });
      expect(response.statusCode, key).toBe(201);
      return response.json().data.key;
    };
    expect(await keyOf('Public.Orders')).toBe('public.orders');
    expect(await keyOf('"Orders"')).toBe('"Orders"');
    expect(await keyOf('  line_items$2 ')).toBe('line_items$2');
    expect(await keyOf('"Sales"."Q1 ""final"""')).toBe('"Sales"."Q1 ""final"""');
    const duplicate = await bearer(a.token).post(rules, {
      kind: 'table',
      key: '"public"."orders"',
      mode: 'auto',
    });
    expect(duplicate.statusCode).toBe(409);
    expect(duplicate.json().type).toBe(`${PROBLEMS}rule.duplicate`);
  });

  it.each([
    'a.b.c',
    'order items',
    '1orders',
    'orders;drop',
    '"unterminated',
    '""',
    'public.',
    '.orders',
    '"a"b',
    'x'.repeat(129),
  ])('refuses the table name %j with a 422 naming key', async (key) => {
    const cacheId = await newCache(a);
    const response = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
      kind: 'table',
      key,
      mode: 'off',
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().type).toBe(`${PROBLEMS}rule.invalid_table_name`);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual(['key']);
  });

  it('stores the fingerprint of template SQL, so queries differing only in constants share one rule', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    const first = await bearer(a.token).post(rules, {
      kind: 'template',
      key: 'select * from t where id = 1',
      mode: 'manual',
      ttlSeconds: 5,
    });
    expect(first.statusCode).toBe(201);
    const rule = first.json().data;
    expect(rule.key).toMatch(/^[0-9a-f]{16}$/);
    expect(rule.sql).toBe('select * from t where id = $1');

    for (const key of ['SELECT *\n  FROM t WHERE id = $1', rule.key.toUpperCase()]) {
      const again = await bearer(a.token).post(rules, { kind: 'template', key, mode: 'off' });
      expect(again.statusCode, key).toBe(409);
      expect(again.json().type).toBe(`${PROBLEMS}rule.duplicate`);
      expect(again.json().detail).toContain(rule.id);
    }

    const byFingerprint = await bearer(a.token).post(rules, {
      kind: 'template',
      key: 'ABCDEF0123456789',
      mode: 'off',
    });
    expect(byFingerprint.statusCode).toBe(201);
    expect(byFingerprint.json().data).toMatchObject({ key: 'abcdef0123456789', sql: null });
  });

  it('refuses template and query rules for writes: only reads are cached', async () => {
    const cacheId = await newCache(a);
    for (const kind of ['template', 'query']) {
      const response = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
        kind,
        key: 'DELETE FROM orders WHERE id = 1',
        mode: 'manual',
        ttlSeconds: 60,
      });
      expect(response.statusCode).toBe(422);
      expect(response.json().type).toBe(`${PROBLEMS}rule.not_a_read`);
    }
  });

  it('refuses template SQL that does not parse', async () => {
    const cacheId = await newCache(a);
    const response = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
      kind: 'template',
      key: 'selec * form t',
      mode: 'off',
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().type).toBe(`${PROBLEMS}rule.invalid_sql`);
    expect(response.json().errors[0].path).toBe('key');
  });

  it('takes only fingerprints as template keys on MySQL caches, with a clear 422 for SQL text', async () => {
    const cacheId = await newCache(a, 'mysql');
    const rules = `/v1/caches/${cacheId}/rules`;
    const text = await bearer(a.token).post(rules, {
      kind: 'template',
      key: 'select * from t where id = 1',
      mode: 'off',
    });
    expect(text.statusCode).toBe(422);
    expect(text.json().type).toBe(`${PROBLEMS}rule.template_sql_unsupported`);
    expect(text.json().detail).toContain('need a Postgres cache until the MySQL edge lands');
    const fingerprint = await bearer(a.token).post(rules, {
      kind: 'template',
      key: '0123456789abcdef',
      mode: 'off',
    });
    expect(fingerprint.statusCode).toBe(201);
  });

  it('keys a query rule by the SHA-256 of the exact text, on any cache type', async () => {
    for (const type of ['postgres', 'mariadb']) {
      const cacheId = await newCache(a, type);
      const rules = `/v1/caches/${cacheId}/rules`;
      const sql = 'SELECT name FROM users WHERE id = 7';
      const created = await bearer(a.token).post(rules, { kind: 'query', key: sql, mode: 'off' });
      expect(created.statusCode, type).toBe(201);
      expect(created.json().data).toMatchObject({
        key: createHash('sha256').update(sql).digest('hex'),
        sql,
      });
      const spaced = await bearer(a.token).post(rules, {
        kind: 'query',
        key: `${sql} `,
        mode: 'off',
      });
      expect(spaced.statusCode, type).toBe(201);
      expect(spaced.json().data.sql).toBe(`${sql} `);
    }
  });

  it('requires ttlSeconds for manual mode and allows none for auto and off', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    for (const body of [
      { kind: 'table', key: 'a', mode: 'manual' },
      { kind: 'table', key: 'a', mode: 'manual', ttlSeconds: null },
    ]) {
      const response = await bearer(a.token).post(rules, body);
      expect(response.statusCode).toBe(422);
      expect(response.json().errors.map((e: { path: string }) => e.path)).toContain('ttlSeconds');
    }
    const auto = await bearer(a.token).post(rules, { kind: 'table', key: 'a', mode: 'auto' });
    expect(auto.json().data.ttlSeconds).toBeNull();
    const url = `${rules}/${auto.json().data.id}`;

    const manualWithout = await bearer(a.token).patch(url, { mode: 'manual' });
    expect(manualWithout.statusCode).toBe(422);
    expect(manualWithout.json().errors[0].path).toBe('ttlSeconds');
    const manual = await bearer(a.token).patch(url, { mode: 'manual', ttlSeconds: 10 });
    expect(manual.statusCode).toBe(200);
    const clearTtl = await bearer(a.token).patch(url, { ttlSeconds: null });
    expect(clearTtl.statusCode).toBe(422);
    const off = await bearer(a.token).patch(url, { mode: 'off', ttlSeconds: null });
    expect(off.json().data).toMatchObject({ mode: 'off', ttlSeconds: null });
  });

  it.each([
    [{ kind: 'view', key: 'a', mode: 'off' }, 'kind'],
    [{ kind: 'table', key: 'a', mode: 'always' }, 'mode'],
    [{ kind: 'table', key: '', mode: 'off' }, 'key'],
    [{ kind: 'table', key: '   ', mode: 'off' }, 'key'],
    [{ kind: 'table', key: 42, mode: 'off' }, 'key'],
    [{ kind: 'query', key: 'x'.repeat(10_001), mode: 'off' }, 'key'],
    [{ kind: 'table', key: 'a', mode: 'manual', ttlSeconds: 0 }, 'ttlSeconds'],
    [{ kind: 'table', key: 'a', mode: 'manual', ttlSeconds: 1.5 }, 'ttlSeconds'],
    [{ kind: 'table', key: 'a', mode: 'off', transactionPolicy: 'always' }, 'transactionPolicy'],
    [{ kind: 'table', key: 'a', mode: 'off', cacheId: 'cch_x' }, '(root)'],
    [{ key: 'a', mode: 'off' }, 'kind'],
  ])('refuses %j with a 422 naming %s', async (body, path) => {
    const cacheId = await newCache(a);
    const response = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, body);
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it.each([[{}], [{ kind: 'query' }], [{ key: 'b' }], [{ mode: 'sometimes' }]])(
    'refuses the change %j with a 422',
    async (body) => {
      const cacheId = await newCache(a);
      const created = await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
        kind: 'table',
        key: 'a',
        mode: 'off',
      });
      const url = `/v1/caches/${cacheId}/rules/${created.json().data.id}`;
      expect((await bearer(a.token).patch(url, body)).statusCode).toBe(422);
    },
  );

  it('answers 403 insufficient_scope without cacheRules:write, and without cacheRules:read', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    const created = (
      await bearer(a.token).post(rules, { kind: 'table', key: 't', mode: 'off' })
    ).json().data;
    const readOnly = await tokenFor(a.userId, a.workspaceId, ['caches:read', 'cacheRules:read']);
    expect((await bearer(readOnly).get(rules)).statusCode).toBe(200);
    for (const response of [
      await bearer(readOnly).post(rules, { kind: 'table', key: 'u', mode: 'off' }),
      await bearer(readOnly).patch(`${rules}/${created.id}`, { mode: 'auto' }),
      await bearer(readOnly).delete(`${rules}/${created.id}`),
    ]) {
      expect(response.statusCode).toBe(403);
      expect(response.json().type).toBe(`${PROBLEMS}auth.insufficient_scope`);
      expect(response.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect(response.headers['www-authenticate']).toContain('scope="cacheRules:write"');
    }
    const cachesOnly = await tokenFor(a.userId, a.workspaceId, ['caches:read', 'caches:write']);
    const listing = await bearer(cachesOnly).get(rules);
    expect(listing.statusCode).toBe(403);
    expect(listing.headers['www-authenticate']).toContain('scope="cacheRules:read"');
  });

  it('lets a service token narrowed to one cache write rules there and nowhere else', async () => {
    const allowed = await newCache(a);
    const other = await newCache(a);
    const id = `st_${kind}narrow`;
    const secret = `egst_${kind}-narrow-secret`;
    await store.db
      .insertInto('service_tokens')
      .values({ id, workspace_id: a.workspaceId, name: 'CI', token_hash: sha256(secret) })
      .execute();
    await store.db
      .insertInto('service_token_accesses')
      .values([
        { token_id: id, scope: 'cacheRules:write', cache_id: allowed },
        { token_id: id, scope: 'cacheRules:read', cache_id: null },
      ])
      .execute();
    const narrowed = api(`${id}:${secret}`);
    const body = { kind: 'table', key: 'orders', mode: 'off' };
    expect((await narrowed.post(`/v1/caches/${allowed}/rules`, body)).statusCode).toBe(201);
    const refused = await narrowed.post(`/v1/caches/${other}/rules`, body);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().detail).toContain('only for other caches');
    expect((await narrowed.get(`/v1/caches/${other}/rules`)).statusCode).toBe(200);
  });

  it("never lets another workspace see or touch a cache's rules (404, not 403)", async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    const rule = (
      await bearer(a.token).post(rules, { kind: 'table', key: 't', mode: 'off' })
    ).json().data;
    for (const response of [
      await bearer(b.token).get(rules),
      await bearer(b.token).post(rules, { kind: 'table', key: 'x', mode: 'off' }),
      await bearer(b.token).get(`${rules}/${rule.id}`),
      await bearer(b.token).patch(`${rules}/${rule.id}`, { mode: 'auto' }),
      await bearer(b.token).delete(`${rules}/${rule.id}`),
    ]) {
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ type: `${PROBLEMS}cache.not_found`, status: 404 });
    }
    const ownCache = await newCache(b);
    const crossed = await bearer(b.token).get(`/v1/caches/${ownCache}/rules/${rule.id}`);
    expect(crossed.statusCode).toBe(404);
    expect(crossed.json().type).toBe(`${PROBLEMS}rule.not_found`);
    expect((await bearer(a.token).get(`${rules}/${rule.id}`)).json().data.mode).toBe('off');
  });

  it('replays the same response for a repeated Idempotency-Key and refuses a different body', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    const key = { 'idempotency-key': `rule-${kind}-1` };
    const body = { kind: 'table', key: 'once', mode: 'off' };
    const first = await bearer(a.token).post(rules, body, key);
    const again = await bearer(a.token).post(rules, body, key);
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers.location).toBe(first.headers.location);
    const different = await bearer(a.token).post(rules, { ...body, key: 'twice' }, key);
    expect(different.statusCode).toBe(422);
    expect((await bearer(a.token).get(rules)).json().data).toHaveLength(1);
  });

  it('pages through rules with limit and cursor', async () => {
    const cacheId = await newCache(a);
    const rules = `/v1/caches/${cacheId}/rules`;
    for (let i = 0; i < 5; i++) {
      await bearer(a.token).post(rules, { kind: 'table', key: `t${i}`, mode: 'off' });
    }
    const first = (await bearer(a.token).get(`${rules}?limit=2`)).json();
    expect(first.data).toHaveLength(2);
    const second = (
      await bearer(a.token).get(`${rules}?limit=2&cursor=${first.nextCursor}`)
    ).json();
    const third = (
      await bearer(a.token).get(`${rules}?limit=2&cursor=${second.nextCursor}`)
    ).json();
    expect(third.data).toHaveLength(1);
    expect(third.nextCursor).toBeNull();
    const keys = [...first.data, ...second.data, ...third.data].map((r: { key: string }) => r.key);
    expect(keys.sort()).toEqual(['t0', 't1', 't2', 't3', 't4']);
    expect((await bearer(a.token).get(`${rules}?limit=0`)).statusCode).toBe(400);
    expect((await bearer(a.token).get(`${rules}?cursor=!!!`)).statusCode).toBe(400);
  });

  it('deletes the rules of a deleted cache with it', async () => {
    const cacheId = await newCache(a);
    await bearer(a.token).post(`/v1/caches/${cacheId}/rules`, {
      kind: 'table',
      key: 't',
      mode: 'off',
    });
    expect((await bearer(a.token).delete(`/v1/caches/${cacheId}`)).statusCode).toBe(204);
    const left = await store.db
      .selectFrom('cache_rules')
      .select('id')
      .where('cache_id', '=', cacheId)
      .execute();
    expect(left).toEqual([]);
  });
});
