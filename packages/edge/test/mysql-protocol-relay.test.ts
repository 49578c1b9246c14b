// The MySQL protocol through the edge with real clients (mysql2, the mariadb connector, the mariadb
// command-line client, PyMySQL): text and binary results, several result sets, every parameter
// type, long data, cursors, large packets, LOAD DATA LOCAL, KILL QUERY, the utility commands, and
// sequence ids. The machine's MariaDB serves most; a throwaway one serves what needs reconfiguring.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import mariadb, { type ConnectionConfig } from 'mariadb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes } from '../src/mysql/protocol/index.ts';
import { mariadbCache, startMysqlEdge, type RunningMysqlEdge } from './helpers/mysql-edge.ts';
import { RawMysqlClient, errorOf } from './helpers/mysql-raw-client.ts';
import { pythonWithPymysql } from './helpers/pymysql.ts';
import { startThrowawayMariadb, type ThrowawayMariadb } from './helpers/throwaway-mariadb.ts';

const CACHE = 'cch_proto';
const OTHER_CACHE = 'cch_proto2';
const PRIVATE_CACHE = 'cch_protopriv';
const PRIVATE_CACHED = 'cch_protoprivc'; // the same server, reads cached
// Tables of this run only, on the shared server's `test` database.
const suffix = randomBytes(4).toString('hex');
const TYPES = `relay_types_${suffix}`;
const ROWS = `relay_rows_${suffix}`;
const BIG = 20 * 1024 * 1024;

let edge: RunningMysqlEdge;
let origin: ThrowawayMariadb;

function run(
  file: string,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { encoding: 'utf8', timeout: 30_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : ((error as { code?: number }).code ?? 1),
          stdout,
          stderr,
        }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

const mysql2Options = (extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions => ({
  host: '127.0.0.1',
  port: edge.port,
  user: `${CACHE}-root`,
  database: 'test',
  ...extra,
});

const mariadbOptions = (extra: ConnectionConfig = {}): ConnectionConfig => ({
  host: '127.0.0.1',
  port: edge.port,
  user: `${CACHE}-root`,
  database: 'test',
  ...extra,
});

const privateLogin = (extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions => ({
  host: '127.0.0.1',
  port: edge.port,
  user: `${PRIVATE_CACHE}-${origin.users.native}`,
  password: origin.password(origin.users.native),
  database: origin.database,
  ...extra,
});

beforeAll(async () => {
  origin = await startThrowawayMariadb();
  // Large packets: 20 MiB values need more than the default 16 MiB.
  await origin.sql('SET GLOBAL max_allowed_packet = 64 * 1024 * 1024');
  edge = await startMysqlEdge({
    caches: [
      mariadbCache({ id: CACHE }),
      mariadbCache({ id: OTHER_CACHE }),
      mariadbCache({ id: PRIVATE_CACHE, port: origin.port, defaultMode: 'off' }),
      mariadbCache({ id: PRIVATE_CACHED, port: origin.port }),
    ],
    // Room for a 20 MiB answer (an entry may take 1/16 of the budget).
    cacheMaxBytes: 512 * 1024 * 1024,
  });
  const setup = await mysql.createConnection(mysql2Options({ multipleStatements: true }));
  await setup.query(
    `create table ${ROWS} (id int primary key, name varchar(40));
     insert into ${ROWS} values (1, 'anvil'), (2, 'bellows'), (3, 'chisel')`,
  );
  await setup.end();
}, 120_000);

afterAll(async () => {
  const teardown = await mysql
    .createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' })
    .catch(() => null);
  await teardown?.query(`drop table if exists ${TYPES}, ${ROWS}`);
  await teardown?.end();
  await edge?.close();
  await origin?.stop();
});

describe('three clients through the edge', () => {
  it('mysql2 reads with text and prepared statements, and writes', async () => {
    const conn = await mysql.createConnection(mysql2Options());
    const [text] = await conn.query(`select id, name from ${ROWS} order by id`);
    expect(text).toEqual([
      { id: 1, name: 'anvil' },
      { id: 2, name: 'bellows' },
      { id: 3, name: 'chisel' },
    ]);
    const [prepared] = await conn.execute(`select name from ${ROWS} where id = ?`, [2]);
    expect(prepared).toEqual([{ name: 'bellows' }]);
    const [written] = await conn.execute(`insert into ${ROWS} values (?, ?)`, [10, 'drill']);
    expect((written as mysql.ResultSetHeader).affectedRows).toBe(1);
    const [after] = await conn.query(`select name from ${ROWS} where id = 10`);
    expect(after).toEqual([{ name: 'drill' }]);
    await conn.query(`delete from ${ROWS} where id = 10`);
    await conn.end();
  });

  it('the mariadb connector pipelines PREPARE and EXECUTE (statement id 0xffffffff)', async () => {
    const conn = await mariadb.createConnection(mariadbOptions({ pipelining: true }));
    // execute() sends COM_STMT_PREPARE and COM_STMT_EXECUTE(-1) in one write.
    const rows = await conn.execute(`select name from ${ROWS} where id = ?`, [3]);
    expect(rows).toEqual([{ name: 'chisel' }]);
    const again = await Promise.all(
      [1, 2, 3].map((id) => conn.execute(`select id, name from ${ROWS} where id = ?`, [id])),
    );
    expect(again.map((result) => (result as { name: string }[])[0]?.name)).toEqual([
      'anvil',
      'bellows',
      'chisel',
    ]);
    const text = await conn.query(`select count(*) as n from ${ROWS}`);
    expect(text).toEqual([{ n: 3n }]);
    await conn.end();
  });

  it('the mariadb command-line client runs queries, `use`, `status` and a prepared statement', async () => {
    const base = ['--no-defaults', '-h127.0.0.1', `-P${edge.port}`, `-u${CACHE}-root`, '--batch'];
    const select = await run('mariadb', [
      ...base,
      'test',
      '-e',
      `select name from ${ROWS} order by id`,
    ]);
    expect(select).toMatchObject({ code: 0, stdout: 'name\nanvil\nbellows\nchisel\n' });
    // `use` is COM_INIT_DB; `status` sends COM_STATISTICS; PREPARE/EXECUTE are text statements.
    const script = [
      'use mysql',
      'select database()',
      'status',
      `prepare s from 'select name from test.${ROWS} where id = ?'`,
      'set @id = 1',
      'execute s using @id',
    ].join(';\n');
    const session = await run('mariadb', [...base, 'test'], `${script};\n`);
    expect(session.stderr).toBe('');
    expect(session.code).toBe(0);
    expect(session.stdout).toContain('database()\nmysql\n');
    expect(session.stdout).toMatch(/Uptime:\s+\d+/);
    expect(session.stdout).toContain('name\nanvil\n');
    const admin = await run('mariadb-admin', [...base.slice(0, -1), 'ping', 'status']);
    expect(admin.stdout).toContain('mysqld is alive');
    expect(admin.stdout).toMatch(/Uptime: \d+ +Threads: \d+/);
  });

  it('PyMySQL reads, and changes database with COM_INIT_DB', async () => {
    const script = `
import pymysql, sys
conn = pymysql.connect(host='127.0.0.1', port=${edge.port}, user='${CACHE}-root', database='test')
with conn.cursor() as cur:
    cur.execute('select name from ${ROWS} where id = %s', (1,))
    print(cur.fetchone()[0])
    cur.execute('select count(*) from ${ROWS}')
    print(cur.fetchone()[0])
conn.select_db('mysql')
with conn.cursor() as cur:
    cur.execute('select database()')
    print(cur.fetchone()[0])
conn.ping()
conn.close()
`;
    const result = await run(pythonWithPymysql(), ['-c', script]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('anvil\n3\nmysql\n');
  });
});

describe('COM_QUERY', () => {
  it('several statements in one COM_QUERY give several result sets', async () => {
    const conn = await mysql.createConnection(mysql2Options({ multipleStatements: true }));
    const [results] = await conn.query(
      `select 1 as a; select name from ${ROWS} where id in (1, 2) order by id; set @x = 5; select @x as x`,
    );
    expect(results).toEqual([
      [{ a: 1 }],
      [{ name: 'anvil' }, { name: 'bellows' }],
      expect.objectContaining({ affectedRows: 0 }),
      [{ x: 5 }],
    ]);
    // A failing statement in the middle ends the answer with its ERR; the session goes on.
    await expect(conn.query('select 1; select * from no_such_table_x; select 2')).rejects.toThrow(
      /no_such_table_x/,
    );
    const [after] = await conn.query('select 3 as three');
    expect(after).toEqual([{ three: 3 }]);
    await conn.end();
  });

  it('a stored procedure returns several result sets', async () => {
    const conn = await mysql.createConnection(mysql2Options());
    const proc = `relay_proc_${suffix}`;
    await conn.query(`create procedure ${proc}() begin select 1 as a; select 2 as b; end`);
    try {
      const [results] = await conn.query(`call ${proc}()`);
      expect((results as unknown[]).slice(0, 2)).toEqual([[{ a: 1 }], [{ b: 2 }]]);
    } finally {
      await conn.query(`drop procedure ${proc}`);
      await conn.end();
    }
  });
});

describe('prepared statements', () => {
  const values = {
    ti: -128,
    tu: 255,
    si: -32768,
    su: 65535,
    mi: -8388608,
    mu: 16777215,
    i: -2147483648,
    iu: 4294967295,
    bi: '-9223372036854775808',
    bu: '18446744073709551615',
    dec: '12345678901234.56789',
    f: 1.5,
    d: 3.141592653589793,
    s: 'zażółć gęślą jaźń ✓',
    bl: Buffer.from([0, 1, 2, 0xfe, 0xff]),
    dt: '2024-02-29',
    dtm: '2024-02-29 23:59:58.123456',
    ts: '2024-03-01 00:00:01',
    tm: '-838:59:59',
    n: null,
    j: '{"a": [1, 2, {"b": null}]}',
  };
  const columns = `ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned,
    mi mediumint, mu mediumint unsigned, i int, iu int unsigned, bi bigint, bu bigint unsigned,
    \`dec\` decimal(30,5), f float, d double, s varchar(100), bl longblob, dt date, dtm datetime(6),
    ts timestamp null, tm time, n int null, j json`;
  const names = Object.keys(values).map((name) => (name === 'dec' ? '`dec`' : name));

  beforeAll(async () => {
    const conn = await mysql.createConnection(mysql2Options());
    await conn.query(`create table ${TYPES} (id int primary key, ${columns})`);
    await conn.end();
  });

  it('mysql2 binds every parameter type and reads them back in binary rows', async () => {
    const conn = await mysql.createConnection(
      mysql2Options({ supportBigNumbers: true, bigNumberStrings: true, dateStrings: true }),
    );
    const placeholders = names.map(() => '?').join(', ');
    await conn.execute(
      `insert into ${TYPES} (id, ${names.join(', ')}) values (1, ${placeholders})`,
      Object.values(values),
    );
    const [rows] = await conn.execute(`select ${names.join(', ')} from ${TYPES} where id = ?`, [1]);
    const [row] = rows as Record<string, unknown>[];
    expect(row).toEqual({
      ...values,
      dec: '12345678901234.56789',
      ti: -128,
      iu: 4294967295,
      bi: '-9223372036854775808',
      bu: '18446744073709551615',
      // MariaDB's JSON is LONGTEXT: the text comes back as it went in.
      j: values.j,
    });
    // The same values as parameters of a read: the edge keys by them, and the origin compares them.
    const [matched] = await conn.execute(
      `select id from ${TYPES} where ti = ? and tu = ? and bu = ? and d = ? and s = ? and bl = ? and dtm = ? and tm = ? and n <=> ?`,
      [values.ti, values.tu, values.bu, values.d, values.s, values.bl, values.dtm, values.tm, null],
    );
    expect(matched).toEqual([{ id: 1 }]);
    await conn.end();
  });

  it('the mariadb connector binds every type, including Date and BigInt', async () => {
    const conn = await mariadb.createConnection(
      mariadbOptions({ bigIntAsNumber: false, decimalAsNumber: false, dateStrings: true }),
    );
    const placeholders = names.map(() => '?').join(', ');
    await conn.execute(
      `insert into ${TYPES} (id, ${names.join(', ')}) values (2, ${placeholders})`,
      [
        ...Object.values({
          ...values,
          bi: -9223372036854775808n,
          bu: 18446744073709551615n,
          dtm: new Date(Date.UTC(2024, 1, 29, 23, 59, 58, 123)),
        }),
      ],
    );
    const rows = await conn.execute(`select bi, bu, s, bl, n, j from ${TYPES} where id = ?`, [2]);
    expect(rows).toEqual([
      {
        bi: -9223372036854775808n,
        bu: 18446744073709551615n,
        s: values.s,
        bl: values.bl,
        n: null,
        j: expect.anything(),
      },
    ]);
    await conn.end();
  });

  it('the mariadb connector streams a parameter as COM_STMT_SEND_LONG_DATA', async () => {
    const conn = await mariadb.createConnection(mariadbOptions());
    const blob = randomBytes(300_000);
    // A Readable parameter is sent in long-data packets before the EXECUTE.
    await conn.execute(`insert into ${TYPES} (id, bl) values (?, ?)`, [3, Readable.from([blob])]);
    const rows = await conn.execute(`select bl from ${TYPES} where id = ?`, [3]);
    expect((rows as { bl: Buffer }[])[0]?.bl.equals(blob)).toBe(true);
    await conn.end();
  });

  it('a statement prepared once runs many times and closes', async () => {
    const conn = await mariadb.createConnection(mariadbOptions());
    const statement = await conn.prepare(`select name from ${ROWS} where id = ?`);
    for (const [id, name] of [
      [1, 'anvil'],
      [2, 'bellows'],
      [1, 'anvil'],
    ] as const) {
      expect(await statement.execute([id])).toEqual([{ name }]);
    }
    statement.close();
    expect(await conn.query('select 1 as one')).toEqual([{ one: 1 }]);
    await conn.end();
  });

  it('a read-only cursor is read with COM_STMT_FETCH', async () => {
    const client = await RawMysqlClient.login(edge.port, {
      user: `${CACHE}-root`,
      database: 'test',
    });
    client.command(codes.COM_STMT_PREPARE, `select id, name from ${ROWS} order by id`);
    const prepareOk = await client.next();
    expect(prepareOk.payload[0]).toBe(codes.OK_HEADER);
    const statementId = prepareOk.payload.readUInt32LE(1);
    // Two column definitions and their EOF.
    await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    const execute = Buffer.alloc(9);
    execute.writeUInt32LE(statementId, 0);
    execute[4] = 1; // CURSOR_TYPE_READ_ONLY
    execute.writeUInt32LE(1, 5);
    client.command(codes.COM_STMT_EXECUTE, execute);
    // Column count, 2 definitions, EOF with SERVER_STATUS_CURSOR_EXISTS, and no rows yet.
    const head = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    expect(head).toHaveLength(4);
    const status = head[3]?.payload.readUInt16LE(3) ?? 0;
    expect(status & codes.SERVER_STATUS_CURSOR_EXISTS).not.toBe(0);
    const fetch = Buffer.alloc(8);
    fetch.writeUInt32LE(statementId, 0);
    fetch.writeUInt32LE(2, 4);
    client.command(codes.COM_STMT_FETCH, fetch);
    const firstTwo = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    expect(firstTwo).toHaveLength(3);
    client.command(codes.COM_STMT_FETCH, fetch);
    const rest = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    expect(rest).toHaveLength(2);
    // SERVER_STATUS_LAST_ROW_SENT: the cursor is exhausted.
    expect((rest[1]?.payload.readUInt16LE(3) ?? 0) & 0x80).not.toBe(0);
    client.command(codes.COM_PING);
    expect((await client.next()).payload[0]).toBe(codes.OK_HEADER);
    client.destroy();
  });
});

describe('prepared statements answered from the cache', () => {
  const LONGLONG = 0x08; // signed
  const DOUBLE = 0x05;

  // COM_STMT_EXECUTE of a one-parameter statement: the value as 8 bytes, with its type (null: the
  // types are left out, so the last ones sent apply).
  const execute = (statementId: number, value: bigint, type: number | null) => {
    const head = Buffer.alloc(9);
    head.writeUInt32LE(statementId, 0);
    head.writeUInt32LE(1, 5);
    const bytes = Buffer.alloc(8);
    bytes.writeBigInt64LE(value);
    return Buffer.concat([
      head,
      Buffer.from([0]), // NULL bitmap
      Buffer.from([type === null ? 0 : 1]),
      type === null ? Buffer.alloc(0) : Buffer.from([type, 0x00]),
      bytes,
    ]);
  };

  // A raw session with `sql` prepared: one parameter definition and its EOF, one column
  // definition and its EOF.
  const prepared = async (sql: string) => {
    const client = await RawMysqlClient.login(edge.port, {
      user: `${CACHE}-root`,
      database: 'test',
    });
    client.command(codes.COM_STMT_PREPARE, sql);
    const ok = await client.next();
    expect(ok.payload[0]).toBe(codes.OK_HEADER);
    await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    return { client, statementId: ok.payload.readUInt32LE(1) };
  };

  // The rows' first column, as text: column definitions and their EOF, then the rows and theirs.
  const run = async (client: RawMysqlClient, command: Buffer) => {
    client.command(codes.COM_STMT_EXECUTE, command);
    const first = await client.next();
    expect(errorOf(first)).toBeNull();
    await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    const rows = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    return rows.slice(0, -1).map((row) => row.payload.subarray(3, 3 + row.payload[2]!).toString());
  };

  // The origin binds an EXECUTE that leaves its types out with the types of the last EXECUTE it
  // was sent; libmysqlclient (sysbench, PHP, Python's C drivers) sends them once. Found by
  // sysbench: a first EXECUTE served from the cache left the origin without types (error 1210).
  it('a later EXECUTE without types works after one with types was a hit', async () => {
    const sql = `select name from ${ROWS} where id = ?`;
    const a = await prepared(sql);
    expect(await run(a.client, execute(a.statementId, 1n, LONGLONG))).toEqual(['anvil']);
    const hits = edge.runtime.stats(CACHE).hits;
    const b = await prepared(sql);
    expect(await run(b.client, execute(b.statementId, 1n, LONGLONG))).toEqual(['anvil']);
    expect(await run(b.client, execute(b.statementId, 2n, null))).toEqual(['bellows']);
    expect(await run(b.client, execute(b.statementId, 3n, null))).toEqual(['chisel']);
    // And served from the cache where the origin has the types: the same reads again.
    expect(await run(b.client, execute(b.statementId, 2n, null))).toEqual(['bellows']);
    expect(await run(b.client, execute(b.statementId, 1n, LONGLONG))).toEqual(['anvil']);
    expect(edge.runtime.stats(CACHE).hits).toBeGreaterThanOrEqual(hits + 2);
    a.client.destroy();
    b.client.destroy();
  });

  // The same value bytes read as another type are another value: the types an EXECUTE is bound
  // with are in its key, whether it sends them or leaves them out (the last ones sent then).
  it('the same parameter bytes under other types are another entry, sent or left out', async () => {
    const { client, statementId } = await prepared(
      `select name from ${ROWS} where id = ? order by id`,
    );
    // 1 as LONGLONG; as DOUBLE the same bytes are 5e-324, which no id equals.
    const read = (type: number | null) => run(client, execute(statementId, 1n, type));
    const hits = () => edge.runtime.stats(CACHE).hits;
    expect(await read(LONGLONG)).toEqual(['anvil']);
    expect(await read(DOUBLE)).toEqual([]);
    const before = hits();
    // Left out: the last types sent (DOUBLE) apply, at the origin and in the key.
    expect(await read(null)).toEqual([]);
    expect(await read(null)).toEqual([]);
    expect(await read(LONGLONG)).toEqual(['anvil']);
    expect(await read(null)).toEqual(['anvil']);
    expect(await read(DOUBLE)).toEqual([]);
    expect(await read(null)).toEqual([]);
    expect(hits()).toBeGreaterThanOrEqual(before + 4);
    client.destroy();
  });
});

describe('large packets, LOAD DATA LOCAL', () => {
  it(
    'a 20 MiB value goes in and comes back (packets split at 16 MiB)',
    { timeout: 60_000 },
    async () => {
      const conn = await mysql.createConnection(privateLogin({ maxPreparedStatements: 4 }));
      const table = `big_${suffix}`;
      await conn.query(`create table ${table} (id int primary key, v longblob)`);
      const big = randomBytes(BIG);
      await conn.query(`insert into ${table} values (1, ?)`, [big]);
      const [rows] = await conn.query(`select v from ${table} where id = 1`);
      expect((rows as { v: Buffer }[])[0]?.v.equals(big)).toBe(true);
      const [binary] = await conn.execute(
        `select v, length(v) as n from ${table} where id = ?`,
        [1],
      );
      expect((binary as { n: number }[])[0]?.n).toBe(BIG);
      expect((binary as { v: Buffer }[])[0]?.v.equals(big)).toBe(true);
      await conn.query(`drop table ${table}`);
      await conn.end();
    },
  );

  it(
    'a 20 MiB answer is stored and replayed from the cache, text and binary',
    { timeout: 60_000 },
    async () => {
      const conn = await mysql.createConnection(
        privateLogin({ user: `${PRIVATE_CACHED}-native_user` }),
      );
      const table = `bigc_${suffix}`;
      await conn.query(`create table ${table} (id int primary key, v longblob)`);
      const big = randomBytes(BIG);
      await conn.execute(`insert into ${table} values (1, ?)`, [big]);
      const hits = edge.runtime.stats(PRIVATE_CACHED).hits;
      for (let i = 0; i < 2; i += 1) {
        const [text] = await conn.query(`select v, 'x' as tail from ${table} where id = 1`);
        expect((text as { v: Buffer }[])[0]?.v.equals(big)).toBe(true);
        expect((text as { tail: string }[])[0]?.tail).toBe('x');
        const [binary] = await conn.execute(
          `select v, 'y' as tail from ${table} where id = ?`,
          [1],
        );
        expect((binary as { v: Buffer }[])[0]?.v.equals(big)).toBe(true);
        expect((binary as { tail: string }[])[0]?.tail).toBe('y');
      }
      expect(edge.runtime.stats(PRIVATE_CACHED).hits - hits).toBe(2);
      await conn.query(`drop table ${table}`);
      await conn.end();
    },
  );

  it('mysql2 uploads a file with LOAD DATA LOCAL INFILE', async () => {
    const conn = await mysql.createConnection(
      mysql2Options({
        flags: ['+LOCAL_FILES'],
        infileStreamFactory: () => Readable.from([Buffer.from('20\tfile\n21\tupload\n')]),
      }),
    );
    const [result] = await conn.query(`load data local infile 'rows.tsv' into table ${ROWS}`);
    expect((result as mysql.ResultSetHeader).affectedRows).toBe(2);
    const [rows] = await conn.query(`select name from ${ROWS} where id >= 20 order by id`);
    expect(rows).toEqual([{ name: 'file' }, { name: 'upload' }]);
    await conn.query(`delete from ${ROWS} where id >= 20`);
    await conn.end();
  });

  it('the mariadb connector uploads a file with LOAD DATA LOCAL INFILE', async () => {
    const conn = await mariadb.createConnection(
      mariadbOptions({
        permitLocalInfile: true,
        infileStreamFactory: () => Readable.from([Buffer.from('30\tconnector\n')]),
      }),
    );
    const result = await conn.query(`load data local infile 'x.tsv' into table ${ROWS}`);
    expect(result).toMatchObject({ affectedRows: 1 });
    expect(await conn.query(`select name from ${ROWS} where id = 30`)).toEqual([
      { name: 'connector' },
    ]);
    await conn.query(`delete from ${ROWS} where id = 30`);
    await conn.end();
  });
});

describe('pipelining and caching through the relay', () => {
  it('the mariadb connector pipelines repeated and mixed reads; answers stay in order', async () => {
    const conn = await mariadb.createConnection(mariadbOptions({ pipelining: true }));
    const hitsBefore = edge.runtime.stats(CACHE).hits;
    const sqls = [1, 2, 1, 3, 1, 2].map((id) => `select name from ${ROWS} where id = ${id}`);
    const first = await Promise.all(sqls.map((sql) => conn.query(sql)));
    const second = await Promise.all(sqls.map((sql) => conn.query(sql)));
    const names = ['anvil', 'bellows', 'anvil', 'chisel', 'anvil', 'bellows'].map((name) => [
      { name },
    ]);
    expect(first).toEqual(names);
    expect(second).toEqual(names);
    expect(edge.runtime.stats(CACHE).hits - hitsBefore).toBeGreaterThanOrEqual(6);
    await conn.end();
  });

  it('the mariadb connector batches 200 pipelined inserts; reads see them all', async () => {
    const conn = await mariadb.createConnection(mariadbOptions());
    const rows = Array.from({ length: 200 }, (_x, i) => [1000 + i, `batch-${i}`]);
    const result = await conn.batch(`insert into ${ROWS} values (?, ?)`, rows);
    // Without bulk (the edge greets before it knows the origin is MariaDB), one OK per row.
    const oks = result as unknown as { affectedRows: number }[];
    expect(oks.reduce((sum, ok) => sum + ok.affectedRows, 0)).toBe(200);
    expect(await conn.query(`select count(*) as n from ${ROWS} where id >= 1000`)).toEqual([
      { n: 200n },
    ]);
    await conn.query(`delete from ${ROWS} where id >= 1000`);
    expect(await conn.query(`select count(*) as n from ${ROWS} where id >= 1000`)).toEqual([
      { n: 0n },
    ]);
    await conn.end();
  });

  it('a parameter sent as long data is not answered from the cache of another value', async () => {
    const client = await RawMysqlClient.login(edge.port, {
      user: `${CACHE}-root`,
      database: 'test',
    });
    client.command(codes.COM_STMT_PREPARE, `select id from ${ROWS} where name = ?`);
    const prepareOk = await client.next();
    const id = prepareOk.payload.readUInt32LE(1);
    // One parameter definition and one column definition, each with its EOF.
    await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    const execute = (value: Buffer | null) => {
      const head = Buffer.alloc(9 + 1 + 1 + 2);
      head.writeUInt32LE(id, 0);
      head.writeUInt32LE(1, 5);
      head[10] = 1; // new parameters bound: types follow
      head.writeUInt16LE(0xfe, 11); // MYSQL_TYPE_STRING
      const values =
        value === null ? Buffer.alloc(0) : Buffer.concat([Buffer.from([value.length]), value]);
      client.command(codes.COM_STMT_EXECUTE, Buffer.concat([head, values]));
    };
    const rowsOf = async () => {
      const packets = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
      expect(packets).toHaveLength(3);
      const rest = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
      // Binary rows: header 0, null bitmap (1 byte for 1 column), then an INT.
      return rest.slice(0, -1).map((row) => row.payload.readInt32LE(2));
    };
    const hits = edge.runtime.stats(CACHE).hits;
    for (let i = 0; i < 2; i += 1) {
      execute(Buffer.from('anvil'));
      expect(await rowsOf()).toEqual([1]);
    }
    expect(edge.runtime.stats(CACHE).hits).toBe(hits + 1);
    // The value comes in COM_STMT_SEND_LONG_DATA (no answer), the EXECUTE carries none.
    client.command(
      codes.COM_STMT_SEND_LONG_DATA,
      Buffer.concat([
        Buffer.from([id & 0xff, (id >> 8) & 0xff, 0, 0, 0, 0]),
        Buffer.from('bellows'),
      ]),
    );
    execute(null);
    expect(await rowsOf()).toEqual([2]);
    execute(Buffer.from('anvil'));
    expect(await rowsOf()).toEqual([1]);
    expect(edge.runtime.stats(CACHE).hits).toBe(hits + 2);
    client.destroy();
  });

  it('COM_FIELD_LIST answers the column definitions of a table', async () => {
    const client = await RawMysqlClient.login(edge.port, {
      user: `${CACHE}-root`,
      database: 'test',
    });
    client.command(codes.COM_FIELD_LIST, `${ROWS}\0`);
    const packets = await client.until((packet) => packet.payload[0] === codes.EOF_HEADER);
    expect(packets).toHaveLength(3);
    expect(packets[0]?.payload.includes(Buffer.from('id'))).toBe(true);
    client.command(codes.COM_PING);
    expect((await client.next()).payload[0]).toBe(codes.OK_HEADER);
    client.destroy();
  });
});

describe('utility commands', () => {
  it('KILL QUERY from another connection stops a running query (edge ids mapped to the origin)', async () => {
    const a = await mysql.createConnection(privateLogin());
    const b = await mysql.createConnection(privateLogin());
    // The id the client sees is the edge's, not the origin's.
    const [[{ id }]] = (await a.query('select connection_id() as id')) as unknown as [
      [{ id: number }],
    ];
    expect(a.threadId).not.toBe(id);
    const started = Date.now();
    const sleeping = a.query('select sleep(10) as slept').then(
      ([rows]) => ({ rows }),
      (error: { errno?: number }) => ({ errno: error.errno }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await b.query(`KILL QUERY ${a.threadId}`);
    const outcome = await sleeping;
    expect(outcome).toEqual({ errno: 1317 }); // ER_QUERY_INTERRUPTED
    expect(Date.now() - started).toBeLessThan(5_000);
    // The killed query's connection lives on; a KILL of an id the edge never gave is refused.
    const [alive] = await a.query('select 1 as one');
    expect(alive).toEqual([{ one: 1 }]);
    await expect(b.query('KILL QUERY 999999')).rejects.toMatchObject({ errno: 1094 });
    await a.end();
    await b.end();
  });

  it('COM_PROCESS_KILL takes the edge id too', async () => {
    const target = await mysql.createConnection(privateLogin());
    const [[{ id }]] = (await target.query('select connection_id() as id')) as unknown as [
      [{ id: number }],
    ];
    const killer = await RawMysqlClient.login(edge.port, {
      user: `${PRIVATE_CACHE}-${origin.users.native}`,
      password: origin.password(origin.users.native),
    });
    const edgeId = Buffer.alloc(4);
    edgeId.writeUInt32LE(target.threadId as number, 0);
    killer.command(codes.COM_PROCESS_KILL, edgeId);
    expect((await killer.next()).payload[0]).toBe(codes.OK_HEADER);
    await expect(target.query('select 1')).rejects.toThrow();
    const alive = async () => {
      killer.command(
        codes.COM_QUERY,
        `select count(*) from information_schema.processlist where id = ${id}`,
      );
      // Column count, definition, EOF, the row, EOF.
      const packets = await killer.until(
        (packet) => packet.payload[0] === codes.EOF_HEADER && packet.sequenceId > 3,
      );
      return packets[3]?.payload.subarray(1).toString();
    };
    await expect.poll(alive, { timeout: 5_000 }).toBe('0');
    killer.destroy();
  });

  it('LOAD DATA LOCAL that the client declines fails, and the session goes on', async () => {
    // Without a stream factory mysql2 answers the server's file request with an empty file.
    const conn = await mysql.createConnection(mysql2Options({ flags: ['+LOCAL_FILES'] }));
    await expect(
      conn.query(`load data local infile '/etc/hostname' into table ${ROWS}`),
    ).rejects.toThrow(/server wants to read \/etc\/hostname file/);
    const [rows] = await conn.query('select 1 as one');
    expect(rows).toEqual([{ one: 1 }]);
    await conn.end();
  });

  it('KILL of a connection of another cache is refused as an unknown thread', async () => {
    const target = await mysql.createConnection(mysql2Options());
    const other = await mysql.createConnection(mysql2Options({ user: `${OTHER_CACHE}-root` }));
    await expect(other.query(`KILL ${target.threadId}`)).rejects.toMatchObject({
      errno: 1094,
      message: `Unknown thread id: ${target.threadId}`,
    });
    const [rows] = await target.query('select 1 as one');
    expect(rows).toEqual([{ one: 1 }]);
    await target.end();
    await other.end();
  });

  it('KILL CONNECTION from another connection ends it at the origin', async () => {
    const a = await mysql.createConnection(privateLogin());
    const b = await mysql.createConnection(privateLogin());
    const [[{ id }]] = (await a.query('select connection_id() as id')) as unknown as [
      [{ id: number }],
    ];
    await b.query(`KILL ${a.threadId}`);
    await expect(a.query('select 1')).rejects.toThrow();
    const alive = async () => {
      const [rows] = await b.query(
        `select count(*) as n from information_schema.processlist where id = ${id}`,
      );
      return (rows as { n: number }[])[0]?.n;
    };
    await expect.poll(alive, { timeout: 5_000 }).toBe(0);
    await b.end();
  });

  it('mysql2: COM_PING, and COM_CHANGE_USER to another database', async () => {
    const conn = await mysql.createConnection(mysql2Options());
    await conn.ping();
    await conn.changeUser({ database: 'mysql' });
    const [[db]] = (await conn.query('select database() as db')) as unknown as [[{ db: string }]];
    expect(db.db).toBe('mysql');
    await conn.query('use test');
    const [rows] = await conn.query(`select name from ${ROWS} where id = 1`);
    expect(rows).toEqual([{ name: 'anvil' }]);
    await conn.end();
  });

  it('mariadb connector: COM_RESET_CONNECTION drops session state', async () => {
    const conn = await mariadb.createConnection(mariadbOptions());
    await conn.query('set @marker = 42');
    await conn.query('create temporary table relay_tmp (x int)');
    await conn.reset();
    expect(await conn.query('select @marker as m')).toEqual([{ m: null }]);
    await expect(conn.query('select * from relay_tmp')).rejects.toMatchObject({ errno: 1146 });
    await conn.ping();
    await conn.end();
  });

  it('COM_SET_OPTION turns multi-statements on and off; COM_STATISTICS answers one packet', async () => {
    const client = await RawMysqlClient.login(edge.port, {
      user: `${CACHE}-root`,
      database: 'test',
    });
    client.command(codes.COM_QUERY, 'select 1; select 2');
    expect(errorOf(await client.next())?.code).toBe(1064);
    client.command(codes.COM_SET_OPTION, Buffer.from([0, 0])); // MYSQL_OPTION_MULTI_STATEMENTS_ON
    expect((await client.next()).payload[0]).toBe(codes.EOF_HEADER);
    client.command(codes.COM_QUERY, 'select 1; select 2');
    // Two result sets of column count, definition, EOF, row, EOF; the first EOF says more follow.
    const both = [];
    for (let i = 0; i < 10; i += 1) both.push(await client.next());
    expect((both[4]?.payload.readUInt16LE(3) ?? 0) & codes.SERVER_MORE_RESULTS_EXISTS).not.toBe(0);
    expect((both[9]?.payload.readUInt16LE(3) ?? 0) & codes.SERVER_MORE_RESULTS_EXISTS).toBe(0);
    expect(both[8]?.payload.toString()).toBe('\u00012');
    client.command(codes.COM_STATISTICS);
    expect((await client.next()).payload.toString()).toMatch(/^Uptime: \d+/);
    client.command(codes.COM_PING);
    expect((await client.next()).payload[0]).toBe(codes.OK_HEADER);
    client.destroy();
  });

  it('a command with sequence id 5 gets an ERR and the connection is closed', async () => {
    const client = await RawMysqlClient.login(edge.port, {
      user: `${CACHE}-root`,
      database: 'test',
    });
    client.command(codes.COM_QUERY, 'select 1', 5);
    const error = errorOf(await client.next());
    expect(error?.code).toBe(codes.ER_NET_PACKETS_OUT_OF_ORDER);
    await client.closed;
  });
});
