// A consent can limit an app to some caches of the chosen workspace (SPEC §3, as PlanetScale
// narrows to one database): the token response says which, and the API holds the app to them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  obtainTokens,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  startAuthorization,
  submitConsent,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';
import { insertCache } from '../../src/db/queries/caches.ts';
import { newId } from '../../src/services/crypto.ts';

describe('consent limited to some caches', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspaceId: string;
  let partner: RegisteredPartner;
  const caches: string[] = [];

  async function cacheIn(workspace: string, name: string) {
    const row = await insertCache(store.db, {
      id: newId('cch'),
      workspaceId: workspace,
      name,
      description: '',
      type: 'postgres',
      hostname: 'db.example.com',
      port: 5432,
      defaultMode: 'auto',
      defaultTtlSeconds: 60,
      originTls: 'prefer',
    });
    return row.id;
  }

  beforeAll(async () => {
    store = await openTestStore('pglite');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    partner = await registerPartner(store.db, await userIdOf(store.db, 'owner@partner.example'), {
      scopes: ['caches:read', 'caches:write', 'cacheRules:read'],
      redirectUris: ['https://partner.example/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspaceId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;
    caches.push(await cacheIn(workspaceId, 'orders'), await cacheIn(workspaceId, 'billing'));
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const api = (token: string, path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });

  it('offers the workspace caches on the consent page', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    expect(started.page).toContain(`value="${caches[0]}"`);
    expect(started.page).toContain('Only some caches of this workspace?');
  });

  it('holds the token to the chosen caches', async () => {
    const [orders, billing] = caches as [string, string];
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read caches:write cacheRules:read',
      workspaceId,
      cacheIds: [orders],
    });
    expect((tokens as unknown as { cache_ids: string[] }).cache_ids).toEqual([orders]);
    expect((await api(tokens.access_token, `/v1/caches/${orders}`)).status).toBe(200);
    expect((await api(tokens.access_token, `/v1/caches/${billing}`)).status).toBe(403);
    const listed = (await (await api(tokens.access_token, '/v1/caches')).json()) as {
      data: { id: string }[];
    };
    expect(listed.data.map((c) => c.id)).toEqual([orders]);
    // Creating a cache needs the whole workspace.
    // The person sees the limit where they manage the app.
    const listed2 = await user.request(`${url}/settings/account/authorized-apps`);
    expect(await listed2.text()).toContain(`<code>${orders}</code>`);
    const created = await api(tokens.access_token, '/v1/caches', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', type: 'postgres', hostname: 'db.example.com', port: 5432 }),
    });
    expect(created.status).toBe(403);
  });

  it('grants the whole workspace when no cache is ticked', async () => {
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read',
      workspaceId,
    });
    expect(tokens).not.toHaveProperty('cache_ids');
    expect((await api(tokens.access_token, `/v1/caches/${caches[1]}`)).status).toBe(200);
  });

  it('refuses caches of another workspace, and says so on the page', async () => {
    await signUpBrowser(url, 'eve@example.com');
    const foreign = await cacheIn(
      (await personalWorkspaceOf(store.db, 'eve@example.com')).id,
      'not yours',
    );
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const decided = await submitConsent(url, user, started.page, {
      workspace: workspaceId,
      caches: [foreign],
    });
    expect(decided.status).toBe(422);
    expect(await decided.text()).toContain('must belong to the workspace you chose');
  });
});
