// The cache pages of the console: creating, listing, editing and deleting a cache, its rules, the
// connection-string converter, and who may see any of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { findCacheById } from '../src/db/queries/caches.ts';
import { ConsoleClient } from './helpers/console-client.ts';

function cacheForm(overrides: Record<string, string> = {}) {
  return {
    name: 'Orders database',
    type: 'postgres',
    hostname: 'db.example.com',
    port: '5432',
    defaultMode: 'auto',
    defaultTtlSeconds: '60',
    ...overrides,
  };
}

function unescape(text: string): string {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

function testIdText(html: string, testId: string): string | undefined {
  const match = new RegExp(`data-testid="${testId}">([^<]*)<`).exec(html)?.[1];
  return match === undefined ? undefined : unescape(match);
}

describe('console cache pages', () => {
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

  async function user() {
    n += 1;
    const client = new ConsoleClient(app);
    await client.signUp(`cache${n}@example.com`);
    return client;
  }

  /** A person with a workspace of their own, and its base path. */
  async function owner() {
    const client = await user();
    const created = await client.post('/workspaces', { name: `Caching ${n}` });
    expect(created.statusCode).toBe(303);
    return { client, base: created.headers.location as string };
  }

  async function createCache(client: ConsoleClient, base: string, overrides = {}) {
    const response = await client.post(`${base}/caches`, cacheForm(overrides));
    expect(response.statusCode, response.body).toBe(303);
    const path = response.headers.location as string;
    return { path, id: path.split('/').at(-1) as string };
  }

  it('a cache created on the page is listed and has its own page', async () => {
    const { client, base } = await owner();
    expect((await client.get(base)).body).toContain(`href="${base}/caches"`);
    const { path, id } = await createCache(client, base);
    expect(id).toMatch(/^cch_[A-Za-z0-9]{22}$/);

    const page = await client.get(path);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Cache “Orders database” created.');
    expect(testIdText(page.body, 'cache-id')).toBe(id);

    const list = await client.get(`${base}/caches`);
    expect(list.body).toContain(`<a href="${path}">Orders database</a>`);
    expect(list.body).toContain('db.example.com:5432');
  });

  it('a refused form comes back with a message per field and what was typed', async () => {
    const { client, base } = await owner();
    const refused = await client.post(
      `${base}/caches`,
      cacheForm({ name: 'Keep me', port: '70000', defaultTtlSeconds: '' }),
    );
    expect(refused.statusCode).toBe(422);
    expect(refused.body).toContain('value="Keep me"');
    expect(refused.body).toContain('value="70000"');
    expect(refused.body).toContain('Origin port: must be between 1 and 65535');
    expect(refused.body).toContain('id="defaultTtlSeconds-error"');
    expect(refused.body).toMatch(/id="port"[^>]*aria-invalid="true"/);

    const unresolvable = await client.post(
      `${base}/caches`,
      cacheForm({ hostname: 'nowhere.example.com' }),
    );
    expect(unresolvable.statusCode).toBe(422);
    expect(unresolvable.body).toContain('nowhere.example.com does not resolve');
    expect(unresolvable.body).toContain('value="nowhere.example.com"');

    const metadata = await client.post(
      `${base}/caches`,
      cacheForm({ hostname: 'metadata.example.com' }),
    );
    expect(metadata.statusCode).toBe(422);
    expect((await client.get(`${base}/caches`)).body).toContain('No caches yet.');
  });

  it('settings can be changed, and a refused change keeps what was typed', async () => {
    const { client, base } = await owner();
    const { path } = await createCache(client, base);
    const changed = await client.post(
      path,
      cacheForm({ name: 'Orders (EU)', port: '6543', defaultMode: 'manual' }),
    );
    expect(changed.statusCode).toBe(303);
    const page = (await client.get(path)).body;
    expect(page).toContain('<h1>Orders (EU)</h1>');
    expect(page).toContain('db.example.com:6543');
    expect(page).toContain('Manual: keep results for the time you set');

    const refused = await client.post(path, cacheForm({ name: '', port: 'six' }));
    expect(refused.statusCode).toBe(422);
    expect(refused.body).toContain('Name: is required');
    expect(refused.body).toContain('value="six"');
    expect(refused.body).toContain('<h1>Orders (EU)</h1>');
  });

  it('sharing results between edge nodes is chosen on the form and kept', async () => {
    const { client, base } = await owner();
    const { path, id } = await createCache(client, base, { sharedResults: 'on' });
    const selected = (body: string) =>
      /<option value="(on|off)"\s+selected/.exec(
        body.slice(body.indexOf('id="sharedResults"')),
      )?.[1];
    expect(selected((await client.get(path)).body)).toBe('on');
    expect((await findCacheById(store.db, id))?.shared_results).toBe(true);
    expect((await client.post(path, cacheForm({ sharedResults: 'off' }))).statusCode).toBe(303);
    expect(selected((await client.get(path)).body)).toBe('off');
    expect((await findCacheById(store.db, id))?.shared_results).toBe(false);
    // A form without the field leaves it as it is.
    await client.post(path, cacheForm({ sharedResults: 'on' }));
    expect((await client.post(path, cacheForm({ name: 'Renamed' }))).statusCode).toBe(303);
    expect((await findCacheById(store.db, id))?.shared_results).toBe(true);
  });

  it('a change made meanwhile by someone else is not overwritten', async () => {
    const { client, base } = await owner();
    const { path } = await createCache(client, base);
    const stale = /name="version" value="(\d+)"/.exec((await client.get(path)).body)?.[1];
    await client.post(path, cacheForm({ name: 'First' }));
    const second = await client.post(
      path,
      { ...cacheForm({ name: 'Second' }), version: stale as string },
      { from: path },
    );
    expect(second.statusCode).toBe(412);
    expect(second.body).toContain('Someone changed this cache while you were editing it');
    expect(second.body).toContain('value="Second"');
    expect((await client.get(path)).body).toContain('<h1>First</h1>');
  });

  it('rules are added from a table name or pasted SQL, and deleted', async () => {
    const { client, base } = await owner();
    const { path } = await createCache(client, base);
    const table = await client.post(
      `${path}/rules`,
      {
        kind: 'table',
        key: 'public.Orders',
        mode: 'off',
        ttlSeconds: '',
        transactionPolicy: 'never',
      },
      { from: path },
    );
    expect(table.statusCode).toBe(303);
    const template = await client.post(
      `${path}/rules`,
      {
        kind: 'template',
        key: 'SELECT *\r\nFROM orders WHERE id = 42',
        mode: 'manual',
        ttlSeconds: '300',
        transactionPolicy: 'untilWrite',
      },
      { from: path },
    );
    expect(template.statusCode).toBe(303);

    let page = (await client.get(path)).body;
    expect(page).toContain('<code>public.orders</code>');
    // The browser's CRLF line break arrives as the LF an application's SQL has.
    expect(page).toContain('SELECT *\nFROM orders WHERE id = $1');
    expect(page).toMatch(/fingerprint <code>[0-9a-f]{16}<\/code>/);
    expect(page).toContain('300 s');

    const duplicate = await client.post(
      `${path}/rules`,
      {
        kind: 'table',
        key: 'public.orders',
        mode: 'auto',
        ttlSeconds: '',
        transactionPolicy: 'never',
      },
      { from: path },
    );
    expect(duplicate.statusCode).toBe(409);
    expect(duplicate.body).toContain('Table name or SQL: is already the key of rule rul_');
    expect(duplicate.body).toMatch(/value="table"\s+selected/);

    const noTtl = await client.post(
      `${path}/rules`,
      {
        kind: 'table',
        key: 'customers',
        mode: 'manual',
        ttlSeconds: '',
        transactionPolicy: 'never',
      },
      { from: path },
    );
    expect(noTtl.statusCode).toBe(422);
    expect(noTtl.body).toContain('Time to keep results: is required when mode is manual');
    expect(noTtl.body).toContain('>\ncustomers</textarea');

    const deleteAction = /action="([^"]+\/rules\/rul_[^"]+\/delete)"/.exec(page)?.[1] as string;
    expect((await client.post(deleteAction, {}, { from: path })).statusCode).toBe(303);
    page = (await client.get(path)).body;
    expect(page.match(/\/rules\/rul_[^"]+\/delete/g)).toHaveLength(1);
  });

  it('the converter shows the edge connection string and stores it nowhere', async () => {
    const { client, base } = await owner();
    const { path, id } = await createCache(client, base);
    const origin = 'postgres://u:p%40ss@origin:5432/app?sslmode=require';
    const converted = await client.post(
      `${path}/connection-string`,
      { connectionString: origin },
      { from: path },
    );
    expect(converted.statusCode).toBe(200);
    expect(converted.headers['cache-control']).toBe('no-store');
    expect(testIdText(converted.body, 'edge-connection-string')).toBe(
      `postgres://u:p%40ss@localhost:6432/app?sslmode=require&application_name=${id}`,
    );
    expect(converted.cookies.map((c) => c.value).join(' ')).not.toContain('p%40ss');
    expect(JSON.stringify(converted.headers)).not.toContain('p%40ss');
    expect((await client.get(path)).body).not.toContain('p%40ss');

    const refused = await client.post(
      `${path}/connection-string`,
      { connectionString: 'mysql://u:p@origin/app' },
      { from: path },
    );
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toContain('id="connectionString-error"');
    expect(refused.body).toContain('value="mysql://u:p@origin/app"');
    expect(refused.headers['cache-control']).toBe('no-store');
  });

  it('the invalidation form says the mode and names what the origin lacks', async () => {
    const { client, base } = await owner();
    // The machine's own Postgres runs with wal_level=replica and trusts loopback.
    const { path } = await createCache(client, base, { hostname: '127.0.0.1', port: '5432' });
    const page = await client.get(path);
    expect(page.body).toContain('Writes that bypass the edge');
    expect(testIdText(page.body, 'invalidation-status')?.trim()).toContain(
      'Cached reads are dropped by writes through the edge',
    );
    const refused = await client.post(
      `${path}/invalidation`,
      {
        mode: 'replication',
        username: 'postgres',
        password: 'not shown again',
        database: 'postgres',
        publication: '',
      },
      { from: path },
    );
    expect(refused.statusCode).toBe(422);
    expect(unescape(refused.body)).toContain('wal_level=replica');
    expect(refused.body).toContain('value="postgres"');
    expect(refused.body).not.toContain('not shown again');

    const missing = await client.post(
      `${path}/invalidation`,
      { mode: 'replication', username: '', password: '', database: '', publication: '' },
      { from: path },
    );
    expect(missing.statusCode).toBe(422);
    expect(missing.body).toContain('Replication user: is required');

    const saved = await client.post(`${path}/invalidation`, { mode: 'edge' }, { from: path });
    expect(saved.statusCode).toBe(303);
    expect((await client.get(path)).body).toContain(
      'drops cached reads on writes through the edge',
    );
  });

  it('a deleted cache leaves the list and its page is gone', async () => {
    const { client, base } = await owner();
    const { path } = await createCache(client, base, { name: 'Short-lived' });
    const deleted = await client.post(`${path}/delete`, {}, { from: path });
    expect(deleted.statusCode).toBe(303);
    expect(deleted.headers.location).toBe(`${base}/caches`);
    const list = await client.get(`${base}/caches`);
    expect(list.body).toContain('Cache “Short-lived” deleted.');
    expect(list.body).not.toContain(`href="${path}"`);
    expect((await client.get(path)).statusCode).toBe(404);
  });

  it('someone outside the workspace gets 404 on every page and form', async () => {
    const { client, base } = await owner();
    const { path } = await createCache(client, base);
    const rule = await client.post(
      `${path}/rules`,
      {
        kind: 'table',
        key: 'orders',
        mode: 'auto',
        ttlSeconds: '',
        transactionPolicy: 'never',
      },
      { from: path },
    );
    expect(rule.statusCode).toBe(303);
    const ruleDelete = /action="([^"]+\/rules\/rul_[^"]+\/delete)"/.exec(
      (await client.get(path)).body,
    )?.[1] as string;

    const outsider = await user();
    const csrf = { from: '/workspaces' };
    expect((await outsider.get(`${base}/caches`)).statusCode).toBe(404);
    expect((await outsider.get(path)).statusCode).toBe(404);
    for (const [url, form] of [
      [`${base}/caches`, cacheForm()],
      [path, cacheForm({ name: 'Taken over' })],
      [`${path}/rules`, { kind: 'table', key: 'x', mode: 'auto', transactionPolicy: 'never' }],
      [ruleDelete, {}],
      [`${path}/connection-string`, { connectionString: 'postgres://u:p@h/db' }],
      [`${path}/delete`, {}],
    ] as const) {
      expect((await outsider.post(url, form, csrf)).statusCode, url).toBe(404);
    }
    expect((await client.get(path)).body).toContain('<code>orders</code>');

    // A cache of another workspace is not found through one's own workspace either.
    const other = await owner();
    expect(
      (await other.client.get(`${other.base}/caches/${path.split('/').at(-1)}`)).statusCode,
    ).toBe(404);
  });

  it('a form without its CSRF token is refused', async () => {
    const { client, base } = await owner();
    const refused = await client.post(`${base}/caches`, cacheForm(), { csrf: null });
    expect(refused.statusCode).toBe(403);
    expect((await client.get(`${base}/caches`)).body).toContain('No caches yet.');
  });

  it('a signed-out visitor is sent to log in', async () => {
    const { base } = await owner();
    const visitor = new ConsoleClient(app);
    const response = await visitor.get(`${base}/caches`);
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe(`/login?next=${encodeURIComponent(`${base}/caches`)}`);
  });
});
