// GET /v1/caches/{id}/sessions and DELETE …/sessions/{sessionId} against a real edge in the same
// process (two threads): real pg and mysql2 clients show up with their user, database, counts and
// state; ending one gives its client 57P01 / MySQL 1927; another workspace's credential sees 404.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/main.ts';
import { signUp } from '../../src/services/accounts.ts';
import { createTestDatabase } from '../helpers/stores.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

interface Session {
  id: string;
  protocol: string;
  cacheId: string;
  user: string | null;
  database: string | null;
  clientAddress: string;
  startedAt: string;
  bytesIn: number;
  bytesOut: number;
  queries: number;
  state: string;
}

describe('the sessions of a cache on the edge', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: RunningServer;
  let owner: string;
  let stranger: string;
  let pgCache: string;
  let mysqlCache: string;

  async function tokenFor(email: string, scopes: string[]): Promise<string> {
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email,
      password: 'long enough pw',
    });
    const grant = await consentedGrant(server.app!, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes,
    });
    return (await accessTokenFor(server.app!, grant)).access_token;
  }

  async function call(
    token: string,
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    body?: object,
  ) {
    const response = await server.app!.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(body ? { payload: body } : {}),
    });
    return {
      status: response.statusCode,
      type: response.headers['content-type'],
      body: response.body === '' ? null : response.json(),
    };
  }

  async function sessions(cacheId: string, token = owner): Promise<Session[]> {
    const answer = await call(token, 'GET', `/v1/caches/${cacheId}/sessions`);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body.data as Session[];
  }

  /** Polls the list until `accept` holds (a session's state follows its traffic within ms). */
  async function until(cacheId: string, accept: (list: Session[]) => boolean): Promise<Session[]> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const list = await sessions(cacheId);
      if (accept(list)) return list;
      if (Date.now() > deadline) throw new Error(`sessions stayed ${JSON.stringify(list)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({
      DATABASE_URL: database.url,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-sessions-')),
      PORT: '0',
      EDGE_PG_PORT: '0',
      EDGE_MYSQL_PORT: '0',
      EDGE_THREADS: '2',
      EDGEGATE_SECRET: 's'.repeat(48),
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, { logger: pino({ level: 'silent' }), planes: 'all' });
    owner = await tokenFor('owner@sessions.example', ['caches:read', 'caches:write']);
    stranger = await tokenFor('stranger@sessions.example', ['caches:read', 'caches:write']);
    const create = async (type: string, port: number) => {
      const created = await call(owner, 'POST', '/v1/caches', {
        name: `${type} sessions`,
        type,
        hostname: '127.0.0.1',
        port,
        originTls: 'disable',
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      return created.body.data.id as string;
    };
    pgCache = await create('postgres', 5432);
    mysqlCache = await create('mariadb', 3306);
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  function pgClient(): pg.Client {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: server.edge!.port,
      user: 'postgres',
      database: 'test',
      application_name: pgCache,
    });
    return client;
  }

  it('lists each open session of the cache with who, where, how much and what it is doing', async () => {
    const client = pgClient();
    await client.connect();
    const other = await mysql.createConnection({
      host: '127.0.0.1',
      port: server.edge!.mysqlPort,
      user: `${mysqlCache}-root`,
      database: 'test',
    });
    try {
      await client.query('SELECT 1');
      const [listed] = await until(pgCache, (list) => list[0]?.state === 'idle');
      expect(listed).toMatchObject({
        protocol: 'postgres',
        cacheId: pgCache,
        user: 'postgres',
        database: 'test',
        clientAddress: '127.0.0.1',
        queries: 1,
        state: 'idle',
      });
      expect(listed!.bytesIn).toBeGreaterThan(0);
      expect(listed!.bytesOut).toBeGreaterThan(0);
      expect(Date.now() - Date.parse(listed!.startedAt)).toBeLessThan(30_000);

      // In flight, then idle inside a transaction.
      const sleeping = client.query('SELECT pg_sleep(0.4)');
      await until(pgCache, (list) => list[0]?.state === 'active');
      await sleeping;
      await client.query('BEGIN');
      await until(pgCache, (list) => list[0]?.state === 'in-transaction');
      await client.query('COMMIT');
      expect((await sessions(pgCache))[0]).toMatchObject({ state: 'idle', queries: 4 });

      // Each cache lists only its own sessions.
      await other.query('SELECT 1');
      const mysqlSessions = await sessions(mysqlCache);
      expect(mysqlSessions).toHaveLength(1);
      expect(mysqlSessions[0]).toMatchObject({
        protocol: 'mysql',
        user: 'root',
        database: 'test',
        state: 'idle',
      });
      expect((await sessions(pgCache)).map((s) => s.id)).toEqual([listed!.id]);
    } finally {
      await client.end();
      await other.end();
    }
    await until(pgCache, (list) => list.length === 0);
  });

  it('ends a session: the Postgres client reads 57P01, the MySQL client error 1927', async () => {
    const client = pgClient();
    await client.connect();
    const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
    const [session] = await until(pgCache, (list) => list.length === 1);
    const kill = await call(owner, 'DELETE', `/v1/caches/${pgCache}/sessions/${session!.id}`);
    expect(kill.status, JSON.stringify(kill.body)).toBe(204);
    const error = await ended;
    expect(error.code).toBe('57P01');
    expect(error.message).toContain('ended by an Edgegate administrator');
    await until(pgCache, (list) => list.length === 0);

    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: server.edge!.mysqlPort,
      user: `${mysqlCache}-root`,
      database: 'test',
    });
    connection.on('error', () => {});
    const [mysqlSession] = await sessions(mysqlCache);
    // A query in flight is cut with the error, not a bare EOF.
    const sleeping = connection.query('SELECT SLEEP(5)').then(
      () => null,
      (failure: Error & { errno?: number }) => failure,
    );
    await until(mysqlCache, (list) => list[0]?.state === 'active');
    expect(
      (await call(owner, 'DELETE', `/v1/caches/${mysqlCache}/sessions/${mysqlSession!.id}`)).status,
    ).toBe(204);
    expect((await sleeping)?.errno).toBe(1927);
    connection.destroy();
  });

  it("another workspace's credential gets 404, and so does a session asked for under another cache", async () => {
    const client = pgClient();
    await client.connect();
    client.on('error', () => {});
    try {
      const [session] = await until(pgCache, (list) => list.length === 1);
      const foreignList = await call(stranger, 'GET', `/v1/caches/${pgCache}/sessions`);
      expect(foreignList.status).toBe(404);
      expect(foreignList.type).toContain('application/problem+json');
      const foreignKill = await call(
        stranger,
        'DELETE',
        `/v1/caches/${pgCache}/sessions/${session!.id}`,
      );
      expect(foreignKill.status).toBe(404);
      // Under the other cache of the same workspace, the session does not exist.
      const elsewhere = await call(
        owner,
        'DELETE',
        `/v1/caches/${mysqlCache}/sessions/${session!.id}`,
      );
      expect(elsewhere.status).toBe(404);
      expect(elsewhere.body.type).toContain('session.not_found');
      // The session is still there and still works.
      expect((await client.query('SELECT 2 AS two')).rows[0].two).toBe(2);
      expect((await sessions(pgCache)).map((s) => s.id)).toEqual([session!.id]);
    } finally {
      await client.end();
    }
  });

  it('scopes: listing takes caches:read, ending takes caches:write', async () => {
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email: 'scoped@sessions.example',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(server.app!, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read', 'caches:write'],
    });
    const full = (await accessTokenFor(server.app!, grant)).access_token;
    const created = await call(full, 'POST', '/v1/caches', {
      name: 'scoped',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: 5432,
    });
    const id = created.body.data.id as string;
    const readOnly = await consentedGrant(server.app!, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    const readToken = (await accessTokenFor(server.app!, readOnly)).access_token;
    expect((await call(readToken, 'GET', `/v1/caches/${id}/sessions`)).status).toBe(200);
    const refused = await call(readToken, 'DELETE', `/v1/caches/${id}/sessions/1073741825`);
    expect(refused.status).toBe(403);
    const metricsOnly = await consentedGrant(server.app!, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['metrics:read'],
    });
    const metricsToken = (await accessTokenFor(server.app!, metricsOnly)).access_token;
    expect((await call(metricsToken, 'GET', `/v1/caches/${id}/sessions`)).status).toBe(403);
  });
});
