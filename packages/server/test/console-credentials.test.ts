// The credentials page of the console: API keys and service tokens created there are shown once,
// work against the API, and stop working when deleted; service tokens are for admins only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { ConsoleClient } from './helpers/console-client.ts';

function secretOf(html: string): string | undefined {
  return /data-testid="secret">([^<]+)</.exec(html)?.[1];
}

describe('console credentials page', () => {
  let store: Store;
  let app: FastifyInstance;
  let n = 0;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const api = (authorization: string, url: string) =>
    app.inject({ method: 'GET', url, headers: { authorization } });

  async function user() {
    n += 1;
    const client = new ConsoleClient(app);
    await client.signUp(`cred${n}@example.com`);
    return client;
  }

  /** An admin with a workspace holding one cache, a member of it and an outsider. */
  async function team() {
    const admin = await user();
    const created = await admin.post('/workspaces', { name: `Credentials ${n}` });
    const base = created.headers.location as string;
    const cache = await admin.post(`${base}/caches`, {
      name: 'Orders',
      type: 'postgres',
      hostname: 'db.example.com',
      port: '5432',
      defaultMode: 'auto',
      defaultTtlSeconds: '60',
    });
    expect(cache.statusCode, cache.body).toBe(303);
    const cacheId = (cache.headers.location as string).split('/').at(-1) as string;
    await admin.post(
      `${base}/invitations`,
      { role: 'member', expiresInHours: '1' },
      { from: base },
    );
    const link = /data-testid="secret">http:\/\/localhost:8080(\/invite\/[^<]+)</.exec(
      (await admin.get(base)).body,
    )?.[1];
    const member = await user();
    expect((await member.post(link as string, {})).statusCode).toBe(303);
    const outsider = await user();
    return { admin, member, outsider, base, page: `${base}/settings/credentials`, cacheId };
  }

  it('an API key is shown once, works as a Bearer token, and stops working when deleted', async () => {
    const { member, base, page } = await team();
    expect((await member.get(base)).body).toContain(`href="${page}"`);
    const created = await member.post(
      `${page}/apikeys`,
      { keyName: 'deploy script' },
      { from: page },
    );
    expect(created.statusCode).toBe(303);
    expect(created.headers.location).toBe(page);

    const shown = await member.get(page);
    const key = secretOf(shown.body) as string;
    expect(key).toMatch(/^egk_/);
    expect(shown.body).toContain('deploy script');
    expect(shown.body).toContain(`<code>${key.slice(0, 12)}…</code>`);
    expect(secretOf((await member.get(page)).body)).toBeUndefined();

    const workspace = await api(`Bearer ${key}`, '/v1/workspace');
    expect(workspace.statusCode).toBe(200);
    expect(workspace.json().data.slug).toBe(base.slice('/w/'.length));

    const deleteAction = /action="([^"]+\/apikeys\/ak_[^"]+\/delete)"/.exec(
      (await member.get(page)).body,
    )?.[1] as string;
    const deleted = await member.post(deleteAction, {}, { from: page });
    expect(deleted.statusCode).toBe(303);
    expect((await api(`Bearer ${key}`, '/v1/workspace')).statusCode).toBe(401);
    expect((await member.get(page)).body).toContain('You have no API keys in this workspace.');
  });

  it('a refused API key form says why and keeps what was typed', async () => {
    const { member, page } = await team();
    const empty = await member.post(`${page}/apikeys`, { keyName: '  ' }, { from: page });
    expect(empty.statusCode).toBe(422);
    expect(empty.body).toContain('Name: is required');
    expect(empty.body).toMatch(/id="keyName"[^>]*aria-invalid="true"/);

    const past = await member.post(
      `${page}/apikeys`,
      { keyName: 'old', keyExpiresOn: '2001-01-01' },
      { from: page },
    );
    expect(past.statusCode).toBe(422);
    expect(past.body).toContain('Expires on: must be in the future');
    expect(past.body).toContain('value="2001-01-01"');
    expect(past.body).toContain('value="old"');
  });

  it('an admin creates a service token with one access, and it works with <id>:<token>', async () => {
    const { admin, page, cacheId } = await team();
    const created = await admin.post(
      `${page}/service-tokens`,
      { tokenName: 'CI', scope: ['caches:read', '', ''], cacheId: [cacheId, '', ''] },
      { from: page },
    );
    expect(created.statusCode, created.body).toBe(303);
    const shown = (await admin.get(page)).body;
    const token = secretOf(shown) as string;
    expect(token).toMatch(/^egst_/);
    const id = /Its id is (st_[A-Za-z0-9]+)/.exec(shown)?.[1] as string;
    expect(shown).toContain(`<code>${id}</code>`);
    expect(shown).toMatch(/<code>caches:read<\/code>[\s\S]*only <em>Orders<\/em>/);

    const authorization = `${id}:${token}`;
    expect((await api(authorization, `/v1/caches/${cacheId}`)).statusCode).toBe(200);
    expect((await api(authorization, `/v1/caches/${cacheId}/rules`)).statusCode).toBe(403);

    const deleteAction = /action="([^"]+\/service-tokens\/st_[^"]+\/delete)"/.exec(shown)?.[1];
    expect((await admin.post(deleteAction as string, {}, { from: page })).statusCode).toBe(303);
    expect((await api(authorization, `/v1/caches/${cacheId}`)).statusCode).toBe(401);
  });

  it('a service token needs at least one access', async () => {
    const { admin, page } = await team();
    const refused = await admin.post(
      `${page}/service-tokens`,
      { tokenName: 'Nothing', scope: ['', ''], cacheId: ['', ''] },
      { from: page },
    );
    expect(refused.statusCode).toBe(422);
    expect(refused.body).toContain('Permissions: grant at least one access');
    expect(refused.body).toContain('value="Nothing"');
  });

  it('a member sees no service-token form and is refused when posting one', async () => {
    const { admin, member, page, cacheId } = await team();
    const created = await admin.post(
      `${page}/service-tokens`,
      { tokenName: 'Hidden', scope: 'caches:read', cacheId: '' },
      { from: page },
    );
    expect(created.statusCode).toBe(303);
    const seen = (await member.get(page)).body;
    expect(seen).not.toContain('Create a service token');
    expect(seen).not.toContain('Hidden');
    expect(seen).toContain('Only its admins can see and create them');

    const posted = await member.post(
      `${page}/service-tokens`,
      { tokenName: 'Mine', scope: 'caches:read', cacheId },
      { from: page },
    );
    expect(posted.statusCode).toBe(403);
    const tokenId = /\/service-tokens\/(st_[^/"]+)\/delete/.exec((await admin.get(page)).body)?.[1];
    const deleting = await member.post(
      `${page}/service-tokens/${tokenId}/delete`,
      {},
      { from: page },
    );
    expect(deleting.statusCode).toBe(403);
  });

  it('someone outside the workspace gets 404 on every page and form', async () => {
    const { member, outsider, page } = await team();
    await member.post(`${page}/apikeys`, { keyName: 'k' }, { from: page });
    const keyId = /\/apikeys\/(ak_[^/"]+)\/delete/.exec((await member.get(page)).body)?.[1];
    expect((await outsider.get(page)).statusCode).toBe(404);
    const from = { from: '/workspaces' };
    for (const [url, form] of [
      [`${page}/apikeys`, { keyName: 'x' }],
      [`${page}/apikeys/${keyId}/delete`, {}],
      [`${page}/service-tokens`, { tokenName: 'x', scope: 'caches:read', cacheId: '' }],
      [`${page}/service-tokens/st_nope/delete`, {}],
    ] as const) {
      expect((await outsider.post(url, form, from)).statusCode, url).toBe(404);
    }
    expect((await member.get(page)).body).toContain(`/apikeys/${keyId}/delete`);
  });

  it("one member cannot delete another member's API key", async () => {
    const { admin, member, page } = await team();
    await member.post(`${page}/apikeys`, { keyName: 'theirs' }, { from: page });
    const keyId = /\/apikeys\/(ak_[^/"]+)\/delete/.exec((await member.get(page)).body)?.[1];
    const response = await admin.post(`${page}/apikeys/${keyId}/delete`, {}, { from: page });
    expect(response.statusCode).toBe(404);
    expect((await admin.get(page)).body).not.toContain('theirs');
  });

  it('a form without its CSRF token is refused', async () => {
    const { admin, page } = await team();
    const refused = await admin.post(`${page}/apikeys`, { keyName: 'x' }, { csrf: null });
    expect(refused.statusCode).toBe(403);
    expect((await admin.get(page)).body).toContain('You have no API keys in this workspace.');
  });
});
