// /v1/service-tokens on both stores: the PlanetScale pattern (workspace tokens with accesses per
// workspace or per cache, sent as `Authorization: <id>:<token>`), admins only, never wider than
// the admin creating them, deletion that takes effect at once, expiry, workspace isolation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { insertMembership } from '../../src/db/queries/workspaces.ts';
import { openTestStore, storeKinds } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';
import { newId, newSecret, sha256 } from '../../src/services/crypto.ts';

const ALL = ['caches:read', 'caches:write', 'cacheRules:read', 'cacheRules:write', 'metrics:read'];
const PROBLEMS = 'https://edgegate.dev/problems/';

interface Created {
  id: string;
  token: string;
  accesses: { scope: string; cacheId: string | null }[];
  lastUsedAt: string | null;
}

describe.each(storeKinds)('/v1/service-tokens on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let n = 0;
  let workspaceId: string;
  let adminId: string;
  let admin: string;
  let member: string;
  let outsider: string;
  let cacheA: string;
  let cacheB: string;

  const api = (authorization: string) => ({
    get: (url: string) => app.inject({ method: 'GET', url, headers: { authorization } }),
    post: (url: string, body: unknown) =>
      app.inject({ method: 'POST', url, payload: body as object, headers: { authorization } }),
    delete: (url: string) => app.inject({ method: 'DELETE', url, headers: { authorization } }),
  });

  async function oauthToken(userId: string, workspace: string, scopes = ALL) {
    const grant = await consentedGrant(app, store.db, { userId, workspaceId: workspace, scopes });
    return `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
  }

  /** A key the person made first-hand (as in the console): no partner app behind it. */
  async function firstPartyKey(userId: string, workspace: string, scopes = ALL) {
    const key = newSecret('egk_');
    await store.db
      .insertInto('api_keys')
      .values({
        id: newId('ak'),
        workspace_id: workspace,
        user_id: userId,
        name: 'console key',
        prefix: key.slice(0, 12),
        token_hash: sha256(key),
        scopes,
      })
      .execute();
    return `Bearer ${key}`;
  }

  async function signUpPerson() {
    n += 1;
    return signUp(store.db, { email: `s${n}@example.com`, password: 'long enough pw' });
  }

  async function createToken(authorization: string, accesses: unknown[]): Promise<Created> {
    const response = await api(authorization).post('/v1/service-tokens', { name: 'CI', accesses });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().data;
  }

  const header = (created: Created) => `${created.id}:${created.token}`;
  const idsOf = (response: { json(): { data: { id: string }[] } }) =>
    response.json().data.map((item) => item.id);

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
    const owner = await signUpPerson();
    adminId = owner.user.id;
    workspaceId = owner.personalWorkspace.id;
    admin = await firstPartyKey(adminId, workspaceId);
    const colleague = await signUpPerson();
    await insertMembership(store.db, workspaceId, colleague.user.id, 'member');
    member = await firstPartyKey(colleague.user.id, workspaceId);
    const stranger = await signUpPerson();
    outsider = await firstPartyKey(stranger.user.id, stranger.personalWorkspace.id);
    const valid = { type: 'postgres', hostname: 'db.example.com', port: 5432 };
    cacheA = (await api(admin).post('/v1/caches', { ...valid, name: 'A' })).json().data.id;
    cacheB = (await api(admin).post('/v1/caches', { ...valid, name: 'B' })).json().data.id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('refuses every service-token operation to a partner app, even for an admin', async () => {
    const partner = await oauthToken(adminId, workspaceId);
    const existing = await createToken(admin, [{ scope: 'caches:read' }]);
    for (const response of [
      await api(partner).post('/v1/service-tokens', {
        name: 'x',
        accesses: [{ scope: 'caches:read' }],
      }),
      await api(partner).get('/v1/service-tokens'),
      await api(partner).delete(`/v1/service-tokens/${existing.id}`),
    ]) {
      expect(response.statusCode).toBe(403);
      expect(response.json().type).toContain('service_token.first_party_required');
    }
  });

  it('lets an admin create a workspace-wide token that works as <id>:<token>', async () => {
    const response = await api(admin).post('/v1/service-tokens', {
      name: 'Deploys',
      accesses: [{ scope: 'caches:read' }],
    });
    expect(response.statusCode).toBe(201);
    expect(response.headers['cache-control']).toBe('no-store');
    const created = response.json().data;
    expect(created).toMatchObject({
      name: 'Deploys',
      workspaceId,
      accesses: [{ scope: 'caches:read', cacheId: null }],
      expiresAt: null,
      lastUsedAt: null,
    });
    expect(created.id).toMatch(/^st_[A-Za-z0-9]{22}$/);
    expect(created.token).toMatch(/^egst_[A-Za-z0-9_-]{43}$/);

    const workspace = await api(header(created)).get('/v1/workspace');
    expect(workspace.statusCode).toBe(200);
    expect(workspace.json().data.id).toBe(workspaceId);
    const caches = await api(header(created)).get('/v1/caches');
    expect(caches.statusCode).toBe(200);
    expect(idsOf(caches)).toEqual([cacheA, cacheB].sort());
    const write = await api(header(created)).post('/v1/caches', {
      name: 'C',
      type: 'postgres',
      hostname: 'db.example.com',
      port: 5432,
    });
    expect(write.statusCode).toBe(403);
  });

  it('limits a token with caches:read on one cache to that cache', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read', cacheId: cacheA }]);
    expect(created.accesses).toEqual([{ scope: 'caches:read', cacheId: cacheA }]);
    expect((await api(header(created)).get(`/v1/caches/${cacheA}`)).statusCode).toBe(200);
    const other = await api(header(created)).get(`/v1/caches/${cacheB}`);
    expect(other.statusCode).toBe(403);
    expect(other.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(idsOf(await api(header(created)).get('/v1/caches'))).toEqual([cacheA]);
  });

  it('lets only admins manage service tokens: a member gets 403', async () => {
    for (const response of [
      await api(member).post('/v1/service-tokens', {
        name: 'x',
        accesses: [{ scope: 'caches:read' }],
      }),
      await api(member).get('/v1/service-tokens'),
      await api(member).delete('/v1/service-tokens/st_whatever'),
    ]) {
      expect(response.statusCode).toBe(403);
      expect(response.json().type).toBe(`${PROBLEMS}workspace.admin_required`);
    }
    // The member's own credentials still work for what members do.
    expect((await api(member).get('/v1/caches')).statusCode).toBe(200);
  });

  it('does not let a service token manage service tokens', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read' }, { scope: 'caches:write' }]);
    const response = await api(header(created)).post('/v1/service-tokens', {
      name: 'child',
      accesses: [{ scope: 'caches:read' }],
    });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({
      type: `${PROBLEMS}service_token.person_required`,
      detail: expect.stringContaining('service token'),
    });
    expect((await api(header(created)).get('/v1/service-tokens')).statusCode).toBe(403);
  });

  it('never creates a token wider than the admin’s own credential', async () => {
    const readOnly = await firstPartyKey(adminId, workspaceId, ['caches:read']);
    const refused = await api(readOnly).post('/v1/service-tokens', {
      name: 'x',
      accesses: [{ scope: 'caches:read' }, { scope: 'cacheRules:write', cacheId: cacheA }],
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="cacheRules:write"');

    // An admin's API key narrowed to cache A grants only on cache A.
    const key = (
      await api(admin).post('/v1/apikeys', { name: 'narrow', cacheIds: [cacheA] })
    ).json().data.key;
    const narrowKey = `Bearer ${key}`;
    for (const accesses of [
      [{ scope: 'caches:read' }],
      [{ scope: 'caches:read', cacheId: cacheB }],
    ]) {
      const response = await api(narrowKey).post('/v1/service-tokens', { name: 'x', accesses });
      expect(response.statusCode).toBe(403);
      expect(response.json().type).toBe(`${PROBLEMS}auth.insufficient_scope`);
    }
    const allowed = await createToken(narrowKey, [{ scope: 'caches:read', cacheId: cacheA }]);
    expect(idsOf(await api(header(allowed)).get('/v1/caches'))).toEqual([cacheA]);
  });

  it('refuses a cacheId that is not a cache of this workspace with a 422 naming it', async () => {
    const strangersCache = (
      await api(outsider).post('/v1/caches', {
        name: 'Theirs',
        type: 'mysql',
        hostname: 'db.example.com',
        port: 3306,
      })
    ).json().data.id;
    const response = await api(admin).post('/v1/service-tokens', {
      name: 'x',
      accesses: [
        { scope: 'caches:read', cacheId: cacheA },
        { scope: 'caches:read', cacheId: strangersCache },
        { scope: 'metrics:read', cacheId: 'cch_unknown' },
      ],
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toEqual([
      { path: 'accesses.1.cacheId', message: expect.stringContaining(strangersCache) },
      { path: 'accesses.2.cacheId', message: expect.stringContaining('cch_unknown') },
    ]);
  });

  it.each([
    [{ accesses: [{ scope: 'caches:read' }] }, 'name'],
    [{ name: 'x', accesses: [] }, 'accesses'],
    [{ name: 'x', accesses: [{ scope: 'caches:admin' }] }, 'accesses.0.scope'],
    [{ name: 'x', accesses: [{ scope: 'caches:read', extra: 1 }] }, 'accesses.0'],
    [
      { name: 'x', accesses: [{ scope: 'caches:read' }], expiresAt: '2000-01-01T00:00:00Z' },
      'expiresAt',
    ],
  ])('refuses %j with a 422 naming %s', async (body, path) => {
    const response = await api(admin).post('/v1/service-tokens', body);
    expect(response.statusCode).toBe(422);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it('stores only a digest of the secret', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read' }]);
    const rows = await store.db.selectFrom('service_tokens').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(created.token);
    expect(JSON.stringify(rows)).not.toContain(created.token.slice(5));
    expect(rows.find((row) => row.id === created.id)?.token_hash).toBe(sha256(created.token));
  });

  it('lists the workspace’s tokens with their accesses, page by page, without secrets', async () => {
    const created = await createToken(admin, [
      { scope: 'metrics:read', cacheId: cacheB },
      { scope: 'caches:read' },
    ]);
    const all: { id: string; accesses: unknown }[] = [];
    let cursor: string | null = null;
    do {
      const query = cursor ? `limit=2&cursor=${cursor}` : 'limit=2';
      const page: { data: typeof all; nextCursor: string | null } = (
        await api(admin).get(`/v1/service-tokens?${query}`)
      ).json();
      expect(page.data.length).toBeLessThanOrEqual(2);
      expect(JSON.stringify(page)).not.toContain('egst_');
      all.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor);
    expect(all.find((t) => t.id === created.id)?.accesses).toEqual([
      { scope: 'caches:read', cacheId: null },
      { scope: 'metrics:read', cacheId: cacheB },
    ]);
    expect(idsOf(await api(outsider).get('/v1/service-tokens'))).toEqual([]);
  });

  it('stops a deleted token at once and audits its life', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read' }]);
    expect((await api(header(created)).get('/v1/caches')).statusCode).toBe(200);
    expect((await api(admin).delete(`/v1/service-tokens/${created.id}`)).statusCode).toBe(204);
    const after = await api(header(created)).get('/v1/caches');
    expect(after.statusCode).toBe(401);
    expect(after.headers['www-authenticate']).toContain('error="invalid_token"');
    const events = await store.db
      .selectFrom('audit_events')
      .select(['action', 'actor_user_id as actor'])
      .where('target', '=', created.id)
      .orderBy('id')
      .execute();
    expect(events).toEqual([
      { action: 'service_token.created', actor: adminId },
      { action: 'service_token.deleted', actor: adminId },
    ]);
  });

  it('answers 404 on DELETE for another workspace’s token', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read' }]);
    const response = await api(outsider).delete(`/v1/service-tokens/${created.id}`);
    expect(response.statusCode).toBe(404);
    expect(response.json().type).toBe(`${PROBLEMS}service_token.not_found`);
    expect((await api(header(created)).get('/v1/workspace')).statusCode).toBe(200);
  });

  it('refuses an expired token and a wrong secret', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read' }]);
    expect((await api(`${created.id}:egst_${'A'.repeat(43)}`).get('/v1/caches')).statusCode).toBe(
      401,
    );
    await store.db
      .updateTable('service_tokens')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', created.id)
      .execute();
    expect((await api(header(created)).get('/v1/caches')).statusCode).toBe(401);
  });

  it('records when a token was last used', async () => {
    const created = await createToken(admin, [{ scope: 'caches:read' }]);
    const before = Date.now();
    await api(header(created)).get('/v1/workspace');
    const row = await store.db
      .selectFrom('service_tokens')
      .select('last_used_at')
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(row.last_used_at!.getTime()).toBeGreaterThanOrEqual(before - 1000);
  });
});
