// The edge driven by the control plane, end to end: a cache created through the API serves the
// connection string the API hands out, rule and cache changes reach a running edge within a second
// (in one process, and in a separate edge process by LISTEN/NOTIFY), and metrics come back out.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { signUp } from '../src/services/accounts.ts';
import { ConsoleClient } from './helpers/console-client.ts';
import { freePort } from './helpers/listening-app.ts';
import { ADMIN_DATABASE_URL, createTestDatabase } from './helpers/stores.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';

const SCOPES = [
  'caches:read',
  'caches:write',
  'cacheRules:read',
  'cacheRules:write',
  'metrics:read',
];
const silent = pino({ level: 'silent' });

async function start(
  databaseUrl: string | undefined,
  planes: 'all' | 'server' | 'edge',
  edgePort: number,
  extra: Record<string, string> = {},
  warnings?: string[],
) {
  const config = loadConfig({
    ...extra,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-edge-')),
    PORT: '0',
    EDGE_PG_PORT: String(edgePort),
    EDGE_MYSQL_PORT: '0',
    EDGEGATE_SECRET: 'a'.repeat(48),
    LOG_LEVEL: 'silent',
  });
  const logger = warnings
    ? pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) })
    : silent;
  return startServer(config, { logger, planes });
}

async function asAdmin(url: string, statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A new user and their personal workspace. */
async function signedUp(server: RunningServer, email: string) {
  const { user, personalWorkspace } = await signUp(server.store.db, {
    email,
    password: 'long enough pw',
  });
  return { userId: user.id, workspaceId: personalWorkspace.id };
}

/** An access token of a partner app `owner` consented to in their workspace, with `scopes`. */
async function tokenFor(
  server: RunningServer,
  owner: { userId: string; workspaceId: string },
  scopes = SCOPES,
): Promise<string> {
  const app = server.app!;
  const grant = await consentedGrant(app, server.store.db, { ...owner, scopes });
  return (await accessTokenFor(app, grant)).access_token;
}

async function bearer(server: RunningServer, email: string): Promise<string> {
  return tokenFor(server, await signedUp(server, email));
}

function api(server: RunningServer, token: string) {
  const call = async (method: string, url: string, body?: object) => {
    const response = await server.app!.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(body ? { payload: body } : {}),
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: (response.body === '' ? null : response.json()) as { data: Record<string, unknown> },
    };
  };
  return {
    get: (url: string) => call('GET', url),
    post: (url: string, body: object) => call('POST', url, body),
    patch: (url: string, body: object) => call('PATCH', url, body),
    delete: (url: string) => call('DELETE', url),
  };
}

async function query(connectionString: string, sql: string) {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** A cache for the machine's Postgres, created through `controlPlane`, and its URL on `edge`. */
async function createLocalCache(
  controlPlane: RunningServer,
  token: string,
  edge: RunningServer,
  name: string,
): Promise<{ cacheId: string; url: string }> {
  const created = await api(controlPlane, token).post('/v1/caches', {
    name,
    type: 'postgres',
    hostname: '127.0.0.1',
    port: 5432,
    originTls: 'disable',
  });
  expect(created.status).toBe(201);
  const cacheId = created.body.data.id as string;
  return {
    cacheId,
    url: `postgres://postgres@127.0.0.1:${edge.edge!.port}/test?application_name=${cacheId}`,
  };
}

/** Retries `check` for up to a second: config changes must land within that. */
async function withinASecond(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 1000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('the change did not reach the edge within a second');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('the edge in one process with the control plane', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: RunningServer;
  let owner: { userId: string; workspaceId: string };
  let token: string;
  let cacheId: string;
  let edgeUrl: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await start(database.url, 'all', await freePort());
    owner = await signedUp(server, 'edge-one@example.com');
    token = await tokenFor(server, owner);
    const created = await api(server, token).post('/v1/caches', {
      name: 'Local Postgres',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: 5432,
      originTls: 'disable',
    });
    expect(created.status).toBe(201);
    cacheId = created.body.data.id as string;
    const converted = await api(server, token).post('/v1/connection-strings', {
      cacheId,
      connectionString: 'postgres://postgres@127.0.0.1:5432/test',
    });
    expect(converted.status).toBe(200);
    edgeUrl = converted.body.data.connectionString as string;
  });

  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('the connection string from the API works through the edge, and repeated reads are hits', async () => {
    expect(edgeUrl).toBe(
      `postgres://postgres@localhost:${server.edge!.port}/test?application_name=${cacheId}`,
    );
    const sql = 'SELECT 40 + 2 AS answer';
    expect(await query(edgeUrl, sql)).toEqual([{ answer: 42 }]);
    expect(await query(edgeUrl, sql)).toEqual([{ answer: 42 }]);
    const metrics = await api(server, token).get(`/v1/caches/${cacheId}/metrics?window=15m`);
    expect(metrics.status).toBe(200);
    expect(metrics.body.data).toMatchObject({
      cacheId,
      queries: 2,
      hits: 1,
      misses: 1,
      hitRatio: 0.5,
    });
    const data = metrics.body.data as {
      latency: { hit: { p50Ms: number | null } };
      topTemplates: { normalized: string; count: number }[];
      series: { hits: number }[];
    };
    expect(data.latency.hit.p50Ms).not.toBeNull();
    expect(data.topTemplates[0]).toMatchObject({
      normalized: 'SELECT $1 + $2 AS answer',
      count: 2,
    });
    expect(data.series.reduce((sum, point) => sum + point.hits, 0)).toBe(1);
    const prometheus = await (await fetch(`${server.url}/metrics`)).text();
    expect(prometheus).toContain(
      `edgegate_edge_queries_total{cache_id="${cacheId}",result="hit"} 1`,
    );
  });

  it('the cache page in the console shows the traffic: hit ratio and a chart of hits vs misses', async () => {
    const console_ = new ConsoleClient(server.app!);
    await console_.signUp('edge-console@example.com');
    const workspace = await console_.post('/workspaces', { name: 'Edge console' });
    const base = workspace.headers.location as string;
    const created = await console_.post(`${base}/caches`, {
      name: 'Console cache',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: '5432',
      defaultMode: 'auto',
      defaultTtlSeconds: '60',
    });
    const path = created.headers.location as string;
    const id = path.split('/').at(-1) as string;
    const url = `postgres://postgres@127.0.0.1:${server.edge!.port}/test?application_name=${id}`;
    for (let i = 0; i < 3; i++) await query(url, 'SELECT 1 AS one');
    const page = await console_.get(path);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('data-testid="metrics-chart"');
    expect(page.body).toMatch(/data-testid="hit-ratio">66\.7 %</);
    expect(page.body).toMatch(/<title>[^<]*: 2 hits, 1 misses<\/title>/);
    expect(page.body).toContain('<code>SELECT $1 AS one</code>');
  });

  it('metrics need metrics:read and stay inside the workspace', async () => {
    const withoutMetrics = await tokenFor(
      server,
      owner,
      SCOPES.filter((scope) => scope !== 'metrics:read'),
    );
    expect((await api(server, withoutMetrics).get(`/v1/caches/${cacheId}`)).status).toBe(200);
    const refused = await api(server, withoutMetrics).get(`/v1/caches/${cacheId}/metrics`);
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toBe(
      'Bearer realm="edgegate", error="insufficient_scope", scope="metrics:read"',
    );
    const onlyMetrics = await tokenFor(server, owner, ['metrics:read']);
    const allowed = await api(server, onlyMetrics).get(`/v1/caches/${cacheId}/metrics`);
    expect(allowed.status).toBe(200);
    expect(allowed.body.data).toMatchObject({ cacheId });
    const other = await bearer(server, 'edge-other@example.com');
    expect((await api(server, other).get(`/v1/caches/${cacheId}/metrics`)).status).toBe(404);
    expect((await api(server, token).get(`/v1/caches/${cacheId}/metrics?window=2y`)).status).toBe(
      400,
    );
  });

  it('a rule change reaches the running edge within a second', async () => {
    const sql = 'SELECT 7 * 6 AS answer';
    const other = 'SELECT 7 - 6 AS difference';
    await query(edgeUrl, sql);
    const stats = server.edge!.stats(cacheId);
    const rule = await api(server, token).post(`/v1/caches/${cacheId}/rules`, {
      kind: 'template',
      key: sql,
      mode: 'off',
    });
    expect(rule.status).toBe(201);
    // Any change empties the cache, so a miss proves nothing: the rule makes the read uncacheable.
    await withinASecond(async () => {
      const uncacheable = stats.uncacheable;
      await query(edgeUrl, sql);
      return stats.uncacheable === uncacheable + 1;
    });
    const before = { hits: stats.hits, uncacheable: stats.uncacheable };
    await query(edgeUrl, sql);
    await query(edgeUrl, other);
    await query(edgeUrl, other);
    // The rule names one template: the first stays uncached, the other is cached as before.
    expect({ hits: stats.hits, uncacheable: stats.uncacheable }).toEqual({
      hits: before.hits + 1,
      uncacheable: before.uncacheable + 1,
    });
  });

  it('deleting the cache refuses new connections', async () => {
    expect((await api(server, token).delete(`/v1/caches/${cacheId}`)).status).toBe(204);
    await withinASecond(async () => {
      try {
        await query(edgeUrl, 'SELECT 1');
        return false;
      } catch (error) {
        expect((error as { code?: string }).code).toBe('08004');
        return true;
      }
    });
  });
});

describe('a separate edge process', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let controlPlane: RunningServer;
  let edge: RunningServer;

  const edgeRole = `eg_edge_${randomBytes(4).toString('hex')}`;
  const warnings: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // The edge logs in as a role that may read the store and nothing more: no DDL, no writes.
    await asAdmin(database.url, [
      `CREATE ROLE ${edgeRole} LOGIN`,
      `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${edgeRole}`,
    ]);
    const edgeUrl = new URL(database.url);
    edgeUrl.username = edgeRole;
    // Started first, on a store no one migrated yet: it waits, saying why, instead of migrating.
    const edgeStarting = start(edgeUrl.toString(), 'edge', await freePort(), {}, warnings);
    await until(() => warnings.some((line) => line.includes('edgegate migrate')));
    controlPlane = await start(database.url, 'server', 0);
    edge = await edgeStarting;
  });

  afterAll(async () => {
    await edge?.close();
    await controlPlane?.close();
    await database?.drop();
    await asAdmin(ADMIN_DATABASE_URL, [`DROP ROLE IF EXISTS ${edgeRole}`]);
  });

  it('waited for the schema without DDL rights, and said what applies it', () => {
    const waiting = JSON.parse(warnings.find((line) => line.includes('edgegate migrate'))!) as {
      msg: string;
      pending: string[];
    };
    expect(waiting.msg).toMatch(/schema is \d+ migration\(s\) behind this edge/);
    expect(waiting.pending[0]).toBe('0001-foundation');
  });

  it('hears cache and rule changes from the control plane by LISTEN/NOTIFY', async () => {
    expect(controlPlane.edge).toBeNull();
    expect(edge.app).toBeNull();
    const token = await bearer(controlPlane, 'edge-two@example.com');
    const { cacheId, url } = await createLocalCache(controlPlane, token, edge, 'Origin');
    const sql = 'SELECT 6 * 7 AS answer';
    await query(url, sql);
    await query(url, sql);
    const stats = edge.edge!.stats(cacheId);
    expect(stats.hits).toBe(1);
    await api(controlPlane, token).patch(`/v1/caches/${cacheId}`, { defaultMode: 'off' });
    await withinASecond(async () => {
      const uncacheable = stats.uncacheable;
      await query(url, sql);
      return stats.uncacheable === uncacheable + 1;
    });
    // The edge's status listener answers for its operator.
    expect(await (await fetch(`${edge.url}/healthz`)).json()).toEqual({
      status: 'ok',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
    });
    expect(await (await fetch(`${edge.url}/metrics`)).text()).toContain(
      'edgegate_edge_queries_total',
    );
  });
});

describe('the edge on the embedded store (npm start)', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await start(undefined, 'all', await freePort());
  });

  afterAll(async () => {
    await server?.close();
  });

  it('serves a cache created through the API and hears its changes from PGlite', async () => {
    expect(server.store.kind).toBe('pglite');
    const token = await bearer(server, 'edge-embedded@example.com');
    const { cacheId, url } = await createLocalCache(server, token, server, 'Embedded');
    const sql = 'SELECT 3 * 14 AS answer';
    expect(await query(url, sql)).toEqual([{ answer: 42 }]);
    await query(url, sql);
    const stats = server.edge!.stats(cacheId);
    expect(stats.hits).toBe(1);
    await api(server, token).patch(`/v1/caches/${cacheId}`, { defaultMode: 'off' });
    await withinASecond(async () => {
      const uncacheable = stats.uncacheable;
      await query(url, sql);
      return stats.uncacheable === uncacheable + 1;
    });
  });
});

describe('the edge on two threads (EDGE_THREADS=2) on the embedded store', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await start(undefined, 'all', await freePort(), { EDGE_THREADS: '2' });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('serves the API connection string on both threads; metrics and Prometheus add both up', async () => {
    expect(server.edge!.threads).toBe(2);
    const token = await bearer(server, 'edge-threads@example.com');
    const { cacheId, url } = await createLocalCache(server, token, server, 'Threads');
    // Sixteen connections: the kernel spreads them over both threads, and each thread misses once.
    const sql = 'SELECT 2 * 21 AS answer';
    for (let i = 0; i < 16; i++) expect(await query(url, sql)).toEqual([{ answer: 42 }]);
    const metrics = await api(server, token).get(`/v1/caches/${cacheId}/metrics?window=15m`);
    const data = metrics.body.data as { queries: number; hits: number; misses: number };
    expect(data.queries).toBe(16);
    expect(data.hits + data.misses).toBe(16);
    expect(data.misses).toBeGreaterThanOrEqual(1);
    expect(data.misses).toBeLessThanOrEqual(2);
    const prometheus = await (await fetch(`${server.url}/metrics`)).text();
    expect(prometheus).toContain(
      `edgegate_edge_queries_total{cache_id="${cacheId}",result="hit"} ${data.hits}`,
    );
    expect(prometheus).toMatch(/edgegate_edge_cache_bytes [1-9]\d*/);
    const served = new RegExp(`edgegate_edge_bytes_served_total\\{cache_id="${cacheId}"\\} (\\d+)`);
    expect(Number(served.exec(prometheus)?.[1])).toBeGreaterThan(0);
    // Latency is a histogram that adds up both threads: every query once, in cumulative buckets.
    const series = (name: string, result: string, le?: string) =>
      new RegExp(
        `edgegate_edge_query_duration_seconds_${name}\\{cache_id="${cacheId}",result="${result}"${le === undefined ? '' : `,le="${le.replace('+', '\\+')}"`}\\} ([\\d.e-]+)`,
      ).exec(prometheus)?.[1];
    for (const [result, count] of [
      ['hit', data.hits],
      ['miss', data.misses],
    ] as const) {
      expect(Number(series('count', result))).toBe(count);
      expect(Number(series('bucket', result, '+Inf'))).toBe(count);
      expect(Number(series('bucket', result, '0.000025'))).toBeLessThanOrEqual(count);
      expect(Number(series('sum', result))).toBeGreaterThan(0);
    }
    expect(prometheus).not.toContain('quantile=');
    // A second scrape with no traffic between adds nothing.
    const again = await (await fetch(`${server.url}/metrics`)).text();
    expect(served.exec(again)?.[1]).toBe(served.exec(prometheus)?.[1]);
    expect(again).toContain(
      `edgegate_edge_queries_total{cache_id="${cacheId}",result="hit"} ${data.hits}`,
    );
    await api(server, token).patch(`/v1/caches/${cacheId}`, { defaultMode: 'off' });
    await withinASecond(async () => {
      await server.edge!.collect();
      const { uncacheable } = server.edge!.stats(cacheId);
      for (let i = 0; i < 4; i++) await query(url, sql);
      await server.edge!.collect();
      return server.edge!.stats(cacheId).uncacheable === uncacheable + 4;
    });
  });

  it('EDGE_THREADS must be a whole number from 1 to 64', () => {
    for (const [value, reason] of [
      ['0', 'must be at least 1'],
      ['65', 'must be at most 64'],
      ['1.5', 'must be a whole number of threads'],
      ['many', 'must be a number of threads'],
    ]) {
      expect(() =>
        loadConfig({ EDGE_THREADS: value as string, EDGEGATE_SECRET: 'a'.repeat(48) }),
      ).toThrow(`EDGE_THREADS (--edge-threads) ${reason as string}`);
    }
  });
});
