// The MySQL edge's cache against the machine's MariaDB, through mysql2 (text `query` and prepared
// `execute`): what is cached and what never is, invalidation by database.table when writes commit,
// and the cache's rules and metrics.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queryHash, type EdgeCacheConfig, type EdgeRule } from '../src/index.ts';
import { newCacheId } from './helpers/cache-config.ts';
import { mariadbCache, startMysqlEdge, type RunningMysqlEdge } from './helpers/mysql-edge.ts';

const ORIGIN = { host: '127.0.0.1', port: 3306, user: 'root' };
const suffix = randomBytes(4).toString('hex');
const dbA = `edge_mc_a_${suffix}`;
const dbB = `edge_mc_b_${suffix}`;
// mysql2's view of the server status flags: SERVER_STATUS_IN_TRANS.
const IN_TRANS = 0x0001;

type Conn = mysql.Connection;
type Mode = 'query' | 'execute';
const MODES: Mode[] = ['query', 'execute'];

let edge: RunningMysqlEdge;
let admin: Conn;
let id: string;
const conns: Conn[] = [];

function cache(changes: Partial<EdgeCacheConfig> = {}): EdgeCacheConfig {
  return mariadbCache({ id, ...changes });
}

async function viaEdge(database = dbA): Promise<Conn> {
  const conn = await mysql.createConnection({
    host: edge.host,
    port: edge.port,
    user: `${id}-root`,
    database,
    multipleStatements: true,
  });
  conns.push(conn);
  return conn;
}

async function rows(conn: Conn, mode: Mode, sql: string, params: unknown[] = []) {
  const [result] =
    mode === 'query'
      ? await conn.query(sql, params)
      : await conn.execute(sql, params as mysql.ExecuteValues);
  return result as Record<string, unknown>[];
}

async function value(conn: Conn, mode: Mode, sql: string, params: unknown[] = []) {
  const [row] = await rows(conn, mode, sql, params);
  return row === undefined ? undefined : Object.values(row)[0];
}

function stats() {
  const s = edge.runtime.stats(id);
  return { hits: s.hits, misses: s.misses, uncacheable: s.uncacheable };
}

// A table of the test's own, with rows (id, v) = (1, 'one'), (2, 'two').
async function freshTable(db = dbA): Promise<string> {
  const name = `t_${randomBytes(3).toString('hex')}`;
  await admin.query(
    `CREATE TABLE ${db}.${name} (id int PRIMARY KEY, v varchar(40)) ENGINE=InnoDB;
     INSERT INTO ${db}.${name} VALUES (1, 'one'), (2, 'two')`,
  );
  return name;
}

beforeAll(async () => {
  admin = await mysql.createConnection({ ...ORIGIN, multipleStatements: true });
  await admin.query(`CREATE DATABASE ${dbA}; CREATE DATABASE ${dbB}`);
  await admin.query(
    `CREATE FUNCTION ${dbA}.first_v() RETURNS varchar(40) READS SQL DATA
       RETURN (SELECT v FROM ${dbA}.shared WHERE id = 1)`,
  );
  await admin.query(
    `CREATE TABLE ${dbA}.shared (id int PRIMARY KEY, v varchar(40));
     CREATE TABLE ${dbB}.shared (id int PRIMARY KEY, v varchar(40));
     INSERT INTO ${dbA}.shared VALUES (1, 'a-one');
     INSERT INTO ${dbB}.shared VALUES (1, 'b-one')`,
  );
  edge = await startMysqlEdge({ caches: [] });
});

beforeEach(() => {
  id = newCacheId();
  edge.source.set(cache());
});

// Each test's connections end with it (the origin allows only so many at once).
afterEach(async () => {
  await Promise.all(conns.splice(0).map((conn) => conn.end().catch(() => undefined)));
});

afterAll(async () => {
  await Promise.all(conns.splice(0).map((conn) => conn.end().catch(() => undefined)));
  await edge?.close();
  await admin?.query(`DROP DATABASE IF EXISTS ${dbA}; DROP DATABASE IF EXISTS ${dbB}`);
  await admin?.end();
});

describe.each(MODES)('what is cached, with %s', (mode) => {
  it('a plain SELECT is answered from the cache on repeat, per text and parameters', async () => {
    const t = await freshTable();
    const conn = await viaEdge();
    const read = (n: number) =>
      mode === 'query'
        ? value(conn, mode, `SELECT v FROM ${t} WHERE id = ${n}`)
        : value(conn, mode, `SELECT v FROM ${t} WHERE id = ?`, [n]);
    expect(await read(1)).toBe('one');
    expect(await read(1)).toBe('one');
    expect(await read(2)).toBe('two');
    expect(await read(2)).toBe('two');
    expect(await read(1)).toBe('one');
    expect(stats()).toEqual({ hits: 3, misses: 2, uncacheable: 0 });
    // A hit is what the origin holds no more: the write bypassed the edge, so only the TTL bounds it.
    await admin.query(`UPDATE ${dbA}.${t} SET v = 'changed' WHERE id = 1`);
    expect(await read(1)).toBe('one');
  });

  // Each is read twice with the data changed directly on the origin in between: the second read
  // must see the change, and neither may count as a hit.
  it.each([
    ['FOR UPDATE', 'SELECT v FROM T WHERE id = 1 FOR UPDATE'],
    ['LOCK IN SHARE MODE', 'SELECT v FROM T WHERE id = 1 LOCK IN SHARE MODE'],
    ['a user-variable assignment', 'SELECT @edge_v := v FROM T WHERE id = 1'],
    ['a user-variable read', 'SELECT v FROM T WHERE id = 1 AND @edge_unset IS NULL'],
    ['a system-variable read', 'SELECT v, @@time_zone FROM T WHERE id = 1'],
    ['NOW()', 'SELECT v, NOW() FROM T WHERE id = 1'],
    ['CURRENT_TIMESTAMP', 'SELECT v, CURRENT_TIMESTAMP FROM T WHERE id = 1'],
    ['RAND()', 'SELECT v, RAND() FROM T WHERE id = 1'],
    ['UUID()', 'SELECT v, UUID() FROM T WHERE id = 1'],
    ['CONNECTION_ID()', 'SELECT v, CONNECTION_ID() FROM T WHERE id = 1'],
    ['LAST_INSERT_ID()', 'SELECT v, LAST_INSERT_ID() FROM T WHERE id = 1'],
    ['FOUND_ROWS()', 'SELECT v, FOUND_ROWS() FROM T WHERE id = 1'],
    ['SLEEP()', 'SELECT v, SLEEP(0) FROM T WHERE id = 1'],
    [
      'GET_LOCK()',
      `SELECT v, GET_LOCK('edge_${suffix}', 0), RELEASE_LOCK('edge_${suffix}') FROM T WHERE id = 1`,
    ],
    ['a stored function', `SELECT v, ${dbA}.first_v() FROM T WHERE id = 1`],
    ['an unqualified stored function', 'SELECT v, first_v() FROM T WHERE id = 1'],
    [
      'information_schema',
      `SELECT v FROM T WHERE id = 1 AND EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${dbA}')`,
    ],
    ['mysql', 'SELECT v FROM T WHERE id = 1 AND EXISTS (SELECT 1 FROM mysql.user)'],
    [
      'performance_schema',
      'SELECT v FROM T WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM performance_schema.accounts WHERE 1 = 0)',
    ],
    ['sys', 'SELECT v FROM T WHERE id = 1 AND EXISTS (SELECT 1 FROM sys.version)'],
  ])('%s is never served from the cache', async (_what, template) => {
    const t = await freshTable();
    const sql = template.replace(' T ', ` ${t} `);
    const conn = await viaEdge();
    expect(await value(conn, mode, sql)).toBe('one');
    await admin.query(`UPDATE ${dbA}.${t} SET v = 'changed' WHERE id = 1`);
    expect(await value(conn, mode, sql)).toBe('changed');
    expect(stats()).toMatchObject({ hits: 0, misses: 0, uncacheable: 2 });
  });

  it('SELECT … INTO @v is not cached and sets the variable each time', async () => {
    const t = await freshTable();
    const conn = await viaEdge();
    const into = `SELECT v INTO @edge_into FROM ${t} WHERE id = 1`;
    await rows(conn, mode, into);
    expect(await value(conn, 'query', 'SELECT @edge_into')).toBe('one');
    await admin.query(`UPDATE ${dbA}.${t} SET v = 'changed' WHERE id = 1`);
    await rows(conn, mode, into);
    expect(await value(conn, 'query', 'SELECT @edge_into')).toBe('changed');
    expect(stats().hits).toBe(0);
  });
});

describe('a session that ends with a write in flight', () => {
  it('a write whose answer never came, its client gone, invalidates once the origin is done', async () => {
    const t = await freshTable();
    const writer = await viaEdge();
    writer.on('error', () => undefined);
    const reader = await viaEdge();
    expect(await value(reader, 'query', `SELECT v FROM ${t} WHERE id = 1`)).toBe('one');
    // Committed at once; the text ends (and the edge counts its writes) only after the sleep.
    // (mysql2 leaves the query of a destroyed connection unsettled: it is not awaited.)
    void writer
      .query(`BEGIN; UPDATE ${t} SET v = 'gone' WHERE id = 1; COMMIT; SELECT SLEEP(1)`)
      .catch(() => undefined);
    for (let waited = 0; ; waited += 10) {
      const [direct] = await admin.query(`SELECT v FROM ${dbA}.${t} WHERE id = 1`);
      if ((direct as { v: string }[])[0]?.v === 'gone') break;
      if (waited > 5_000) throw new Error('the write did not commit');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    writer.destroy();
    // The cached row goes once the origin has run the rest and closed the session's connection.
    for (
      let waited = 0;
      (await value(reader, 'query', `SELECT v FROM ${t} WHERE id = 1`)) !== 'gone';
      waited += 20
    ) {
      if (waited > 5_000) throw new Error('the cached row stayed stale');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
});

describe.each(MODES)('invalidation, with %s', (mode) => {
  const read = (conn: Conn, t: string) =>
    mode === 'query'
      ? value(conn, mode, `SELECT v FROM ${t} WHERE id = 1`)
      : value(conn, mode, `SELECT v FROM ${t} WHERE id = ?`, [1]);
  const write = (conn: Conn, t: string, v: string) =>
    mode === 'query'
      ? rows(conn, mode, `UPDATE ${t} SET v = '${v}' WHERE id = 1`)
      : rows(conn, mode, `UPDATE ${t} SET v = ? WHERE id = ?`, [v, 1]);

  it('an autocommit write makes the next read fresh, on its connection and on another', async () => {
    const t = await freshTable();
    const writer = await viaEdge();
    const reader = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    expect(await read(writer, t)).toBe('one');
    expect(stats().hits).toBe(1);
    await write(writer, t, 'two-a');
    expect(await read(writer, t)).toBe('two-a');
    expect(await read(reader, t)).toBe('two-a');
    await write(reader, t, 'two-b');
    expect(await read(writer, t)).toBe('two-b');
  });

  // In replication mode the follower tells the edge which tables are under each view
  // (viewTables); a write through an updatable view then stamps those tables too.
  it('a write through an updatable view invalidates reads of the table under it', async () => {
    const t = await freshTable();
    const view = `${t}_v`;
    await admin.query(`CREATE VIEW ${dbA}.${view} AS SELECT id, v FROM ${dbA}.${t}`);
    edge.source.set(cache({ viewTables: { [`${dbA}.${view}`]: [`${dbA}.${t}`] } }));
    const reader = await viaEdge();
    const writer = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    expect(await read(reader, t)).toBe('one');
    await rows(writer, mode, `UPDATE ${view} SET v = 'through the view' WHERE id = 1`);
    expect(await read(reader, t)).toBe('through the view');
    expect(stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('unqualified names are the current database’s; qualified writes reach other databases', async () => {
    await admin.query(`UPDATE ${dbA}.shared SET v = 'a-one'; UPDATE ${dbB}.shared SET v = 'b-one'`);
    const inA = await viaEdge(dbA);
    const inB = await viaEdge(dbB);
    const readShared = (conn: Conn) => read(conn, 'shared');
    expect(await readShared(inA)).toBe('a-one');
    expect(await readShared(inB)).toBe('b-one');
    expect(await readShared(inB)).toBe('b-one');
    await write(inA, 'shared', 'a-two');
    expect(await readShared(inA)).toBe('a-two');
    expect(await readShared(inB)).toBe('b-one');
    await write(inA, `${dbB}.shared`, 'b-two');
    expect(await readShared(inB)).toBe('b-two');
    expect(await readShared(inA)).toBe('a-two');
    // After USE, an unqualified write is to the new current database (a text: a statement
    // prepared before the USE would keep the old one, see below).
    await inA.query(`USE ${dbB}`);
    await rows(inA, 'query', `UPDATE shared SET v = 'b-three' WHERE id = 1`);
    expect(await readShared(inB)).toBe('b-three');
    await inA.query(`USE ${dbA}`);
    await write(inA, 'shared', 'a-one');
    await write(inB, 'shared', 'b-one');
    expect(await readShared(inA)).toBe('a-one');
    expect(await readShared(inB)).toBe('b-one');
  });

  it('a transaction’s writes invalidate when it commits; a read after its write is its own', async () => {
    const t = await freshTable();
    const writer = await viaEdge();
    const reader = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    await writer.query('START TRANSACTION');
    await write(writer, t, 'pending');
    expect(await read(writer, t)).toBe('pending');
    expect(await read(writer, t)).toBe('pending');
    expect(await read(reader, t)).toBe('one');
    expect(await read(reader, t)).toBe('one');
    await writer.query('COMMIT');
    expect(await read(reader, t)).toBe('pending');
    expect(await read(writer, t)).toBe('pending');
  });

  // REPEATABLE READ, MySQL's default: a transaction reads from the snapshot its first read took. A
  // read after another session's write returns the row as it was before that write: it must not be
  // stored as fresh (nor served to others as the current row). A read-only transaction's reads
  // are cached, as read when it began.
  it.each([
    'START TRANSACTION',
    'START TRANSACTION WITH CONSISTENT SNAPSHOT',
    'SET autocommit = 0',
  ])(
    'a read inside a transaction (%s) is never stored fresher than its snapshot',
    async (begin) => {
      const t = await freshTable();
      const reader = await viaEdge();
      const writer = await viaEdge();
      const other = await viaEdge();
      await reader.query(begin);
      await reader.query(`SELECT COUNT(*) FROM shared`); // takes the snapshot
      await write(writer, t, 'after');
      expect(await read(reader, t)).toBe('one');
      expect(await read(reader, t)).toBe('one');
      await reader.query('COMMIT');
      if (begin.startsWith('SET')) await reader.query('SET autocommit = 1');
      expect(await read(other, t)).toBe('after');
      expect(await read(reader, t)).toBe('after');
    },
  );

  it('a read-only transaction’s reads are stored, and served to the next one', async () => {
    const t = await freshTable();
    const first = await viaEdge();
    const second = await viaEdge();
    await first.query('START TRANSACTION');
    expect(await read(first, t)).toBe('one');
    await first.query('COMMIT');
    const before = stats();
    await second.query('START TRANSACTION');
    expect(await read(second, t)).toBe('one');
    await second.query('COMMIT');
    expect(stats().hits).toBe(before.hits + 1);
  });

  it('a rolled-back transaction leaves the old value, and caching works after it', async () => {
    const t = await freshTable();
    const writer = await viaEdge();
    const reader = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    await writer.query('START TRANSACTION');
    await write(writer, t, 'undone');
    expect(await read(writer, t)).toBe('undone');
    await writer.query('ROLLBACK');
    expect(await read(writer, t)).toBe('one');
    expect(await read(reader, t)).toBe('one');
    const before = stats().hits;
    expect(await read(reader, t)).toBe('one');
    expect(stats().hits).toBe(before + 1);
  });

  it('a read inside a transaction after its write is never a cached answer', async () => {
    const t = await freshTable();
    const conn = await viaEdge();
    expect(await read(conn, t)).toBe('one');
    expect(await read(conn, t)).toBe('one');
    await conn.query('START TRANSACTION');
    await write(conn, t, 'mine');
    const hits = stats().hits;
    expect(await read(conn, t)).toBe('mine');
    expect(await read(conn, t)).toBe('mine');
    expect(stats().hits).toBe(hits);
    await conn.query('COMMIT');
  });

  it.each(['START TRANSACTION', 'SET autocommit = 0'])(
    'a transaction’s snapshot is never stored for others (REPEATABLE READ, %s)',
    async (begin) => {
      const t = await freshTable();
      const inTransaction = await viaEdge();
      const other = await viaEdge();
      await inTransaction.query(begin);
      expect(await read(inTransaction, t)).toBe('one');
      await write(other, t, 'newer');
      // Its snapshot still says 'one'; that answer must not become everyone's.
      expect(await read(inTransaction, t)).toBe('one');
      expect(await read(other, t)).toBe('newer');
      await inTransaction.query('COMMIT');
      expect(await read(inTransaction, t)).toBe('newer');
    },
  );

  it('autocommit=0: writes are the session’s own until COMMIT, then everyone’s', async () => {
    const t = await freshTable();
    const writer = await viaEdge();
    const reader = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    await writer.query('SET autocommit = 0');
    await write(writer, t, 'uncommitted');
    expect(await read(writer, t)).toBe('uncommitted');
    expect(await read(reader, t)).toBe('one');
    await writer.query('COMMIT');
    expect(await read(reader, t)).toBe('uncommitted');
    await write(writer, t, 'rolled back');
    await writer.query('ROLLBACK');
    expect(await read(writer, t)).toBe('uncommitted');
    expect(await read(reader, t)).toBe('uncommitted');
  });

  it.each([
    ['DDL', (t: string) => `CREATE TABLE ${t}_implicit (id int)`],
    ['SET autocommit = 1', () => 'SET autocommit = 1'],
  ])('%s inside a transaction commits it, and its writes invalidate', async (_what, commit) => {
    const t = await freshTable();
    const writer = await viaEdge();
    const reader = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    await writer.query('SET autocommit = 0');
    await writer.query('START TRANSACTION');
    await write(writer, t, 'implicitly committed');
    expect(await read(reader, t)).toBe('one');
    await writer.query(commit(t));
    expect(await read(reader, t)).toBe('implicitly committed');
  });

  it('ALTER, TRUNCATE, RENAME and DROP invalidate what was read from the table', async () => {
    const t = await freshTable();
    const conn = await viaEdge();
    const other = await viaEdge();
    const all = (c: Conn) => rows(c, mode, `SELECT * FROM ${t} ORDER BY id`);
    expect(await all(conn)).toEqual([
      { id: 1, v: 'one' },
      { id: 2, v: 'two' },
    ]);
    await other.query(`ALTER TABLE ${t} ADD COLUMN w int DEFAULT 7`);
    expect(await all(conn)).toEqual([
      { id: 1, v: 'one', w: 7 },
      { id: 2, v: 'two', w: 7 },
    ]);
    await other.query(`TRUNCATE TABLE ${t}`);
    expect(await all(conn)).toEqual([]);
    const replacement = await freshTable();
    await admin.query(`UPDATE ${dbA}.${replacement} SET v = 'replaced'`);
    await other.query(`RENAME TABLE ${t} TO ${t}_old, ${replacement} TO ${t}`);
    expect(await all(conn)).toEqual([
      { id: 1, v: 'replaced' },
      { id: 2, v: 'replaced' },
    ]);
    await other.query(`DROP TABLE ${t}`);
    await expect(all(conn)).rejects.toMatchObject({ code: 'ER_NO_SUCH_TABLE' });
    await other.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v varchar(40))`);
    expect(await all(conn)).toEqual([]);
  });

  it('CALL of a procedure that writes invalidates every read', async () => {
    const t = await freshTable();
    const procedure = `bump_${t}`;
    await admin.query(
      `CREATE PROCEDURE ${dbA}.${procedure}() UPDATE ${dbA}.${t} SET v = 'called' WHERE id = 1`,
    );
    const conn = await viaEdge();
    expect(await read(conn, t)).toBe('one');
    expect(await read(conn, t)).toBe('one');
    if (mode === 'query') await conn.query(`CALL ${procedure}()`);
    else await conn.execute(`CALL ${procedure}()`);
    expect(await read(conn, t)).toBe('called');
  });

  it('each write of a multi-statement text invalidates', async () => {
    const t = await freshTable();
    const u = await freshTable();
    const conn = await viaEdge();
    const other = await viaEdge();
    expect(await read(other, t)).toBe('one');
    expect(await read(other, u)).toBe('one');
    await conn.query(
      `UPDATE ${t} SET v = 'multi-t' WHERE id = 1; SELECT 1; UPDATE ${u} SET v = 'multi-u' WHERE id = 1`,
    );
    expect(await read(other, t)).toBe('multi-t');
    expect(await read(other, u)).toBe('multi-u');
  });

  it.each([
    ['REPLACE', `REPLACE INTO T VALUES (1, 'new')`],
    [
      'INSERT … ON DUPLICATE KEY UPDATE',
      `INSERT INTO T VALUES (1, 'x') ON DUPLICATE KEY UPDATE v = 'new'`,
    ],
    ['INSERT … SELECT', `INSERT INTO T SELECT 3, 'new' FROM DUAL`],
    ['DELETE', 'DELETE FROM T WHERE id = 1'],
    ['a multi-table UPDATE through an alias', `UPDATE U a JOIN T b ON a.id = b.id SET b.v = 'new'`],
    ['a multi-table DELETE through an alias', 'DELETE b FROM U a JOIN T b ON a.id = b.id'],
  ])('%s invalidates the table it writes', async (_what, template) => {
    const t = await freshTable();
    const u = await freshTable();
    const conn = await viaEdge();
    const all = () => rows(conn, mode, `SELECT id, v FROM ${t} ORDER BY id`);
    const before = await all();
    expect(await all()).toEqual(before);
    const sql = template.replace(' T ', ` ${t} `).replace(' U ', ` ${u} `);
    if (mode === 'query') await conn.query(sql);
    else await conn.execute(sql);
    const [direct] = await admin.query(`SELECT id, v FROM ${dbA}.${t} ORDER BY id`);
    expect(direct).not.toEqual(before);
    expect(await all()).toEqual(direct);
  });

  it('a text that writes and then fails still invalidates, at once or at its COMMIT', async () => {
    const t = await freshTable();
    const writer = await viaEdge();
    const reader = await viaEdge();
    expect(await read(reader, t)).toBe('one');
    await expect(
      writer.query(`UPDATE ${t} SET v = 'before the error' WHERE id = 1; SELECT nope FROM ${t}`),
    ).rejects.toMatchObject({ code: 'ER_BAD_FIELD_ERROR' });
    expect(await read(reader, t)).toBe('before the error');
    await expect(
      writer.query(
        `START TRANSACTION; UPDATE ${t} SET v = 'in the failed text' WHERE id = 1; SELECT nope FROM ${t}`,
      ),
    ).rejects.toMatchObject({ code: 'ER_BAD_FIELD_ERROR' });
    expect(await read(reader, t)).toBe('before the error');
    expect(await read(reader, t)).toBe('before the error');
    await writer.query('COMMIT');
    expect(await read(reader, t)).toBe('in the failed text');
  });

  it('a read that was on its way while a write committed is not stored', async () => {
    const t = await freshTable();
    // The view sleeps on each row it reads, after the statement took its snapshot of the table.
    const slow = `slow_${t}`;
    await admin.query(
      `CREATE VIEW ${dbA}.${slow} AS SELECT id, v FROM ${dbA}.${t} WHERE SLEEP(0.6) = 0`,
    );
    const sql =
      mode === 'query'
        ? `SELECT s.v FROM ${slow} s JOIN ${t} ON ${t}.id = s.id WHERE s.id = 1`
        : `SELECT s.v FROM ${slow} s JOIN ${t} ON ${t}.id = s.id WHERE s.id = ?`;
    const slowReader = await viaEdge();
    const writer = await viaEdge();
    const inFlight = value(slowReader, mode, sql, mode === 'query' ? [] : [1]);
    // Sleeping on a row means the statement has read it, so its snapshot is taken.
    for (let sleeping = 0; sleeping === 0;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const [found] = await admin.query(
        `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
          WHERE STATE = 'User sleep' AND INFO LIKE ?`,
        [`%${slow}%`],
      );
      sleeping = Number((found as { n: number }[])[0]?.n);
    }
    await write(writer, t, 'written meanwhile');
    // The race happened: the slow read saw the table before the write.
    expect(await inFlight).toBe('one');
    const later = await viaEdge();
    expect(await value(later, mode, sql, mode === 'query' ? [] : [1])).toBe('written meanwhile');
    expect(stats().hits).toBe(0);
  });
});

describe('prepared statements', () => {
  const READ = 'SELECT v FROM shared WHERE id = ?';
  const WRITE = 'UPDATE shared SET v = ? WHERE id = ?';

  it('keep the database they were prepared in, for reads and writes, after USE', async () => {
    await admin.query(`UPDATE ${dbA}.shared SET v = 'a-one'; UPDATE ${dbB}.shared SET v = 'b-one'`);
    const readerInA = await viaEdge(dbA);
    expect(await value(readerInA, 'execute', READ, [1])).toBe('a-one');
    // Logged in to A, prepared in B: its answer is B's rows.
    const movedFirst = await viaEdge(dbA);
    await movedFirst.query(`USE ${dbB}`);
    expect(await value(movedFirst, 'execute', READ, [1])).toBe('b-one');
    // Prepared in A, then moved to B, in the same state as movedFirst: the server still reads A.
    const movedLater = await viaEdge(dbA);
    expect(await value(movedLater, 'execute', READ, [1])).toBe('a-one');
    await movedLater.execute(WRITE, ['a-one', 1]);
    await movedLater.query(`USE ${dbB}`);
    expect(await value(movedLater, 'execute', READ, [1])).toBe('a-one');
    expect(await value(movedLater, 'execute', READ, [1])).toBe('a-one');
    // Its write goes to A's table too, and A's cached reads see it.
    await movedLater.execute(WRITE, ['a-two', 1]);
    expect(await value(readerInA, 'execute', READ, [1])).toBe('a-two');
    expect(await value(movedFirst, 'execute', READ, [1])).toBe('b-one');
    await admin.query(`UPDATE ${dbA}.shared SET v = 'a-one'`);
  });
});

describe('rules and metrics', () => {
  const READ = (t: string) => `SELECT v FROM ${t} WHERE id = 1`;

  it('defaultMode off caches nothing', async () => {
    edge.source.set(cache({ defaultMode: 'off' }));
    const t = await freshTable();
    const conn = await viaEdge();
    expect(await value(conn, 'query', READ(t))).toBe('one');
    expect(await value(conn, 'execute', READ(t))).toBe('one');
    await admin.query(`UPDATE ${dbA}.${t} SET v = 'changed' WHERE id = 1`);
    expect(await value(conn, 'query', READ(t))).toBe('changed');
    expect(await value(conn, 'execute', READ(t))).toBe('changed');
    expect(stats()).toEqual({ hits: 0, misses: 0, uncacheable: 4 });
  });

  it('with caching off, a KILL QUERY after white space, in any case, still takes the edge id', async () => {
    edge.source.set(cache({ defaultMode: 'off' }));
    const a = await viaEdge();
    const b = await viaEdge();
    const sleeping = a.query('SELECT SLEEP(10) AS slept').then(
      () => ({ errno: 0 }),
      (error: { errno?: number }) => ({ errno: error.errno }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await b.query(` \n\t kill   query ${a.threadId}`);
    expect(await sleeping).toEqual({ errno: 1317 }); // ER_QUERY_INTERRUPTED
  });

  // Caching off relays statements without following their effects on the session's state: such a
  // session must not cache once caching is on, or it would store under a key that lies.
  it.each(MODES)(
    'a session that ran with caching off never caches, even once it is on (%s)',
    async (mode) => {
      edge.source.set(cache({ defaultMode: 'off' }));
      const t = await freshTable();
      const read = `SELECT CONCAT(v, ' ', FROM_UNIXTIME(0)) AS v FROM ${t} WHERE id = 1`;
      const shifted = await viaEdge();
      if (mode === 'query') await shifted.query("SET time_zone = '+05:00'");
      else await shifted.execute("SET time_zone = '+05:00'");
      edge.source.set(cache());
      expect(await value(shifted, mode, read)).toBe('one 1970-01-01 05:00:00');
      expect(await value(shifted, mode, read)).toBe('one 1970-01-01 05:00:00');
      const plain = await viaEdge();
      await plain.query("SET time_zone = '+00:00'");
      expect(await value(plain, mode, read)).toBe('one 1970-01-01 00:00:00');
      expect(await value(plain, mode, read)).toBe('one 1970-01-01 00:00:00');
      expect(stats()).toMatchObject({ hits: 1, misses: 1 });
    },
  );

  it('a table rule set to off keeps that table, and joins with it, uncached', async () => {
    const off = await freshTable();
    const on = await freshTable();
    edge.source.set(cache({ rules: [rule('table', `${dbA}.${off}`, 'off')] }));
    const conn = await viaEdge();
    const twice = async (sql: string) => {
      const before = stats();
      await conn.query(sql);
      await conn.query(sql);
      const after = stats();
      return {
        hits: after.hits - before.hits,
        uncacheable: after.uncacheable - before.uncacheable,
      };
    };
    expect(await twice(READ(off))).toEqual({ hits: 0, uncacheable: 2 });
    expect(await twice(READ(on))).toEqual({ hits: 1, uncacheable: 0 });
    expect(
      await twice(`SELECT a.v FROM ${on} a JOIN ${off} b ON a.id = b.id WHERE a.id = 1`),
    ).toEqual({ hits: 0, uncacheable: 2 });
    // The bare name matches too.
    edge.source.set(cache({ rules: [rule('table', off, 'off')] }));
    expect(await twice(READ(off))).toEqual({ hits: 0, uncacheable: 2 });
  });

  it('an entry expires after its TTL', async () => {
    edge.source.set(cache({ defaultTtlSeconds: 1 }));
    const t = await freshTable();
    const conn = await viaEdge();
    expect(await value(conn, 'query', READ(t))).toBe('one');
    // Written behind the edge's back: only the TTL ends the stale answer.
    await admin.query(`UPDATE ${dbA}.${t} SET v = 'changed' WHERE id = 1`);
    expect(await value(conn, 'query', READ(t))).toBe('one');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await value(conn, 'query', READ(t))).toBe('changed');
    expect(stats()).toEqual({ hits: 1, misses: 2, uncacheable: 0 });
  });

  it('a manual rule’s own TTL applies', async () => {
    const t = await freshTable();
    edge.source.set(cache({ rules: [{ ...rule('table', t, 'manual'), ttlSeconds: 1 }] }));
    const conn = await viaEdge();
    expect(await value(conn, 'execute', READ(t))).toBe('one');
    await admin.query(`UPDATE ${dbA}.${t} SET v = 'changed' WHERE id = 1`);
    expect(await value(conn, 'execute', READ(t))).toBe('one');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await value(conn, 'execute', READ(t))).toBe('changed');
  });

  it.each(MODES)(
    'untilWrite serves inside a transaction with the session’s IN_TRANS flag (%s)',
    async (mode) => {
      const t = await freshTable();
      edge.source.set(cache({ rules: [rule('table', t, 'auto')] }));
      const conn = await viaEdge();
      const status = () =>
        (conn as unknown as { connection: { serverStatus: number } }).connection.serverStatus;
      expect(await value(conn, mode, READ(t))).toBe('one');
      expect(status() & IN_TRANS).toBe(0);
      await conn.query('START TRANSACTION');
      const hits = stats().hits;
      expect(await value(conn, mode, READ(t))).toBe('one');
      expect(stats().hits).toBe(hits + 1);
      expect(status() & IN_TRANS).toBe(IN_TRANS);
      expect(await value(conn, 'query', 'SELECT @@in_transaction')).toBe(1);
      await conn.query('COMMIT');
      expect(await value(conn, 'query', 'SELECT @@in_transaction')).toBe(0);
      // A hit outside the transaction carries no IN_TRANS flag, though stored inside one.
      expect(await value(conn, mode, READ(t))).toBe('one');
      expect(status() & IN_TRANS).toBe(0);
      await conn.query('START TRANSACTION');
      await conn.query(`UPDATE ${t} SET v = 'in tx' WHERE id = 2`);
      expect(await value(conn, mode, READ(t))).toBe('one');
      expect(stats().hits).toBe(hits + 2);
      await conn.query('COMMIT');
    },
  );

  it('transactionPolicy never: not served inside a transaction', async () => {
    const t = await freshTable();
    edge.source.set(
      cache({ rules: [{ ...rule('table', t, 'auto'), transactionPolicy: 'never' }] }),
    );
    const conn = await viaEdge();
    expect(await value(conn, 'query', READ(t))).toBe('one');
    expect(await value(conn, 'query', READ(t))).toBe('one');
    expect(stats().hits).toBe(1);
    await conn.query('START TRANSACTION');
    expect(await value(conn, 'query', READ(t))).toBe('one');
    expect(stats().hits).toBe(1);
    await conn.query('COMMIT');
    expect(await value(conn, 'query', READ(t))).toBe('one');
    expect(stats().hits).toBe(2);
  });

  it('a template rule matches every text differing only in constants; a query rule one text', async () => {
    const t = await freshTable();
    const conn = await viaEdge();
    await conn.query(`SELECT v FROM ${t} WHERE id = 1`);
    const [template] = edge.runtime.stats(id).drain()?.templates ?? [];
    const exact = `SELECT v FROM ${t} WHERE id = 2`;
    edge.source.set(
      cache({
        rules: [
          rule('template', template?.fingerprint ?? '', 'off'),
          { ...rule('query', queryHash(exact), 'manual'), ttlSeconds: 30 },
        ],
      }),
    );
    const before = stats();
    for (const sql of [`SELECT v FROM ${t} WHERE id = 1`, `SELECT v FROM ${t} WHERE id = 3`]) {
      await conn.query(sql);
      await conn.query(sql);
    }
    await conn.query(exact);
    await conn.query(exact);
    const after = stats();
    expect(after.uncacheable - before.uncacheable).toBe(4);
    expect(after.hits - before.hits).toBe(1);
  });

  it('counts queries per template, constants replaced', async () => {
    const t = await freshTable();
    const conn = await viaEdge();
    for (const n of [1, 2, 1, 2, 1]) await conn.query(`SELECT v FROM ${t} WHERE id = ${n}`);
    for (const n of [1, 2]) await conn.execute(`SELECT v FROM ${t} WHERE id = ?`, [n]);
    await conn.query(`UPDATE ${t} SET v = 'x' WHERE id = 3`);
    expect(stats()).toEqual({ hits: 3, misses: 4, uncacheable: 1 });
    const templates = edge.runtime.stats(id).drain()?.templates ?? [];
    const counts = Object.fromEntries(templates.map((tpl) => [tpl.normalized, tpl.count]));
    expect(counts).toEqual({
      [`SELECT v FROM ${t} WHERE id = ?`]: 7,
      [`UPDATE ${t} SET v = ? WHERE id = ?`]: 1,
    });
    // No constant a client sent is kept.
    expect(JSON.stringify(templates)).not.toMatch(/'x'|= [0-9]/);
  });
});

function rule(kind: EdgeRule['kind'], key: string, mode: EdgeRule['mode']): EdgeRule {
  return { kind, key, mode, ttlSeconds: null, transactionPolicy: 'untilWrite' };
}
