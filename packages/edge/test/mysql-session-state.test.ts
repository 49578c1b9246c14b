// A cached result reaches only a MySQL session in the same state, through the edge with mysql2:
// time zone, character set, sql_mode and current database are part of the key whether a SET, USE,
// COM_INIT_DB, COM_CHANGE_USER, COM_RESET_CONNECTION or a stored procedure changed them; sessions
// in the same state still share results.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newCacheId } from './helpers/cache-config.ts';
import { mariadbCache, startMysqlEdge, type RunningMysqlEdge } from './helpers/mysql-edge.ts';
import { prng } from './helpers/prng.ts';
import { startThrowawayMariadb, type ThrowawayMariadb } from './helpers/throwaway-mariadb.ts';

const ORIGIN = { host: '127.0.0.1', port: 3306, user: 'root' };
const suffix = randomBytes(4).toString('hex');
const dbA = `edge_ms_a_${suffix}`;
const dbB = `edge_ms_b_${suffix}`;
// What each tenant sees through the view (its rows' hour in the session's time zone is its number).
const ROWS: Record<number, string[]> = { 0: [], 1: ['one', 'one-b'], 2: ['two'], 3: ['three'] };
const TENANT_READ = 'SELECT v FROM tenant_rows ORDER BY v';
const TENANT_READ_PREPARED = 'SELECT v FROM tenant_rows WHERE tenant > ? ORDER BY v';

type Conn = mysql.Connection;
type Mode = 'query' | 'execute';

let edge: RunningMysqlEdge;
let admin: Conn;
let id: string;
const conns: Conn[] = [];

async function viaEdge(database = dbA): Promise<Conn> {
  const conn = await mysql.createConnection({
    host: edge.host,
    port: edge.port,
    user: `${id}-root`,
    database,
    dateStrings: true,
    multipleStatements: true,
  });
  conns.push(conn);
  return conn;
}

async function value(conn: Conn, mode: Mode, sql: string, params: unknown[] = []) {
  const [result] =
    mode === 'query'
      ? await conn.query(sql, params)
      : await conn.execute(sql, params as mysql.ExecuteValues);
  const [row] = result as Record<string, unknown>[];
  return row === undefined ? undefined : Object.values(row)[0];
}

async function tenantRows(conn: Conn, prepared: boolean): Promise<string[]> {
  const [result] = prepared
    ? await conn.execute(TENANT_READ_PREPARED, [0])
    : await conn.query(TENANT_READ);
  return (result as { v: string }[]).map((row) => row.v);
}

// events.at as a session in the server's default time zone reads it.
async function atInDefaultZone(): Promise<string> {
  const [results] = await admin.query(
    `SET time_zone = DEFAULT; SELECT CAST(at AS CHAR) AS at FROM ${dbA}.events WHERE id = 1`,
  );
  const [row] = (results as unknown[])[1] as { at: string }[];
  return (row as { at: string }).at;
}

function stats() {
  const s = edge.runtime.stats(id);
  return { hits: s.hits, misses: s.misses };
}

beforeAll(async () => {
  admin = await mysql.createConnection({ ...ORIGIN, multipleStatements: true });
  await admin.query(`CREATE DATABASE ${dbA}; CREATE DATABASE ${dbB}`);
  await admin.query(
    `SET time_zone = '+00:00';
     CREATE TABLE ${dbA}.events (id int PRIMARY KEY, at TIMESTAMP NULL, v varchar(20));
     INSERT INTO ${dbA}.events VALUES (1, '2000-01-01 00:00:00', 'caf\u00e9');
     CREATE TABLE ${dbA}.shared (id int PRIMARY KEY, v varchar(20));
     CREATE TABLE ${dbB}.shared (id int PRIMARY KEY, v varchar(20));
     INSERT INTO ${dbA}.shared VALUES (1, 'a-one');
     INSERT INTO ${dbB}.shared VALUES (1, 'b-one');
     CREATE TABLE ${dbA}.tenant_data (tenant int, v varchar(20), at TIMESTAMP NULL);
     INSERT INTO ${dbA}.tenant_data VALUES
       (1, 'one', '2000-01-01 00:00:00'), (1, 'one-b', '2000-01-01 00:00:00'),
       (2, 'two', '2000-01-01 00:00:00'), (3, 'three', '2000-01-01 00:00:00');
     CREATE VIEW ${dbA}.tenant_rows AS
       SELECT tenant, v FROM ${dbA}.tenant_data WHERE tenant = HOUR(at);
     CREATE PROCEDURE ${dbA}.set_tenant(n int)
       SET SESSION time_zone = CONCAT('+0', n, ':00');
     CREATE TABLE ${dbA}.audited (id int);
     CREATE TRIGGER ${dbA}.audited_zone AFTER INSERT ON ${dbA}.audited FOR EACH ROW
       SET SESSION time_zone = '+03:00'`,
  );
  edge = await startMysqlEdge({ caches: [] });
});

beforeEach(() => {
  id = newCacheId();
  edge.source.set(mariadbCache({ id }));
});

afterAll(async () => {
  await Promise.all(conns.splice(0).map((conn) => conn.end().catch(() => undefined)));
  await edge?.close();
  await admin?.query(`DROP DATABASE IF EXISTS ${dbA}; DROP DATABASE IF EXISTS ${dbB}`);
  await admin?.end();
});

describe.each<Mode>(['query', 'execute'])('session variables in the key, with %s', (mode) => {
  const AT = 'SELECT at FROM events WHERE id = 1';

  it('time_zone: each session reads a TIMESTAMP in its own zone, and the same zone shares', async () => {
    const utc = await viaEdge();
    const plus5 = await viaEdge();
    await utc.query(`SET time_zone = '+00:00'`);
    await plus5.query(`SET SESSION time_zone = '+05:00'`);
    for (let round = 0; round < 2; round++) {
      expect(await value(utc, mode, AT)).toBe('2000-01-01 00:00:00');
      expect(await value(plus5, mode, AT)).toBe('2000-01-01 05:00:00');
    }
    expect(stats()).toEqual({ hits: 2, misses: 2 });
    const alsoPlus5 = await viaEdge();
    await alsoPlus5.query(`SET @@session.time_zone = '+05:00'`);
    expect(await value(alsoPlus5, mode, AT)).toBe('2000-01-01 05:00:00');
    expect(stats()).toEqual({ hits: 3, misses: 2 });
    // Changing zone again is seen too, also inside a transaction and after ROLLBACK (SET is not
    // transactional).
    await utc.query(`START TRANSACTION; SET time_zone = '+05:00'; ROLLBACK`);
    expect(await value(utc, mode, AT)).toBe('2000-01-01 05:00:00');
    await plus5.query(`SET time_zone = DEFAULT`);
    expect(await value(plus5, mode, AT)).toBe(await atInDefaultZone());
  });

  it('character set: SET NAMES changes what a read returns, so it is in the key', async () => {
    const latin1 = await viaEdge();
    const utf8 = await viaEdge();
    await latin1.query('SET NAMES latin1');
    await utf8.query('SET NAMES utf8mb4 COLLATE utf8mb4_bin');
    const literal = `SELECT COLLATION('x') AS c FROM events WHERE id = 1`;
    for (let round = 0; round < 2; round++) {
      expect(await value(latin1, mode, literal)).toBe('latin1_swedish_ci');
      expect(await value(utf8, mode, literal)).toBe('utf8mb4_bin');
    }
    // The result's own bytes and column charset differ too.
    const fields = async (conn: Conn) => {
      const [, columns] =
        mode === 'query'
          ? await conn.query('SELECT v FROM events WHERE id = 1')
          : await conn.execute('SELECT v FROM events WHERE id = 1');
      return columns?.[0]?.characterSet;
    };
    expect(await fields(latin1)).toBe(8);
    expect(await fields(utf8)).not.toBe(8);
    expect(await fields(latin1)).toBe(8);
    expect(stats()).toEqual({ hits: 3, misses: 4 });
  });

  it('sql_mode: ANSI_QUOTES and PIPES_AS_CONCAT change the answer, so they are in the key', async () => {
    const ansi = await viaEdge();
    const plain = await viaEdge();
    // Both sessions set sql_mode, so sql_mode is all that tells their states apart.
    await ansi.query(`SET SESSION sql_mode = 'ANSI_QUOTES,PIPES_AS_CONCAT'`);
    await plain.query(`SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'`);
    const quoted = 'SELECT "v" AS x FROM shared WHERE id = 1';
    const piped = `SELECT v || '!' AS x FROM shared WHERE id = 1`;
    for (let round = 0; round < 2; round++) {
      expect(await value(plain, mode, quoted)).toBe('v');
      expect(await value(ansi, mode, quoted)).toBe('a-one');
      expect(await value(plain, mode, piped)).toBe(0);
      expect(await value(ansi, mode, piped)).toBe('a-one!');
    }
    expect(stats().hits).toBe(4);
  });
});

describe('sharing', () => {
  it('sessions that SET the tenant’s time zone before every read share results', async () => {
    const sessions = await Promise.all([1, 2, 3, 4].map(() => viaEdge()));
    for (let round = 0; round < 4; round++) {
      for (const [index, conn] of sessions.entries()) {
        const tenant = 1 + ((index + round) % 3);
        await conn.query(`SET time_zone = '+0${tenant}:00'`);
        expect(await tenantRows(conn, true)).toEqual(ROWS[tenant]);
      }
    }
    // Three tenants, three misses; every other read is a hit.
    expect(stats()).toEqual({ hits: 13, misses: 3 });
  });
});

describe('state changed where the edge cannot see it', () => {
  it.each<Mode>(['query', 'execute'])(
    'a trigger of a write that sets time_zone (%s)',
    async (mode) => {
      const AT = 'SELECT at FROM events WHERE id = 1';
      const other = await viaEdge();
      const writer = await viaEdge();
      const fresh = await value(other, mode, AT);
      expect(await value(writer, mode, AT)).toBe(fresh);
      expect(stats().hits).toBe(1);
      if (mode === 'query') await writer.query('INSERT INTO audited VALUES (1)');
      else await writer.execute('INSERT INTO audited VALUES (?)', [1]);
      expect(await value(writer, mode, AT)).toBe('2000-01-01 03:00:00');
      expect(await value(other, mode, AT)).toBe(fresh);
    },
  );

  const CREATE = 'CREATE TEMPORARY TABLE shared (id int, v varchar(20))';
  it.each<[string, Mode, (conn: Conn) => Promise<unknown>]>([
    ['CREATE TEMPORARY TABLE', 'query', (conn) => conn.query(CREATE)],
    ['a prepared CREATE TEMPORARY TABLE', 'execute', (conn) => conn.execute(CREATE)],
    [
      'CREATE OR REPLACE TEMPORARY TABLE',
      'query',
      (conn) => conn.query('CREATE OR REPLACE TEMPORARY TABLE shared (id int, v varchar(20))'),
    ],
    [
      'PREPARE … FROM and EXECUTE',
      'query',
      (conn) => conn.query(`PREPARE make FROM '${CREATE}'; EXECUTE make`),
    ],
  ])(
    'a temporary table that hides a table is never served to another session (%s)',
    async (_how, mode, create) => {
      const READ = 'SELECT v FROM shared WHERE id = 1';
      // All three in the same state as far as session variables tell.
      const sameState = async () => {
        const conn = await viaEdge();
        await conn.query(`SET time_zone = '+01:00'`);
        return conn;
      };
      const before = await sameState();
      expect(await value(before, mode, READ)).toBe('a-one');
      const hiding = await sameState();
      await create(hiding);
      await hiding.query(`INSERT INTO shared VALUES (1, 'temporary')`);
      expect(await value(hiding, mode, READ)).toBe('temporary');
      expect(await value(hiding, mode, READ)).toBe('temporary');
      const after = await sameState();
      expect(await value(after, mode, READ)).toBe('a-one');
      expect(await value(after, mode, READ)).toBe('a-one');
      expect(await value(before, mode, READ)).toBe('a-one');
    },
  );
});

describe('the current database in the key', () => {
  const READ = 'SELECT v FROM shared WHERE id = 1';

  it('USE switches which table a bare name reads, in both directions', async () => {
    const conn = await viaEdge(dbA);
    expect(await value(conn, 'query', READ)).toBe('a-one');
    await conn.query(`USE ${dbB}`);
    expect(await value(conn, 'query', READ)).toBe('b-one');
    expect(await value(conn, 'execute', READ)).toBe('b-one');
    await conn.query(`USE ${dbA}`);
    expect(await value(conn, 'query', READ)).toBe('a-one');
    expect(await value(conn, 'query', READ)).toBe('a-one');
    const other = await viaEdge(dbB);
    expect(await value(other, 'query', READ)).toBe('b-one');
    expect(await value(other, 'query', READ)).toBe('b-one');
    expect(stats().hits).toBeGreaterThanOrEqual(2);
  });

  it('COM_INIT_DB (the mariadb client’s `use`) switches it too', async () => {
    const warm = await viaEdge(dbA);
    expect(await value(warm, 'query', READ)).toBe('a-one');
    const warmB = await viaEdge(dbB);
    expect(await value(warmB, 'query', READ)).toBe('b-one');
    const { stdout } = await promisify(execFile)(
      'mariadb',
      [
        '--protocol=tcp',
        '-h',
        edge.host,
        '-P',
        String(edge.port),
        '-u',
        `${id}-root`,
        '-D',
        dbA,
        '-N',
        '-B',
        '-e',
        `${READ}; ${READ}; use ${dbB}; ${READ}; ${READ}; use ${dbA}; ${READ}`,
      ],
      { timeout: 20_000 },
    );
    expect(stdout.trim().split('\n')).toEqual(['a-one', 'a-one', 'b-one', 'b-one', 'a-one']);
  });

  it('COM_CHANGE_USER to another database, and COM_RESET_CONNECTION, are seen', async () => {
    const conn = await viaEdge(dbA);
    await conn.query(`SET time_zone = '+05:00'`);
    expect(await value(conn, 'query', READ)).toBe('a-one');
    expect(await value(conn, 'query', 'SELECT at FROM events')).toBe('2000-01-01 05:00:00');
    await conn.changeUser({ user: `${id}-root`, database: dbB });
    expect(await value(conn, 'query', READ)).toBe('b-one');
    await conn.query(`USE ${dbA}; SET time_zone = '+05:00'`);
    expect(await value(conn, 'query', 'SELECT at FROM events')).toBe('2000-01-01 05:00:00');
    await conn.reset();
    expect(await value(conn, 'query', 'SELECT at FROM events')).toBe(await atInDefaultZone());
  });
});

describe.each([
  ['text', false],
  ['prepared', true],
])('a stored procedure that sets the tenant (%s)', (_label, prepared) => {
  const setTenant = (conn: Conn, tenant: number) =>
    prepared
      ? conn.execute('CALL set_tenant(?)', [tenant])
      : conn.query(`CALL set_tenant(${tenant})`);

  it('never serves one tenant’s rows to another', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await setTenant(b, 2);
    await setTenant(a, 1);
    expect(await tenantRows(a, prepared)).toEqual(ROWS[1]);
    expect(await tenantRows(b, prepared)).toEqual(ROWS[2]);
    expect(await tenantRows(a, prepared)).toEqual(ROWS[1]);
    expect(await tenantRows(b, prepared)).toEqual(ROWS[2]);
    await setTenant(a, 2);
    expect(await tenantRows(a, prepared)).toEqual(ROWS[2]);
    await setTenant(b, 1);
    expect(await tenantRows(b, prepared)).toEqual(ROWS[1]);
    await setTenant(b, 3);
    expect(await tenantRows(b, prepared)).toEqual(ROWS[3]);
  });

  it('sessions racing: every read returns its own tenant’s rows', async () => {
    const sessions = await Promise.all([1, 2, 3, 4].map(() => viaEdge()));
    const random = prng(prepared ? 0x5eed : 0xbeef);
    const plans = sessions.map(() =>
      Array.from({ length: 15 }, () => ({ tenant: 1 + random(3), how: random(3) })),
    );
    await Promise.all(
      sessions.map(async (conn, index) => {
        for (const { tenant, how } of plans[index] as { tenant: number; how: number }[]) {
          if (how === 0) await setTenant(conn, tenant);
          else if (how === 1) await conn.query(`SET time_zone = '+0${tenant}:00'`);
          else await conn.query(`CALL set_tenant(${tenant}); DO 0`);
          expect(await tenantRows(conn, prepared)).toEqual(ROWS[tenant]);
          expect(await tenantRows(conn, !prepared)).toEqual(ROWS[tenant]);
        }
      }),
    );
    // The probe of MariaDB's variables takes tens of milliseconds on a loaded machine.
  }, 60_000);

  it('sessions that set the same tenant share results', async () => {
    const sessions = await Promise.all([1, 2, 3, 4, 5, 6].map(() => viaEdge()));
    const tenantOf = (index: number) => 1 + (index % 2);
    // CALL may write anything: it invalidates every read of the cache, so the reads come after.
    for (const [index, conn] of sessions.entries()) await setTenant(conn, tenantOf(index));
    for (let round = 0; round < 3; round++) {
      for (const [index, conn] of sessions.entries()) {
        expect(await tenantRows(conn, prepared)).toEqual(ROWS[tenantOf(index)]);
      }
    }
    // Two tenants: two misses; every other read is a hit.
    expect(stats()).toEqual({ hits: 16, misses: 2 });
  });
});

describe('the user in the key (a throwaway MariaDB with password users)', () => {
  const OTHER = 'other_user';
  const OTHER_PASSWORD = `other-${suffix}`;
  // The view filters by the connected user: the edge sees only the view's name.
  const READ = 'SELECT v FROM my_rows';
  let server: ThrowawayMariadb;

  beforeAll(async () => {
    server = await startThrowawayMariadb();
    await server.sql(
      [
        `CREATE USER ${OTHER}@'%' IDENTIFIED BY '${OTHER_PASSWORD}'`,
        `GRANT ALL ON app.* TO ${OTHER}@'%'`,
        'CREATE TABLE app.owned (owner varchar(40), v varchar(20))',
        `INSERT INTO app.owned VALUES ('${server.users.native}', 'native-row'), ('${OTHER}', 'other-row')`,
        `CREATE SQL SECURITY INVOKER VIEW app.my_rows AS
           SELECT v FROM app.owned WHERE owner = SUBSTRING_INDEX(USER(), '@', 1)`,
      ].join(';\n'),
    );
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
  });

  beforeEach(() => {
    edge.source.set(mariadbCache({ id, hostname: server.host, port: server.port }));
  });

  const login = async (user: string, password: string) => {
    const conn = await mysql.createConnection({
      host: edge.host,
      port: edge.port,
      user: `${id}-${user}`,
      password,
      database: server.database,
    });
    conns.push(conn);
    return conn;
  };

  it.each<Mode>(['query', 'execute'])(
    'two users never get each other’s rows, and COM_CHANGE_USER switches (%s)',
    async (mode) => {
      const native = await login(server.users.native, server.password(server.users.native));
      const other = await login(OTHER, OTHER_PASSWORD);
      expect(await value(native, mode, READ)).toBe('native-row');
      expect(await value(native, mode, READ)).toBe('native-row');
      expect(await value(other, mode, READ)).toBe('other-row');
      expect(await value(other, mode, READ)).toBe('other-row');
      expect(stats()).toEqual({ hits: 2, misses: 2 });
      await native.changeUser({ user: `${id}-${OTHER}`, password: OTHER_PASSWORD });
      expect(await value(native, mode, READ)).toBe('other-row');
      await other.changeUser({
        user: `${id}-${server.users.native}`,
        password: server.password(server.users.native),
      });
      expect(await value(other, mode, READ)).toBe('native-row');
    },
  );
});
