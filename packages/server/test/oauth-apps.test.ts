// The OAuth app registry in the console: registering, secrets shown once, rotation, deletion and
// who may manage a workspace's apps, on both stores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { sha256 } from '../src/services/crypto.ts';
import { openTestStore, storeKinds } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { ConsoleClient } from './helpers/console-client.ts';

const ACCOUNT = '/settings/account/integrations';

function secretOf(html: string): string | undefined {
  return /data-testid="secret">([^<]+)</.exec(html)?.[1];
}

/** A valid create form; `scopes` is sent once per ticked checkbox. */
function appForm(overrides: Record<string, string | string[]> = {}) {
  return {
    name: 'Report Builder',
    description: 'Builds reports from your caches',
    logoUrl: 'https://reports.example.com/logo.png',
    homepageUrl: 'https://reports.example.com',
    redirectUris: 'https://reports.example.com/callback\nhttp://127.0.0.1/cb',
    scopes: ['caches:read', 'metrics:read'],
    clientType: 'confidential',
    ...overrides,
  };
}

describe.each(storeKinds)('OAuth app registry on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let n = 0;

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  async function user() {
    n += 1;
    const client = new ConsoleClient(app);
    await client.signUp(`dev${n}@example.com`);
    return client;
  }

  /** An admin with a workspace, a member of it and an outsider. */
  async function team() {
    const admin = await user();
    const name = `Apps Team ${n}`;
    const created = await admin.post('/workspaces', { name });
    const base = created.headers.location as string;
    const invite = await admin.post(
      `${base}/invitations`,
      { role: 'member', expiresInHours: '1' },
      { from: base },
    );
    expect(invite.statusCode).toBe(303);
    const link = /data-testid="secret">http:\/\/localhost:8080(\/invite\/[^<]+)</.exec(
      (await admin.get(base)).body,
    )?.[1];
    const member = await user();
    await member.post(link as string, {});
    const outsider = await user();
    return { admin, member, outsider, base, name };
  }

  async function createUserApp(client: ConsoleClient, overrides = {}) {
    const response = await client.post(ACCOUNT, appForm(overrides));
    expect(response.statusCode, response.body).toBe(303);
    const path = response.headers.location as string;
    const page = await client.get(path);
    return { path, appId: path.split('/').at(-1) as string, page: page.body };
  }

  async function auditActions(appId: string) {
    const rows = await store.db
      .selectFrom('audit_events')
      .select('action')
      .where('target', '=', appId)
      .orderBy('id')
      .execute();
    return rows.map((r) => r.action);
  }

  it('registers a user app and shows its client secret exactly once, stored only as a hash', async () => {
    const client = await user();
    const { path, appId, page } = await createUserApp(client);
    expect(path).toMatch(/^\/apps\/app_\w+$/);
    const secret = secretOf(page);
    expect(secret).toMatch(/^egcs_/);
    expect(page).toContain('App “Report Builder” created. Copy the client secret now');
    const clientId = /data-testid="client-id">([^<]+)</.exec(page)?.[1];
    expect(clientId).toMatch(/^egc_/);
    for (const text of [
      'Builds reports from your caches',
      'https://reports.example.com/callback',
      'http://127.0.0.1/cb',
      'caches:read',
      'See cache metrics: hits, misses and latency',
      'Confidential',
      'current',
    ])
      expect(page).toContain(text);

    const reload = await client.get(path);
    expect(reload.statusCode).toBe(200);
    expect(secretOf(reload.body)).toBeUndefined();
    expect(reload.body).not.toContain(secret);
    expect(reload.body).toContain(clientId);

    const list = await client.get(ACCOUNT);
    expect(list.body).toContain(`href="/apps/${appId}"`);
    expect(list.body).toContain(clientId);
    expect(list.body).toContain('Settings → Account → Integrations');

    const secrets = await store.db
      .selectFrom('oauth_app_secrets')
      .select('secret_hash')
      .where('app_id', '=', appId)
      .execute();
    expect(secrets).toEqual([{ secret_hash: sha256(secret as string) }]);
    const row = await store.db
      .selectFrom('oauth_apps')
      .selectAll()
      .where('id', '=', appId)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.owner_user_id).not.toBeNull();
    expect(await auditActions(appId)).toEqual(['app.created']);
  });

  it('registers a public app with no secret at all', async () => {
    const client = await user();
    const { appId, page } = await createUserApp(client, { clientType: 'public' });
    expect(secretOf(page)).toBeUndefined();
    expect(page).toContain('public client');
    expect(page).not.toContain('Rotate secret');
    const secrets = await store.db
      .selectFrom('oauth_app_secrets')
      .select('id')
      .where('app_id', '=', appId)
      .execute();
    expect(secrets).toEqual([]);
  });

  it('takes an http homepage on loopback while an app is developed, and says so on the form', async () => {
    const client = await user();
    expect((await client.get(ACCOUNT)).body).toContain(
      'https, or http on localhost, 127.0.0.1 or [::1] while you develop.',
    );
    const local = await client.post(
      ACCOUNT,
      appForm({ homepageUrl: 'http://localhost:3000', redirectUris: 'http://localhost:3000/cb' }),
    );
    expect(local.statusCode, local.body).toBe(303);
    const page = (await client.get(local.headers.location as string)).body;
    expect(page).toContain('<a href="http://localhost:3000">http://localhost:3000</a>');

    const remote = await client.post(
      ACCOUNT,
      appForm({ homepageUrl: 'http://reports.example.com' }),
    );
    expect(remote.statusCode).toBe(422);
    expect(remote.body).toContain(
      'Homepage URL must be an https URL (http only for localhost, 127.0.0.1 or [::1])',
    );
  });

  it('refuses bad input with messages per field and keeps what was typed', async () => {
    const client = await user();
    const response = await client.post(
      ACCOUNT,
      appForm({
        name: 'Typed Name',
        logoUrl: 'ftp://logo.example.com/x.png',
        redirectUris: 'https://ok.example.com/cb\nhttp://evil.example.com/cb',
        scopes: [],
      }),
    );
    expect(response.statusCode).toBe(422);
    const body = response.body;
    expect(body).toContain(
      'http://evil.example.com/cb must use https (http is only for 127.0.0.1, [::1] or localhost)',
    );
    expect(body).toContain('Choose at least one scope');
    expect(body).toContain('Logo URL must be an https URL');
    expect(body).toContain('value="Typed Name"');
    expect(body).toContain('value="ftp://logo.example.com/x.png"');
    expect(body).toMatch(
      /https:\/\/ok\.example\.com\/cb\nhttp:\/\/evil\.example\.com\/cb<\/textarea/,
    );
    expect(body).toContain('Builds reports from your caches</textarea');
    expect(body).toMatch(/value="confidential"\s+checked/);
    expect(
      await store.db
        .selectFrom('oauth_apps')
        .select('id')
        .where('name', '=', 'Typed Name')
        .execute(),
    ).toEqual([]);

    const keepsScopes = await client.post(ACCOUNT, appForm({ name: '', scopes: ['caches:write'] }));
    expect(keepsScopes.statusCode).toBe(422);
    expect(keepsScopes.body).toContain('Name is required');
    expect(keepsScopes.body).toMatch(/value="caches:write"\s+checked/);
    expect(keepsScopes.body).not.toMatch(/value="caches:read"\s+checked/);
  });

  it('lets a workspace admin register an app for the workspace; members get 403, outsiders 404', async () => {
    const { admin, member, outsider, base, name } = await team();
    const integrations = `${base}/settings/integrations`;
    expect((await admin.get(base)).body).toContain(`href="${integrations}"`);
    expect((await member.get(base)).body).not.toContain(`href="${integrations}"`);

    const created = await admin.post(integrations, appForm({ name: 'Team App' }));
    expect(created.statusCode).toBe(303);
    const appPath = created.headers.location as string;
    const appId = appPath.split('/').at(-1) as string;
    const page = (await admin.get(appPath)).body;
    expect(secretOf(page)).toMatch(/^egcs_/);
    expect(page).toContain(`Workspace ${name}`);
    expect((await admin.get(integrations)).body).toContain(`href="${appPath}"`);
    const row = await store.db
      .selectFrom('oauth_apps')
      .select(['owner_user_id', 'owner_workspace_id'])
      .where('id', '=', appId)
      .executeTakeFirstOrThrow();
    expect(row.owner_user_id).toBeNull();
    expect(row.owner_workspace_id).toMatch(/^ws_/);

    const memberPage = await member.get(integrations);
    expect(memberPage.statusCode).toBe(403);
    expect(memberPage.body).toContain('Only admins of this workspace can manage its integrations.');
    expect((await member.post(integrations, appForm())).statusCode).toBe(403);
    expect((await member.get(appPath)).statusCode).toBe(403);
    for (const action of ['rotate-secret', 'delete'])
      expect(
        (await member.post(`${appPath}/${action}`, {}, { from: '/workspaces' })).statusCode,
      ).toBe(403);

    expect((await outsider.get(integrations)).statusCode).toBe(404);
    expect((await outsider.get(appPath)).statusCode).toBe(404);
    for (const action of ['rotate-secret', 'delete'])
      expect(
        (await outsider.post(`${appPath}/${action}`, {}, { from: '/workspaces' })).statusCode,
      ).toBe(404);
    expect(
      (await store.db.selectFrom('oauth_apps').select('id').where('id', '=', appId).execute())
        .length,
    ).toBe(1);
  });

  it("keeps a user's apps private: another user gets 404", async () => {
    const owner = await user();
    const { path } = await createUserApp(owner);
    const other = await user();
    expect((await other.get(path)).statusCode).toBe(404);
    expect((await other.post(`${path}/delete`, {}, { from: ACCOUNT })).statusCode).toBe(404);
    expect((await other.get(ACCOUNT)).body).not.toContain(path);
  });

  it('rotates the secret: the new one is shown once, the old one lives for the overlap', async () => {
    const client = await user();
    const { path, appId, page } = await createUserApp(client);
    const first = secretOf(page) as string;

    const before = Date.now();
    const rotated = await client.post(
      `${path}/rotate-secret`,
      { overlapHours: '6' },
      { from: path },
    );
    expect(rotated.statusCode).toBe(303);
    expect(rotated.headers.location).toBe(path);
    const after = await client.get(path);
    const second = secretOf(after.body) as string;
    expect(second).toMatch(/^egcs_/);
    expect(second).not.toBe(first);
    expect(after.body).toContain('The old one keeps working until');
    expect(after.body).toContain('valid until');

    const rows = await store.db
      .selectFrom('oauth_app_secrets')
      .select(['secret_hash', 'expires_at'])
      .where('app_id', '=', appId)
      .execute();
    const old = rows.find((r) => r.secret_hash === sha256(first));
    const current = rows.find((r) => r.secret_hash === sha256(second));
    expect(current?.expires_at).toBeNull();
    const expected = before + 6 * 3600_000;
    expect(Math.abs((old?.expires_at as Date).getTime() - expected)).toBeLessThan(60_000);

    const immediate = await client.post(
      `${path}/rotate-secret`,
      { overlapHours: '0' },
      { from: path },
    );
    expect(immediate.statusCode).toBe(303);
    const third = secretOf((await client.get(path)).body) as string;
    const secondRow = await store.db
      .selectFrom('oauth_app_secrets')
      .select('expires_at')
      .where('secret_hash', '=', sha256(second))
      .executeTakeFirstOrThrow();
    expect(Math.abs((secondRow.expires_at as Date).getTime() - Date.now())).toBeLessThan(60_000);
    expect((secondRow.expires_at as Date).getTime()).toBeLessThanOrEqual(Date.now());
    const live = (await client.get(path)).body;
    expect(live).not.toContain('valid until');
    expect(third).not.toBe(second);

    const refused = await client.post(
      `${path}/rotate-secret`,
      { overlapHours: '1000' },
      { from: path },
    );
    expect(refused.statusCode).toBe(422);
    expect(refused.body).toContain('The overlap must be between 0 and 720 hours');
    expect(refused.body).toContain('value="1000"');

    expect(await auditActions(appId)).toEqual([
      'app.created',
      'app.secret_rotated',
      'app.secret_rotated',
    ]);
  });

  it('deletes an app with every grant and token of it', async () => {
    const { admin, base } = await team();
    const integrations = `${base}/settings/integrations`;
    const created = await admin.post(integrations, appForm({ name: 'Doomed' }));
    const appPath = created.headers.location as string;
    const appId = appPath.split('/').at(-1) as string;
    const owner = await store.db
      .selectFrom('oauth_apps')
      .select(['created_by', 'owner_workspace_id'])
      .where('id', '=', appId)
      .executeTakeFirstOrThrow();
    const grantId = `grant-${appId}`;
    await store.db
      .insertInto('oauth_grants')
      .values({
        id: grantId,
        app_id: appId,
        user_id: owner.created_by as string,
        workspace_id: owner.owner_workspace_id,
        scopes: ['caches:read'],
        payload: JSON.stringify({ kind: 'Grant' }),
        expires_at: new Date(Date.now() + 3600_000),
      })
      .execute();
    await store.db
      .insertInto('oauth_tokens')
      .values({
        id_hash: sha256(`token-${appId}`),
        kind: 'AccessToken',
        grant_id: grantId,
        payload: JSON.stringify({ kind: 'AccessToken' }),
        expires_at: new Date(Date.now() + 3600_000),
      })
      .execute();

    const page = (await admin.get(appPath)).body;
    expect(page).toContain('revokes every authorization');
    const deleted = await admin.post(`${appPath}/delete`, {}, { from: appPath });
    expect(deleted.statusCode).toBe(303);
    expect(deleted.headers.location).toBe(integrations);
    const list = await admin.get(integrations);
    expect(list.body).toContain('App “Doomed” deleted.');
    expect(list.body).not.toContain(appPath);
    expect((await admin.get(appPath)).statusCode).toBe(404);

    const remaining = await Promise.all([
      store.db.selectFrom('oauth_apps').select('id').where('id', '=', appId).execute(),
      store.db.selectFrom('oauth_app_secrets').select('id').where('app_id', '=', appId).execute(),
      store.db.selectFrom('oauth_grants').select('id').where('app_id', '=', appId).execute(),
      store.db
        .selectFrom('oauth_tokens')
        .select('id_hash')
        .where('grant_id', '=', grantId)
        .execute(),
    ]);
    expect(remaining).toEqual([[], [], [], []]);
    expect(await auditActions(appId)).toEqual(['app.created', 'app.deleted']);
  });

  it('links to integrations from the navigation', async () => {
    const client = await user();
    expect((await client.get('/workspaces')).body).toContain(`href="${ACCOUNT}"`);
  });
});
