// A cache says which partner app created it (`createdBy`, read-only), through the app's OAuth token
// or an API key the app minted; a person's or a service token's cache says null. Revoking the app
// leaves its caches with the workspace, still naming the app, on the API and the console page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { createApiKey } from '../../src/services/api-keys.ts';
import { revokeGrant } from '../../src/services/grants.ts';
import { consolePrincipal } from '../../src/routes/console/principal.ts';
import { buildTestApp } from '../helpers/app.ts';
import { ConsoleClient } from '../helpers/console-client.ts';
import { personalWorkspaceOf, userIdOf } from '../helpers/oauth-flow.ts';
import { openTestStore } from '../helpers/stores.ts';
import { accessTokenFor, consentedGrant, serviceTokenFor } from '../helpers/tokens.ts';

const EMAIL = 'creator@example.com';
const SCOPES = ['caches:read', 'caches:write'];

describe('caches record the app that created them', () => {
  let store: Store;
  let app: FastifyInstance;
  let browser: ConsoleClient;
  let workspace: { id: string; slug: string };
  let personKey: string;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store);
    browser = new ConsoleClient(app);
    await browser.signUp(EMAIL);
    workspace = await personalWorkspaceOf(store.db, EMAIL);
    const user = await store.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', EMAIL)
      .executeTakeFirstOrThrow();
    const { principal } = await consolePrincipal(store.db, user, workspace.slug);
    ({ key: personKey } = await createApiKey(store.db, principal, { name: 'person' }));
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  async function call(
    authorization: string,
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    body?: object,
  ) {
    const response = await app.inject({
      method,
      url,
      headers: { authorization },
      ...(body ? { payload: body } : {}),
    });
    return {
      status: response.statusCode,
      body: response.json() as { data: Record<string, unknown> },
    };
  }

  const origin = (name: string) => ({ name, type: 'postgres', hostname: '127.0.0.1', port: 5432 });

  it('names the app for its token and its minted key, null for a person and a service token', async () => {
    const userId = await userIdOf(store.db, EMAIL);
    const grant = await consentedGrant(app, store.db, {
      userId,
      workspaceId: workspace.id,
      scopes: SCOPES,
    });
    const appRow = await store.db
      .selectFrom('oauth_apps')
      .select(['id', 'name'])
      .where('client_id', '=', grant.clientId)
      .executeTakeFirstOrThrow();
    const bearer = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
    const byApp = { type: 'app', appId: appRow.id, name: 'Test Partner' };

    const viaToken = await call(bearer, 'POST', '/v1/caches', origin('orders'));
    expect(viaToken.status).toBe(201);
    expect(viaToken.body.data.createdBy).toEqual(byApp);

    const minted = await call(bearer, 'POST', '/v1/apikeys', { name: 'backend' });
    expect(minted.status).toBe(201);
    const viaMintedKey = await call(
      `Bearer ${minted.body.data.key as string}`,
      'POST',
      '/v1/caches',
      origin('billing'),
    );
    expect(viaMintedKey.body.data.createdBy).toEqual(byApp);

    const viaPerson = await call(`Bearer ${personKey}`, 'POST', '/v1/caches', origin('search'));
    expect(viaPerson.status).toBe(201);
    expect(viaPerson.body.data.createdBy).toBeNull();
    const serviceToken = await serviceTokenFor(store.db, {
      userId,
      workspaceId: workspace.id,
      scopes: SCOPES,
    });
    const viaService = await call(serviceToken, 'POST', '/v1/caches', origin('reports'));
    expect(viaService.status).toBe(201);
    expect(viaService.body.data.createdBy).toBeNull();

    // Read-only: a PATCH cannot set or clear it.
    const patched = await call(
      `Bearer ${personKey}`,
      'PATCH',
      `/v1/caches/${viaToken.body.data.id}`,
      {
        createdBy: null,
      },
    );
    expect(patched.status).toBeGreaterThanOrEqual(400);

    // Revoking the app ends its token and its key, not its caches.
    await revokeGrant(store.db, grant.grantId, { reason: 'revoked_by_user', actorUserId: userId });
    expect((await call(bearer, 'GET', '/v1/caches')).status).toBe(401);
    const kept = await call(`Bearer ${personKey}`, 'GET', `/v1/caches/${viaToken.body.data.id}`);
    expect(kept.status).toBe(200);
    expect(kept.body.data.createdBy).toEqual(byApp);
    const listed = await call(`Bearer ${personKey}`, 'GET', '/v1/caches?limit=100');
    expect((listed.body.data as unknown as { name: string }[]).map((c) => c.name).sort()).toEqual([
      'billing',
      'orders',
      'reports',
      'search',
    ]);

    const page = await browser.get(`/w/${workspace.slug}/caches/${viaToken.body.data.id}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/data-testid="created-by">\s*the app <strong>Test Partner<\/strong>/);
    const personPage = await browser.get(`/w/${workspace.slug}/caches/${viaPerson.body.data.id}`);
    expect(personPage.body).not.toContain('data-testid="created-by"');
  });
});
