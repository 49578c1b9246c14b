// How /v1 turns a presented credential into a principal, against a real store: OAuth tokens, API
// keys (Bearer and Basic with the owner's email) and service tokens, each bound to its workspace
// with its scopes and caches; answers are cached for at most a second, revocation clears them, and
// an address that keeps failing is stopped.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../src/db/store.ts';
import {
  createCredentialResolver,
  FAILED_AUTH_PER_MINUTE,
  parseAuthorization,
  REALM,
  type Principal,
} from '../src/plugins/credential-auth.ts';
import { consolePrincipal } from '../src/routes/console/principal.ts';
import { signUp } from '../src/services/accounts.ts';
import { createApiKey } from '../src/services/api-keys.ts';
import { credentialsRevoked } from '../src/services/revocation-events.ts';
import { buildTestApp } from './helpers/app.ts';
import { openTestStore } from './helpers/stores.ts';
import { accessTokenFor, consentedGrant, serviceTokenFor } from './helpers/tokens.ts';

const SCOPES = ['caches:read', 'caches:write', 'metrics:read'];

describe('credential resolution', () => {
  let store: Store;
  let app: FastifyInstance;
  let owner: { userId: string; workspaceId: string; slug: string; email: string };
  let oauthToken: string;
  let clientId: string;
  let console_: Principal;
  let cacheIds: string[];
  let resolver: ReturnType<typeof createCredentialResolver>;

  const resolve = (header: string) => resolver.resolve(parseAuthorization(header)!);

  beforeAll(async () => {
    store = await openTestStore('postgres');
    app = await buildTestApp(store);
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'Resolver@Example.com',
      password: 'long enough pw',
    });
    owner = {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      slug: personalWorkspace.slug,
      email: user.email,
    };
    const grant = await consentedGrant(app, store.db, { ...owner, scopes: SCOPES });
    clientId = grant.clientId;
    oauthToken = (await accessTokenFor(app, grant)).access_token;
    cacheIds = [];
    for (const name of ['One', 'Two']) {
      const created = await app.inject({
        method: 'POST',
        url: '/v1/caches',
        headers: { authorization: `Bearer ${oauthToken}` },
        payload: { name, type: 'postgres', hostname: 'db.example.com', port: 5432 },
      });
      expect(created.statusCode, created.body).toBe(201);
      cacheIds.push(created.json().data.id);
    }
    ({ principal: console_ } = await consolePrincipal(store.db, user, owner.slug));
    resolver = createCredentialResolver(store.db);
  });
  afterAll(async () => {
    resolver?.dispose();
    await app?.close();
    await store?.close();
  });

  it('an OAuth access token: its app, workspace and consented scopes, on every cache', async () => {
    const principal = await resolve(`Bearer ${oauthToken}`);
    expect(principal).toMatchObject({
      kind: 'oauth',
      userId: owner.userId,
      workspaceId: owner.workspaceId,
      workspace: { id: owner.workspaceId, slug: owner.slug },
      clientId,
      expiresAt: null,
    });
    expect(principal!.credentialId).toMatch(/\S/);
    expect([...principal!.access.entries()]).toEqual(SCOPES.map((scope) => [scope, null]));
    expect(await resolve('Bearer not-a-token')).toBeUndefined();
    // Its use is recorded on the grant.
    const grant = await store.db
      .selectFrom('oauth_grants')
      .select('last_used_at')
      .where('id', '=', principal!.credentialId)
      .executeTakeFirstOrThrow();
    expect(grant.last_used_at).not.toBeNull();
  });

  it('an OAuth consent limited to some caches narrows every scope to them', async () => {
    const grant = await consentedGrant(app, store.db, { ...owner, scopes: SCOPES });
    const token = (await accessTokenFor(app, grant)).access_token;
    await store.db
      .updateTable('oauth_grants')
      .set({ cache_ids: [cacheIds[1]!] })
      .where('id', '=', grant.grantId)
      .execute();
    const principal = await resolve(`Bearer ${token}`);
    expect([...principal!.access.entries()]).toEqual(
      SCOPES.map((scope) => [scope, new Set([cacheIds[1]])]),
    );
  });

  it('an API key: by Bearer, or by Basic with its owner’s email in any case; its caches and expiry', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000);
    const { row, key } = await createApiKey(store.db, console_, {
      name: 'narrow',
      scopes: ['caches:read', 'metrics:read'],
      cacheIds: [cacheIds[0]!],
      expiresAt: expiresAt.toISOString(),
    });
    const principal = await resolve(`Bearer ${key}`);
    expect(principal).toMatchObject({
      kind: 'api_key',
      credentialId: row.id,
      userId: owner.userId,
      workspaceId: owner.workspaceId,
      workspace: { id: owner.workspaceId, name: expect.any(String), slug: owner.slug },
      clientId: null,
      expiresAt,
    });
    expect([...principal!.access.entries()]).toEqual([
      ['caches:read', new Set([cacheIds[0]])],
      ['metrics:read', new Set([cacheIds[0]])],
    ]);
    const basic = (email: string) => `Basic ${Buffer.from(`${email}:${key}`).toString('base64')}`;
    expect(await resolve(basic(' RESOLVER@example.COM '))).toMatchObject({ credentialId: row.id });
    expect(await resolve(basic('someone-else@example.com'))).toBeUndefined();
    const wide = await createApiKey(store.db, console_, {
      name: 'wide',
      scopes: ['caches:read'],
    });
    expect([...(await resolve(`Bearer ${wide.key}`))!.access.entries()]).toEqual([
      ['caches:read', null],
    ]);
    expect(await resolve('Bearer egk_unknown')).toBeUndefined();
  });

  it('a service token: its accesses merged per scope, the whole workspace winning over a cache', async () => {
    const header = await serviceTokenFor(store.db, {
      ...owner,
      scopes: ['caches:read'],
      cacheId: cacheIds[0]!,
    });
    const principal = await resolve(header);
    expect(principal).toMatchObject({
      kind: 'service_token',
      userId: null,
      workspaceId: owner.workspaceId,
      workspace: { id: owner.workspaceId, slug: owner.slug },
      clientId: null,
      expiresAt: null,
    });
    expect(principal!.credentialId).toBe(header.split(':')[0]);
    expect([...principal!.access.entries()]).toEqual([['caches:read', new Set([cacheIds[0]])]]);

    // Accesses: read on two caches, write on the workspace and on one cache.
    const id = header.split(':')[0]!;
    await store.db
      .insertInto('service_token_accesses')
      .values([
        { token_id: id, scope: 'caches:read', cache_id: cacheIds[1]! },
        { token_id: id, scope: 'caches:write', cache_id: cacheIds[0]! },
        { token_id: id, scope: 'caches:write', cache_id: null },
        { token_id: id, scope: 'metrics:read', cache_id: null },
        { token_id: id, scope: 'metrics:read', cache_id: cacheIds[1]! },
      ])
      .execute();
    credentialsRevoked();
    const merged = await resolve(header);
    expect(Object.fromEntries(merged!.access)).toEqual({
      'caches:read': new Set(cacheIds),
      'caches:write': null,
      'metrics:read': null,
    });
    const [tokenId, secret] = header.split(':');
    expect(await resolve(`${tokenId}:egst_wrong`)).toBeUndefined();
    expect(await resolve(`st_unknown:${secret}`)).toBeUndefined();
  });

  it('answers from memory for at most a second; a revocation clears that at once', async () => {
    const { row, key } = await createApiKey(store.db, console_, {
      name: 'cached',
      scopes: ['caches:read'],
    });
    const fresh = createCredentialResolver(store.db);
    try {
      const presented = parseAuthorization(`Bearer ${key}`)!;
      expect(await fresh.resolve(presented)).toMatchObject({ credentialId: row.id });
      // Deleted behind the resolver's back: the cached answer stands, for a second at most.
      await store.db.deleteFrom('api_keys').where('id', '=', row.id).execute();
      expect(await fresh.resolve(presented)).toMatchObject({ credentialId: row.id });
      await new Promise((r) => setTimeout(r, 1_050));
      expect(await fresh.resolve(presented)).toBeUndefined();

      // A revocation event empties the memory at once, failures included.
      const again = await createApiKey(store.db, console_, {
        name: 'again',
        scopes: ['caches:read'],
      });
      const next = parseAuthorization(`Bearer ${again.key}`)!;
      expect(await fresh.resolve(next)).toMatchObject({ credentialId: again.row.id });
      await store.db.deleteFrom('api_keys').where('id', '=', again.row.id).execute();
      credentialsRevoked();
      expect(await fresh.resolve(next)).toBeUndefined();
    } finally {
      fresh.dispose();
    }
    // After dispose, revocation events no longer reach it: the memory stays as it was.
    const late = await createApiKey(store.db, console_, {
      name: 'late',
      scopes: ['caches:read'],
    });
    const presented = parseAuthorization(`Bearer ${late.key}`)!;
    expect(await fresh.resolve(presented)).toMatchObject({ credentialId: late.row.id });
    await store.db.deleteFrom('api_keys').where('id', '=', late.row.id).execute();
    credentialsRevoked();
    expect(await fresh.resolve(presented)).toMatchObject({ credentialId: late.row.id });
  });

  it('records when a key or token was last used, at most once a minute', async () => {
    const { row, key } = await createApiKey(store.db, console_, {
      name: 'used',
      scopes: ['caches:read'],
    });
    const lastUsed = async () =>
      (
        await store.db
          .selectFrom('api_keys')
          .select('last_used_at')
          .where('id', '=', row.id)
          .executeTakeFirstOrThrow()
      ).last_used_at;
    expect(await lastUsed()).toBeNull();
    const before = Date.now();
    await resolve(`Bearer ${key}`);
    const first = await lastUsed();
    expect(first).not.toBeNull();
    expect(first!.getTime()).toBeGreaterThanOrEqual(before - 1);
    credentialsRevoked();
    await resolve(`Bearer ${key}`);
    expect(await lastUsed()).toEqual(first);

    const token = await serviceTokenFor(store.db, { ...owner, scopes: ['caches:read'] });
    await resolve(token);
    const used = await store.db
      .selectFrom('service_tokens')
      .select('last_used_at')
      .where('id', '=', token.split(':')[0]!)
      .executeTakeFirstOrThrow();
    expect(used.last_used_at).not.toBeNull();
  });

  it('on /v1: 401 without or with a bad credential, then 429 for the failures of an address that keeps failing', async () => {
    const address = `10.77.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    const missing = await app.inject({ url: '/v1/caches', remoteAddress: address });
    expect(missing.statusCode).toBe(401);
    expect(missing.json().type).toContain('auth.missing_credentials');
    expect(missing.headers['www-authenticate']).toBe(REALM);
    const invalid = await app.inject({
      url: '/v1/caches',
      remoteAddress: address,
      headers: { authorization: 'Bearer nope' },
    });
    expect(invalid.statusCode).toBe(401);
    expect(invalid.json().type).toContain('auth.invalid_token');
    expect(invalid.headers['www-authenticate']).toBe(`${REALM}, error="invalid_token"`);
    for (let i = 2; i < FAILED_AUTH_PER_MINUTE; i++) {
      const response = await app.inject({ url: '/v1/caches', remoteAddress: address });
      expect(response.statusCode).toBe(401);
    }
    // Past the limit that address's failures are refused with 429; a credential that verifies
    // is still served from it (a shared proxy address must not lock every client out).
    const stopped = await app.inject({ url: '/v1/caches', remoteAddress: address });
    expect(stopped.statusCode).toBe(429);
    expect(Number(stopped.headers['retry-after'])).toBeGreaterThanOrEqual(59);
    expect(Number(stopped.headers['retry-after'])).toBeLessThanOrEqual(60);
    const verified = await app.inject({
      url: '/v1/caches',
      remoteAddress: address,
      headers: { authorization: `Bearer ${oauthToken}` },
    });
    expect(verified.statusCode).toBe(200);
    const elsewhere = await app.inject({
      url: '/v1/caches',
      remoteAddress: '10.78.0.1',
      headers: { authorization: `Bearer ${oauthToken}` },
    });
    expect(elsewhere.statusCode).toBe(200);
  });
});
