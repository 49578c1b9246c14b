// POST /v1/connection-strings: origin strings become edge strings per cache type, bad input gets a
// clear 400, other workspaces' caches are 404, and the password is never stored, logged or cached.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/app.ts';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { openTestStore } from '../helpers/stores.ts';
import { buildTestApp, TEST_SECRET, testResolver } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

const PROBLEMS = 'https://edgegate.dev/problems/';
const PASSWORD = 'p%40ss%2Fw%3Ard';

describe('POST /v1/connection-strings', () => {
  let store: Store;
  let app: FastifyInstance;
  let tokenA: string;
  let tokenB: string;
  let noCachesRead: string;
  const cacheOf: Record<string, string> = {};
  let n = 0;

  async function tenant(scopes = ['caches:read', 'caches:write']) {
    n += 1;
    const { user, personalWorkspace } = await signUp(store.db, {
      email: `cs${n}@example.com`,
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes,
    });
    return (await accessTokenFor(app, grant)).access_token;
  }

  const convert = (
    token: string,
    body: unknown,
    headers: Record<string, string> = {},
    target = app,
  ) =>
    target.inject({
      method: 'POST',
      url: '/v1/connection-strings',
      payload: body as object,
      headers: { authorization: `Bearer ${token}`, ...headers },
    });

  beforeAll(async () => {
    store = await openTestStore('postgres');
    app = await buildTestApp(store);
    tokenA = await tenant();
    tokenB = await tenant();
    noCachesRead = await tenant(['cacheRules:read']);
    for (const [type, port] of [
      ['postgres', 5432],
      ['mysql', 3306],
      ['mariadb', 3306],
      ['mssql', 1433],
    ] as const) {
      const created = await app.inject({
        method: 'POST',
        url: '/v1/caches',
        payload: { name: type, type, hostname: 'db.example.com', port },
        headers: { authorization: `Bearer ${tokenA}` },
      });
      cacheOf[type] = created.json().data.id;
    }
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('puts the cache id in application_name for Postgres, keeping everything else', async () => {
    const cacheId = cacheOf.postgres!;
    const response = await convert(tokenA, {
      cacheId,
      connectionString: `postgresql://app:${PASSWORD}@db.example.com:5432/shop?sslmode=require&application_name=old`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      data: {
        connectionString: `postgresql://app:${PASSWORD}@localhost:6432/shop?sslmode=require&application_name=${cacheId}`,
        warnings: [],
      },
    });
    expect(response.headers['cache-control']).toBe('no-store');
  });

  it('warns when the string requires TLS and the edge has no certificate', async () => {
    const cacheId = cacheOf.postgres!;
    const plainEdge = await buildTestApp(store, { edgeTls: null });
    const tlsEdge = await buildTestApp(store, {
      edgeTls: { certFile: '/etc/edgegate/edge.crt', keyFile: '/etc/edgegate/edge.key' },
    });
    try {
      const origin = (sslmode: string) =>
        `postgresql://app:${PASSWORD}@db.example.com:5432/shop?sslmode=${sslmode}`;
      for (const sslmode of ['require', 'verify-ca', 'verify-full']) {
        const response = await convert(
          tokenA,
          { cacheId, connectionString: origin(sslmode) },
          {},
          plainEdge,
        );
        expect(response.statusCode).toBe(200);
        const { warnings } = response.json().data as { warnings: string[] };
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain(`sslmode=${sslmode} needs TLS`);
        expect(warnings[0]).toContain('EDGE_TLS_CERT');
      }
      for (const sslmode of ['prefer', 'disable']) {
        const response = await convert(
          tokenA,
          { cacheId, connectionString: origin(sslmode) },
          {},
          plainEdge,
        );
        expect(response.json().data.warnings).toEqual([]);
      }
      const withTls = await convert(
        tokenA,
        { cacheId, connectionString: origin('require') },
        {},
        tlsEdge,
      );
      expect(withTls.json().data.warnings).toEqual([]);
    } finally {
      await plainEdge.close();
      await tlsEdge.close();
    }
  });

  it('prefixes the user with the cache id for MySQL and MariaDB', async () => {
    for (const type of ['mysql', 'mariadb'] as const) {
      const cacheId = cacheOf[type]!;
      const response = await convert(tokenA, {
        cacheId,
        connectionString: `${type}://app:${PASSWORD}@db.example.com:3306/shop?ssl=true`,
      });
      expect(response.statusCode, type).toBe(200);
      expect(response.json().data.connectionString).toBe(
        `${type}://${cacheId}-app:${PASSWORD}@localhost:6033/shop?ssl=true`,
      );
    }
  });

  it('converts ADO.NET strings for MS SQL caches, on port 1433 by default', async () => {
    const cacheId = cacheOf.mssql!;
    const response = await convert(tokenA, {
      cacheId,
      connectionString: 'Server=tcp:db.example.com,1433;Database=shop;User Id=sa;Password=x;',
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().data.connectionString).toBe(
      `Server=tcp:localhost,1433;Database=shop;User Id=${cacheId}-sa;Password=x;`,
    );
  });

  it.each([
    ['postgres', 'mysql://app:pw@db.example.com/shop', 'connection_string.type_mismatch'],
    ['mysql', 'mysql://db.example.com:3306/shop', 'connection_string.missing_user'],
    ['postgres', 'host=db.example.com dbname=shop', 'connection_string.invalid'],
    ['postgres', '   ', 'connection_string.empty'],
    ['postgres', 'postgres:///shop', 'connection_string.missing_host'],
  ])('a %s cache refuses %j with a 400 %s', async (type, connectionString, code) => {
    const response = await convert(tokenA, { cacheId: cacheOf[type], connectionString });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const problem = response.json();
    expect(problem.type).toBe(`${PROBLEMS}${code}`);
    expect(problem.detail.length).toBeGreaterThan(20);
    expect(problem.errors).toEqual([{ path: 'connectionString', message: problem.detail }]);
  });

  it.each([
    [{ connectionString: 'postgres://a@b/c' }, 'cacheId'],
    [{ cacheId: 'cch_x' }, 'connectionString'],
    [{ cacheId: 'cch_x', connectionString: 'x'.repeat(4097) }, 'connectionString'],
    [{ cacheId: 'cch_x', connectionString: 'postgres://a@b/c', type: 'postgres' }, '(root)'],
  ])('refuses %j with a 422 naming %s', async (body, path) => {
    const response = await convert(tokenA, body);
    expect(response.statusCode).toBe(422);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("answers 404 for another workspace's cache and for an unknown one", async () => {
    for (const cacheId of [cacheOf.postgres, 'cch_0000000000000000000000']) {
      const response = await convert(tokenB, {
        cacheId,
        connectionString: 'postgres://app:pw@db.example.com/shop',
      });
      expect(response.statusCode).toBe(404);
      expect(response.json().type).toBe(`${PROBLEMS}cache.not_found`);
    }
  });

  it('answers 403 insufficient_scope without caches:read', async () => {
    const response = await convert(noCachesRead, {
      cacheId: cacheOf.postgres,
      connectionString: 'postgres://app:pw@db.example.com/shop',
    });
    expect(response.statusCode).toBe(403);
    expect(response.headers['www-authenticate']).toContain('scope="caches:read"');
  });

  it('keeps no Idempotency-Key record, which would hold the password', async () => {
    const body = {
      cacheId: cacheOf.postgres,
      connectionString: `postgres://app:${PASSWORD}@db.example.com/shop`,
    };
    const headers = { 'idempotency-key': 'convert-1' };
    for (let i = 0; i < 2; i++) {
      const response = await convert(tokenA, body, headers);
      expect(response.statusCode).toBe(200);
      expect(response.headers['idempotent-replayed']).toBeUndefined();
    }
    const records = await store.db
      .selectFrom('idempotency_keys')
      .select('body')
      .where('key', '=', 'convert-1')
      .execute();
    expect(records).toEqual([]);
  });

  it('never writes the connection string to the log, even at trace level', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const logged = await buildApp({
      config: { publicUrl: 'http://localhost:8080', secret: TEST_SECRET, apiRateLimit: 10_000 },
      store,
      logger: pino({ level: 'trace' }, sink),
      resolveOrigin: testResolver,
    });
    try {
      await logged.ready();
      for (const connectionString of [
        `postgres://app:${PASSWORD}@db.example.com/shop`,
        `mysql://app:${PASSWORD}@db.example.com/shop`,
      ]) {
        const response = await convert(
          tokenA,
          { cacheId: cacheOf.postgres, connectionString },
          {},
          logged,
        );
        expect(response.statusCode).toBeLessThan(500);
      }
    } finally {
      await logged.close();
    }
    const log = lines.join('');
    expect(log).toContain('/v1/connection-strings');
    expect(log).not.toContain(PASSWORD);
    expect(log).not.toContain('db.example.com/shop');
  });
});
