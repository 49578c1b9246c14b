// /v1/apikeys on both stores: the Upstash partner pattern (an OAuth token mints a key), keys as
// Bearer and as Basic email:key, never wider than their creator, narrowing to caches, deletion
// that takes effect at once, expiry, isolation between people, apps and workspaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { sha256 } from '../../src/services/crypto.ts';
import { openTestStore, storeKinds } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';
import { revokeGrants } from '../../src/services/grants.ts';

const ALL = ['caches:read', 'caches:write', 'cacheRules:read', 'cacheRules:write', 'metrics:read'];
const PROBLEMS = 'https://edgegate.dev/problems/';

describe.each(storeKinds)('/v1/apikeys on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let n = 0;
  let alice: Person;
  let bob: Person;
  let cacheA: string;
  let cacheB: string;

  interface Person {
    email: string;
    userId: string;
    workspaceId: string;
    /** `Authorization: Bearer <OAuth access token>` with ALL scopes. */
    oauth: string;
  }

  const bearer = (secret: string) => `Bearer ${secret}`;
  const basic = (email: string, key: string) =>
    `Basic ${Buffer.from(`${email}:${key}`).toString('base64')}`;

  const api = (authorization: string) => ({
    get: (url: string) => app.inject({ method: 'GET', url, headers: { authorization } }),
    post: (url: string, body: unknown) =>
      app.inject({ method: 'POST', url, payload: body as object, headers: { authorization } }),
    delete: (url: string) => app.inject({ method: 'DELETE', url, headers: { authorization } }),
  });

  async function oauthToken(person: { userId: string; workspaceId: string }, scopes = ALL) {
    const grant = await consentedGrant(app, store.db, { ...person, scopes });
    return bearer((await accessTokenFor(app, grant)).access_token);
  }

  async function person(): Promise<Person> {
    n += 1;
    const email = `k${n}@example.com`;
    const { user, personalWorkspace } = await signUp(store.db, {
      email,
      password: 'long enough pw',
    });
    const ids = { userId: user.id, workspaceId: personalWorkspace.id };
    return { email, ...ids, oauth: await oauthToken(ids) };
  }

  async function mintKey(authorization: string, body: Record<string, unknown> = {}) {
    const response = await api(authorization).post('/v1/apikeys', { name: 'Partner key', ...body });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().data as {
      id: string;
      key: string;
      prefix: string;
      scopes: string[];
      cacheIds: string[] | null;
      lastUsedAt: string | null;
    };
  }

  const idsOf = (response: { json(): { data: { id: string }[] } }) =>
    response.json().data.map((item) => item.id);

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
    alice = await person();
    bob = await person();
    const valid = { type: 'postgres', hostname: 'db.example.com', port: 5432 };
    cacheA = (await api(alice.oauth).post('/v1/caches', { ...valid, name: 'A' })).json().data.id;
    cacheB = (await api(alice.oauth).post('/v1/caches', { ...valid, name: 'B' })).json().data.id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('lets an OAuth token mint a key that works as Bearer and as Basic email:key', async () => {
    const response = await api(alice.oauth).post('/v1/apikeys', { name: 'APPNAME_API_KEY_1' });
    expect(response.statusCode).toBe(201);
    expect(response.headers['cache-control']).toBe('no-store');
    const created = response.json().data;
    expect(created).toMatchObject({
      name: 'APPNAME_API_KEY_1',
      userId: alice.userId,
      workspaceId: alice.workspaceId,
      scopes: ALL,
      cacheIds: null,
      expiresAt: null,
      lastUsedAt: null,
    });
    expect(created.id).toMatch(/^ak_[A-Za-z0-9]{22}$/);
    expect(created.key).toMatch(/^egk_[A-Za-z0-9_-]{43}$/);
    expect(created.prefix).toBe(created.key.slice(0, 12));

    for (const authorization of [
      alice.oauth,
      bearer(created.key),
      basic(alice.email, created.key),
    ]) {
      const workspace = await api(authorization).get('/v1/workspace');
      expect(workspace.statusCode).toBe(200);
      expect(workspace.json().data.id).toBe(alice.workspaceId);
      const caches = await api(authorization).get('/v1/caches');
      expect(caches.statusCode).toBe(200);
      expect(idsOf(caches)).toEqual([cacheA, cacheB].sort());
    }
  });

  it('ends the keys an app minted when the person revokes that app, and keeps their own', async () => {
    const carol = await person();
    const viaApp = await mintKey(carol.oauth);
    const own = await mintKey(carol.oauth);
    await store.db
      .updateTable('api_keys')
      .set({ created_by_client_id: null })
      .where('id', '=', own.id)
      .execute();
    expect((await api(bearer(viaApp.key)).get('/v1/workspace')).statusCode).toBe(200);
    await revokeGrants(store.db, carol.userId);
    expect((await api(bearer(viaApp.key)).get('/v1/workspace')).statusCode).toBe(401);
    expect((await api(bearer(own.key)).get('/v1/workspace')).statusCode).toBe(200);
  });

  it('never mints a key wider than the OAuth token minting it', async () => {
    const narrow = await oauthToken(alice, ['caches:read', 'caches:write', 'offline_access']);
    const defaulted = await mintKey(narrow);
    expect(defaulted.scopes).toEqual(['caches:read', 'caches:write']);

    const wider = await api(narrow).post('/v1/apikeys', {
      name: 'Too wide',
      scopes: ['caches:read', 'cacheRules:write', 'metrics:read'],
    });
    expect(wider.statusCode).toBe(403);
    expect(wider.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(wider.headers['www-authenticate']).toContain('scope="cacheRules:write metrics:read"');
    expect(wider.json().type).toBe(`${PROBLEMS}auth.insufficient_scope`);

    const readOnly = await oauthToken(alice, ['caches:read']);
    const refused = await api(readOnly).post('/v1/apikeys', { name: 'Nope' });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="caches:write"');

    const fewer = await mintKey(narrow, { scopes: ['caches:write'] });
    expect((await api(bearer(fewer.key)).get('/v1/caches')).statusCode).toBe(403);
    const fromKey = await api(bearer(fewer.key)).post('/v1/apikeys', {
      name: 'Wider than its maker',
      scopes: ['caches:read'],
    });
    expect(fromKey.statusCode).toBe(403);
  });

  it('narrows a key to one cache: 403 on another, and only that one listed', async () => {
    const narrowed = await mintKey(alice.oauth, { cacheIds: [cacheA] });
    expect(narrowed.cacheIds).toEqual([cacheA]);
    const key = bearer(narrowed.key);
    expect((await api(key).get(`/v1/caches/${cacheA}`)).statusCode).toBe(200);
    const other = await api(key).get(`/v1/caches/${cacheB}`);
    expect(other.statusCode).toBe(403);
    expect(other.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(idsOf(await api(key).get('/v1/caches'))).toEqual([cacheA]);

    // A key it mints inherits the narrowing and cannot widen it.
    expect((await mintKey(key)).cacheIds).toEqual([cacheA]);
    const widened = await api(key).post('/v1/apikeys', { name: 'x', cacheIds: [cacheB] });
    expect(widened.statusCode).toBe(422);
    expect(widened.json().errors).toEqual([
      expect.objectContaining({ path: 'cacheIds.0', message: expect.stringContaining(cacheB) }),
    ]);
  });

  it('refuses cacheIds that are not caches of this workspace with a 422 naming them', async () => {
    const bobsCache = (
      await api(bob.oauth).post('/v1/caches', {
        name: 'Bob',
        type: 'mysql',
        hostname: 'db.example.com',
        port: 3306,
      })
    ).json().data.id;
    const response = await api(alice.oauth).post('/v1/apikeys', {
      name: 'x',
      cacheIds: [cacheA, bobsCache, 'cch_nope'],
    });
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual([
      'cacheIds.1',
      'cacheIds.2',
    ]);
  });

  it.each([
    [{}, 'name'],
    [{ name: '' }, 'name'],
    [{ name: 'x'.repeat(81) }, 'name'],
    [{ name: 'x', scopes: [] }, 'scopes'],
    [{ name: 'x', scopes: ['offline_access'] }, 'scopes.0'],
    [{ name: 'x', expiresAt: '2001-01-01T00:00:00Z' }, 'expiresAt'],
    [{ name: 'x', expiresAt: 'tomorrow' }, 'expiresAt'],
    [{ name: 'x', userId: 'usr_someone' }, '(root)'],
  ])('refuses %j with a 422 naming %s', async (body, path) => {
    const response = await api(alice.oauth).post('/v1/apikeys', body);
    expect(response.statusCode).toBe(422);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it('stores only a digest of the secret', async () => {
    const { id, key } = await mintKey(alice.oauth);
    const rows = await store.db.selectFrom('api_keys').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(key);
    expect(JSON.stringify(rows)).not.toContain(key.slice(12));
    expect(rows.find((row) => row.id === id)?.token_hash).toBe(sha256(key));
  });

  it('lists only the caller’s own keys, page by page, and only those its app minted', async () => {
    const carol = await person();
    const minted = [
      await mintKey(carol.oauth),
      await mintKey(carol.oauth),
      await mintKey(carol.oauth),
    ];
    const first = (await api(carol.oauth).get('/v1/apikeys?limit=2')).json();
    expect(first.data).toHaveLength(2);
    expect(JSON.stringify(first)).not.toContain(minted[0]!.key);
    const second = (
      await api(carol.oauth).get(`/v1/apikeys?limit=2&cursor=${first.nextCursor}`)
    ).json();
    expect(second.nextCursor).toBeNull();
    expect([...first.data, ...second.data].map((k: { id: string }) => k.id)).toEqual(
      minted.map((k) => k.id).sort(),
    );

    // A key sees what its app minted; another partner's token sees none of them.
    expect(idsOf(await api(bearer(minted[0]!.key)).get('/v1/apikeys?limit=100'))).toHaveLength(3);
    const otherPartner = await oauthToken(carol);
    expect(idsOf(await api(otherPartner).get('/v1/apikeys'))).toEqual([]);
    expect((await api(otherPartner).delete(`/v1/apikeys/${minted[0]!.id}`)).statusCode).toBe(404);
    expect(idsOf(await api(bob.oauth).get('/v1/apikeys'))).toEqual([]);
  });

  it('answers 404 on DELETE for a key of another person or workspace', async () => {
    const { id, key } = await mintKey(alice.oauth);
    const response = await api(bob.oauth).delete(`/v1/apikeys/${id}`);
    expect(response.statusCode).toBe(404);
    expect(response.json().type).toBe(`${PROBLEMS}apikey.not_found`);
    expect((await api(bearer(key)).get('/v1/workspace')).statusCode).toBe(200);
  });

  it('stops a deleted key at once, even the one making the request, and audits both', async () => {
    const { id, key } = await mintKey(alice.oauth);
    expect((await api(bearer(key)).get('/v1/workspace')).statusCode).toBe(200);
    expect((await api(bearer(key)).delete(`/v1/apikeys/${id}`)).statusCode).toBe(204);
    const after = await api(bearer(key)).get('/v1/workspace');
    expect(after.statusCode).toBe(401);
    expect(after.headers['www-authenticate']).toContain('error="invalid_token"');
    expect((await api(basic(alice.email, key)).get('/v1/workspace')).statusCode).toBe(401);
    const events = await store.db
      .selectFrom('audit_events')
      .select(['action', 'actor_user_id as actor', 'data'])
      .where('target', '=', id)
      .orderBy('id')
      .execute();
    expect(events.map((e) => e.action)).toEqual(['apikey.created', 'apikey.deleted']);
    expect(events.every((e) => e.actor === alice.userId)).toBe(true);
    expect(JSON.stringify(events)).not.toContain(key);
  });

  it('refuses an expired key', async () => {
    const { id, key, ...created } = await mintKey(alice.oauth, {
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    });
    expect(created).toMatchObject({ expiresAt: expect.any(String) });
    await store.db
      .updateTable('api_keys')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', id)
      .execute();
    expect((await api(bearer(key)).get('/v1/workspace')).statusCode).toBe(401);
  });

  it('never lets a key mint a key that outlives it', async () => {
    const expiresAt = new Date(Date.now() + 3600_000).toISOString();
    const parent = await mintKey(alice.oauth, { expiresAt });
    // No expiry asked: the child expires with its parent.
    const child = await mintKey(bearer(parent.key));
    expect((child as unknown as { expiresAt: string }).expiresAt).toBe(expiresAt);
    const later = await api(bearer(parent.key)).post('/v1/apikeys', {
      name: 'Longer',
      expiresAt: new Date(Date.now() + 7200_000).toISOString(),
    });
    expect(later.statusCode).toBe(422);
    expect(later.json().errors[0].path).toBe('expiresAt');
  });

  it('lets a narrower key delete itself but not a wider key', async () => {
    const wide = await mintKey(alice.oauth);
    const readOnly = await mintKey(alice.oauth, { scopes: ['caches:read'] });
    const refused = await api(bearer(readOnly.key)).delete(`/v1/apikeys/${wide.id}`);
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('insufficient_scope');
    expect((await api(bearer(wide.key)).get('/v1/workspace')).statusCode).toBe(200);
    expect((await api(bearer(readOnly.key)).delete(`/v1/apikeys/${readOnly.id}`)).statusCode).toBe(
      204,
    );
    expect((await api(bearer(wide.key)).delete(`/v1/apikeys/${wide.id}`)).statusCode).toBe(204);
  });

  it('refuses Basic auth with another email than the key’s owner', async () => {
    const { key } = await mintKey(alice.oauth);
    expect((await api(basic(bob.email, key)).get('/v1/workspace')).statusCode).toBe(401);
    expect((await api(basic('nobody@example.com', key)).get('/v1/caches')).statusCode).toBe(401);
    expect((await api(basic(alice.email.toUpperCase(), key)).get('/v1/caches')).statusCode).toBe(
      200,
    );
  });

  it('records when a key was last used', async () => {
    const { id, key } = await mintKey(alice.oauth);
    const before = Date.now();
    await api(basic(alice.email, key)).get('/v1/caches');
    const listed = (await api(alice.oauth).get('/v1/apikeys?limit=100')).json().data;
    const lastUsedAt = listed.find((k: { id: string }) => k.id === id).lastUsedAt;
    expect(Date.parse(lastUsedAt)).toBeGreaterThanOrEqual(before - 1000);
  });

  it('refuses to mint or list API keys with a service token', async () => {
    // Service tokens are made first-hand (console or a key made there), not by a partner app.
    const firstHand = await mintKey(alice.oauth);
    await store.db
      .updateTable('api_keys')
      .set({ created_by_client_id: null })
      .where('id', '=', firstHand.id)
      .execute();
    const created = await api(bearer(firstHand.key)).post('/v1/service-tokens', {
      name: 'CI',
      accesses: [{ scope: 'caches:read' }, { scope: 'caches:write' }],
    });
    expect(created.statusCode).toBe(201);
    const serviceToken = created.json().data as { id: string; token: string };
    for (const response of [
      await api(`${serviceToken.id}:${serviceToken.token}`).post('/v1/apikeys', { name: 'x' }),
      await api(`${serviceToken.id}:${serviceToken.token}`).get('/v1/apikeys'),
    ]) {
      expect(response.statusCode).toBe(403);
      expect(response.json()).toMatchObject({
        type: `${PROBLEMS}apikey.person_required`,
        detail: expect.stringContaining('service token'),
      });
    }
  });
});
