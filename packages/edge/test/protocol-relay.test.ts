// The edge relays the whole Postgres protocol unchanged, with caching off and on: psql and \copy,
// prepared and unnamed statements, pipelines, errors, notifications, notices, big and binary
// results, and pgbench's three query modes.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeCacheConfig } from '../src/index.ts';
import { BackendParser, dataRowText, dataRowValues, serialize } from '../src/pg/protocol/index.ts';
import type { BackendMessage } from '../src/pg/protocol/index.ts';
import { cacheConfig as baseConfig, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const ORIGIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } as const;

function cacheConfig(id: string, defaultMode: 'auto' | 'off'): EdgeCacheConfig {
  return baseConfig(id, { defaultMode });
}

function suffix(): string {
  return randomBytes(6).toString('hex');
}

// A protocol client on a bare socket, for what pg and psql never send: pipelines in one write,
// binary result formats, empty extended queries.
class RawClient {
  readonly messages: BackendMessage[] = [];
  readonly #socket: Socket;
  readonly #parser = new BackendParser();
  #closed = false;
  #wake: () => void = () => undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#parser.parse(chunk, (message) => this.messages.push(message));
      this.#wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  static async open(port: number, applicationName: string): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    const client = new RawClient(socket);
    client.send(
      serialize.startupMessage({
        user: ORIGIN.user,
        database: ORIGIN.database,
        application_name: applicationName,
      }),
    );
    const login = await client.readyForQuery(1);
    expect(login.at(-1)).toMatchObject({ kind: 'readyForQuery', status: 'I' });
    return client;
  }

  send(...frames: Buffer[]): void {
    // One write: the edge gets the whole pipeline in as few chunks as the kernel allows.
    this.#socket.write(Buffer.concat(frames));
  }

  /** Waits for `count` more ReadyForQuery messages and returns everything up to the last one. */
  async readyForQuery(count: number, timeoutMs = 10_000): Promise<BackendMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let seen = 0;
      const end = this.messages.findIndex(
        (message) => message.kind === 'readyForQuery' && ++seen === count,
      );
      if (end >= 0) return this.messages.splice(0, end + 1);
      if (this.#closed) throw new Error(`the edge closed the connection: ${kinds(this.messages)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ReadyForQuery in time: ${kinds(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.#socket.end(serialize.terminate());
  }
}

function kinds(messages: BackendMessage[]): string {
  return messages.map((message) => message.kind).join(',');
}

// Splits replies into one list per ReadyForQuery.
function byExchange(messages: BackendMessage[]): BackendMessage[][] {
  const exchanges: BackendMessage[][] = [[]];
  for (const message of messages) {
    (exchanges.at(-1) as BackendMessage[]).push(message);
    if (message.kind === 'readyForQuery') exchanges.push([]);
  }
  return exchanges.slice(0, -1);
}

function firstRowText(messages: BackendMessage[]): (string | null)[] {
  const row = messages.find((message) => message.kind === 'dataRow');
  if (row?.kind !== 'dataRow') throw new Error(`no DataRow in ${kinds(messages)}`);
  return dataRowText(row);
}

function errorCode(messages: BackendMessage[]): string | undefined {
  const error = messages.find((message) => message.kind === 'errorResponse');
  return error?.kind === 'errorResponse' ? error.fields.C : undefined;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

function digest(rows: unknown[][]): string {
  const hash = createHash('sha256');
  for (const row of rows) hash.update(`${row.join('\t')}\n`);
  return hash.digest('hex');
}

const offId = newCacheId();
const autoId = newCacheId();
const source = new StaticConfigSource([cacheConfig(offId, 'off'), cacheConfig(autoId, 'auto')]);
const direct = new pg.Client(ORIGIN);
const benchDatabase = `edge_relay_${suffix()}`;
const tables: string[] = [];
let edge: RunningEdge;

beforeAll(async () => {
  edge = await startEdge({ source });
  await direct.connect();
  await direct.query(`create database ${benchDatabase}`);
  const init = await run('pgbench', [
    '-i',
    '-q',
    '-s',
    '1',
    '-h',
    ORIGIN.host,
    '-p',
    String(ORIGIN.port),
    '-U',
    ORIGIN.user,
    benchDatabase,
  ]);
  expect(init.code, init.stderr).toBe(0);
});

afterAll(async () => {
  await edge?.close();
  for (const table of tables) await direct.query(`drop table if exists ${table}`);
  await direct.query(`drop database if exists ${benchDatabase} with (force)`);
  await direct.end();
});

describe.each([
  { mode: 'off', id: offId },
  { mode: 'auto', id: autoId },
])('through the edge with caching $mode', ({ mode, id }) => {
  const cached = mode === 'auto';

  async function edgeClient(): Promise<pg.Client> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: edge.port,
      user: ORIGIN.user,
      database: ORIGIN.database,
      application_name: id,
    });
    await client.connect();
    return client;
  }

  function psql(args: string[], input?: string): Promise<Run> {
    return run(
      'psql',
      [
        '-X',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '127.0.0.1',
        '-p',
        String(edge.port),
        '-U',
        ORIGIN.user,
        ORIGIN.database,
        ...args,
      ],
      { env: { PGAPPNAME: id }, input },
    );
  }

  it('psql runs simple queries', async () => {
    for (let round = 0; round < 2; round++) {
      const result = await psql([
        '-qAt',
        '-c',
        "select 1 as a, 'x' as b",
        '-c',
        'select g from generate_series(1, 3) g',
        '-c',
        "select current_database(), current_user, current_setting('application_name') = ''",
      ]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('1|x\n1\n2\n3\ntest|postgres|t\n');
    }
  });

  it('psql \\copy from stdin loads every row, and later reads see them', async () => {
    const table = `edge_relay_copy_${suffix()}`;
    tables.push(table);
    await direct.query(`create table ${table} (id int primary key, name text)`);
    const count = `select count(*), coalesce(sum(id), 0) from ${table}`;
    const before = edge.runtime.stats(id).hits;
    expect(await psql(['-qAt', '-c', count])).toMatchObject({ code: 0, stdout: '0|0\n' });
    expect(await psql(['-qAt', '-c', count])).toMatchObject({ code: 0, stdout: '0|0\n' });
    // With caching on, the second read came from the store: COPY must invalidate it.
    expect(edge.runtime.stats(id).hits - before).toBe(cached ? 1 : 0);

    const rows = Array.from({ length: 3000 }, (_, i) => `${i + 1}\tname ${i + 1}\\ttab`);
    const copied = await psql(
      ['-c', `\\copy ${table} (id, name) from pstdin`],
      `${rows.join('\n')}\n`,
    );
    expect(copied.stderr).toBe('');
    expect(copied).toMatchObject({ code: 0, stdout: 'COPY 3000\n' });

    const sum = (3000 * 3001) / 2;
    expect(await psql(['-qAt', '-c', count])).toMatchObject({ code: 0, stdout: `3000|${sum}\n` });
    const stored = await direct.query<{ count: string; last: string }>(
      `select count(*), (select name from ${table} where id = 3000) as last from ${table}`,
    );
    expect(stored.rows).toEqual([{ count: '3000', last: 'name 3000\ttab' }]);
  });

  it('psql \\copy (select …) to stdout streams every row', async () => {
    const expected = Array.from(
      { length: 5000 },
      (_, i) =>
        `${i + 1}\t${createHash('md5')
          .update(String(i + 1))
          .digest('hex')}\n`,
    ).join('');
    for (let round = 0; round < 2; round++) {
      const result = await psql([
        '-qAt',
        '-c',
        '\\copy (select g, md5(g::text) from generate_series(1, 5000) g) to stdout',
      ]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(expected);
    }
  });

  it('pg reuses a named prepared statement many times', async () => {
    const client = await edgeClient();
    try {
      const before = edge.runtime.stats(id).hits;
      for (let i = 0; i < 300; i++) {
        const n = i % 50;
        const result = await client.query({
          name: 'double',
          text: 'select $1::int * 2 as doubled, $2::text as label',
          values: [n, `label ${n}`],
        });
        expect(result.rows).toEqual([{ doubled: n * 2, label: `label ${n}` }]);
      }
      const hits = edge.runtime.stats(id).hits - before;
      if (cached) expect(hits).toBeGreaterThanOrEqual(250);
      else expect(hits).toBe(0);
      // Parsed once at the origin and bound there every time.
      const prepared = await client.query(
        "select count(*)::int as n from pg_prepared_statements where name = 'double'",
      );
      expect(prepared.rows).toEqual([{ n: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('pg runs unnamed statements with parameters', async () => {
    const client = await edgeClient();
    try {
      const before = edge.runtime.stats(id).hits;
      for (let i = 0; i < 200; i++) {
        const n = i % 20;
        const result = await client.query('select $1::int + 1 as next, $2::text as word', [
          n,
          `w${n}`,
        ]);
        expect(result.rows).toEqual([{ next: n + 1, word: `w${n}` }]);
      }
      const hits = edge.runtime.stats(id).hits - before;
      if (cached) expect(hits).toBeGreaterThanOrEqual(180);
      else expect(hits).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('a Bind to the unnamed statement works after its Parse was answered from the store', async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      const sql = `select $1::int * 3 as tripled /* ${suffix()} */`;
      const unit = (value: string, parse: boolean) => [
        ...(parse ? [serialize.parse({ sql })] : []),
        serialize.bind({ params: [value] }),
        serialize.execute(),
        serialize.sync(),
      ];
      raw.send(...unit('5', true));
      expect(kinds(await raw.readyForQuery(1))).toBe(
        'parseComplete,bindComplete,dataRow,commandComplete,readyForQuery',
      );
      raw.send(...unit('5', true));
      const again = await raw.readyForQuery(1);
      expect(kinds(again)).toBe('parseComplete,bindComplete,dataRow,commandComplete,readyForQuery');
      expect(firstRowText(again)).toEqual(['15']);
      // No Parse: the origin must still know the statement (the edge re-sends it when needed).
      raw.send(...unit('7', false));
      const bound = await raw.readyForQuery(1);
      expect(kinds(bound)).toBe('bindComplete,dataRow,commandComplete,readyForQuery');
      expect(firstRowText(bound)).toEqual(['21']);
      raw.send(...unit('5', false));
      expect(firstRowText(await raw.readyForQuery(1))).toEqual(['15']);
    } finally {
      raw.close();
    }
  });

  it('a Describe of the unnamed statement describes the one the client parsed last', async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      const tag = suffix();
      const first = `select 1 as first_col /* ${tag} */`;
      const second = `select 'two'::text as second_col /* ${tag} */`;
      const unit = (sql: string) => [
        serialize.parse({ sql }),
        serialize.bind({}),
        serialize.execute(),
        serialize.sync(),
      ];
      const before = edge.runtime.stats(id).hits;
      for (const sql of [first, second, first]) {
        raw.send(...unit(sql));
        expect(kinds(await raw.readyForQuery(1))).toBe(
          'parseComplete,bindComplete,dataRow,commandComplete,readyForQuery',
        );
      }
      // With caching on, the last one was answered from the store.
      expect(edge.runtime.stats(id).hits - before).toBe(cached ? 1 : 0);
      raw.send(serialize.describe('S'), serialize.sync());
      const described = await raw.readyForQuery(1);
      expect(kinds(described)).toBe('parameterDescription,rowDescription,readyForQuery');
      expect(described[1]).toMatchObject({ fields: [{ name: 'first_col', typeOid: 23 }] });
    } finally {
      raw.close();
    }
  });

  it('answers a pipeline of Parse/Bind/Describe/Execute/Sync units in order', async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      const sql = `select $1::int * 10 as v /* ${suffix()} */`;
      const values = [1, 2, 1, 3, 2, 4, 1, 5];
      const pipeline = values.flatMap((value) => [
        serialize.parse({ sql }),
        serialize.bind({ params: [String(value)] }),
        serialize.describe('P'),
        serialize.execute(),
        serialize.sync(),
      ]);
      const before = edge.runtime.stats(id).hits;
      for (let round = 0; round < 2; round++) {
        raw.send(...pipeline);
        const exchanges = byExchange(await raw.readyForQuery(values.length));
        expect(exchanges).toHaveLength(values.length);
        exchanges.forEach((exchange, i) => {
          expect(kinds(exchange)).toBe(
            'parseComplete,bindComplete,rowDescription,dataRow,commandComplete,readyForQuery',
          );
          expect(firstRowText(exchange)).toEqual([String((values[i] as number) * 10)]);
        });
      }
      // With caching on, repeats in the first round and the whole second round are hits.
      const hits = edge.runtime.stats(id).hits - before;
      expect(hits).toBe(cached ? 2 * values.length - new Set(values).size : 0);
      // A named statement bound many times in one pipeline.
      raw.send(
        serialize.parse({ name: 'times_ten', sql }),
        ...values.flatMap((value) => [
          serialize.bind({ statement: 'times_ten', params: [String(value)] }),
          serialize.execute(),
          serialize.sync(),
        ]),
      );
      const named = byExchange(await raw.readyForQuery(values.length));
      expect(kinds(named[0] as BackendMessage[])).toBe(
        'parseComplete,bindComplete,dataRow,commandComplete,readyForQuery',
      );
      expect(named.map(firstRowText)).toEqual(values.map((value) => [String(value * 10)]));
    } finally {
      raw.close();
    }
  });

  it('answers several simple queries sent in one write in order', async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      const tag = suffix();
      const queries = [1, "'two'", 1, 3].map((n) => `select ${n} as n /* ${tag} */`);
      const before = edge.runtime.stats(id).hits;
      for (let round = 0; round < 2; round++) {
        raw.send(...queries.map((sql) => serialize.query(sql)));
        const exchanges = byExchange(await raw.readyForQuery(queries.length));
        expect(exchanges.map(kinds)).toEqual(
          queries.map(() => 'rowDescription,dataRow,commandComplete,readyForQuery'),
        );
        expect(exchanges.map(firstRowText)).toEqual([['1'], ['two'], ['1'], ['3']]);
      }
      if (cached)
        expect(edge.runtime.stats(id).hits - before).toBe(
          2 * queries.length - new Set(queries).size,
        );
      else expect(edge.runtime.stats(id).hits - before).toBe(0);
    } finally {
      raw.close();
    }
  });

  it("relays the origin's own error in the middle of a pipeline and answers what follows", async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      const missing = `edge_relay_missing_${suffix()}`;
      const texts = [
        `select 1 as n /* ${missing} */`,
        `select * from ${missing}`,
        `select 3 as n /* ${missing} */`,
      ];
      const before = edge.runtime.stats(id).hits;
      for (let round = 0; round < 2; round++) {
        raw.send(
          ...texts.flatMap((sql) => [
            serialize.parse({ sql }),
            serialize.bind({}),
            serialize.execute(),
            serialize.sync(),
          ]),
        );
        const [first, failed, third] = byExchange(await raw.readyForQuery(3)) as BackendMessage[][];
        expect(kinds(first as BackendMessage[])).toBe(
          'parseComplete,bindComplete,dataRow,commandComplete,readyForQuery',
        );
        expect(firstRowText(first as BackendMessage[])).toEqual(['1']);
        expect(kinds(failed as BackendMessage[])).toBe('errorResponse,readyForQuery');
        expect(errorCode(failed as BackendMessage[])).toBe('42P01');
        expect((failed as BackendMessage[])[0]).toMatchObject({
          fields: { S: 'ERROR', M: `relation "${missing}" does not exist` },
        });
        expect(firstRowText(third as BackendMessage[])).toEqual(['3']);
        expect((third as BackendMessage[]).at(-1)).toMatchObject({ status: 'I' });

        raw.send(...texts.map((sql) => serialize.query(sql)));
        const simple = byExchange(await raw.readyForQuery(3));
        expect(simple.map(kinds)).toEqual([
          'rowDescription,dataRow,commandComplete,readyForQuery',
          'errorResponse,readyForQuery',
          'rowDescription,dataRow,commandComplete,readyForQuery',
        ]);
        expect(errorCode(simple[1] as BackendMessage[])).toBe('42P01');
        expect(firstRowText(simple[2] as BackendMessage[])).toEqual(['3']);
      }
      // The reads around the failing one are served from the store once stored.
      if (cached) expect(edge.runtime.stats(id).hits - before).toBe(4);
      else expect(edge.runtime.stats(id).hits - before).toBe(0);
    } finally {
      raw.close();
    }
  });

  it('delivers NOTIFY from one edge session to a LISTEN on another', async () => {
    const listener = await edgeClient();
    const notifier = await edgeClient();
    try {
      const channel = `edge_relay_${suffix()}`;
      const received: string[] = [];
      let wake = () => undefined as void;
      listener.on('notification', (message) => {
        if (message.channel === channel) received.push(message.payload ?? '');
        wake();
      });
      await listener.query(`listen ${channel}`);
      await notifier.query(`notify ${channel}, 'one'`);
      // The same select twice: both must reach the origin, a cached answer would send nothing.
      await notifier.query(`select pg_notify('${channel}', 'two')`);
      await notifier.query(`select pg_notify('${channel}', 'two')`);
      const deadline = Date.now() + 5000;
      while (received.length < 3 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
      expect(received).toEqual(['one', 'two', 'two']);
    } finally {
      await listener.end();
      await notifier.end();
    }
  });

  it('relays notices', async () => {
    const client = await edgeClient();
    try {
      const notices: { message?: string; severity?: string }[] = [];
      client.on('notice', (notice) =>
        notices.push({ message: notice.message, severity: notice.severity }),
      );
      await client.query("do $$ begin raise notice 'hi'; end $$");
      await client.query("do $$ begin raise notice 'hi'; end $$");
      await client.query('select 1');
      expect(notices).toEqual([
        { message: 'hi', severity: 'NOTICE' },
        { message: 'hi', severity: 'NOTICE' },
      ]);
    } finally {
      await client.end();
    }
  });

  it('answers a multi-statement simple query with one result per statement', async () => {
    const client = await edgeClient();
    try {
      for (let round = 0; round < 2; round++) {
        const results = (await client.query(
          "select 1 as a; select 'b' as b, 2 as c; select g from generate_series(1, 2) g",
        )) as unknown as pg.QueryResult[];
        expect(results.map((result) => result.rows)).toEqual([
          [{ a: 1 }],
          [{ b: 'b', c: 2 }],
          [{ g: 1 }, { g: 2 }],
        ]);
      }
      const missing = `edge_relay_missing_${suffix()}`;
      await expect(
        client.query(`select 1; select * from ${missing}; select 3`),
      ).rejects.toMatchObject({ code: '42P01' });
      expect((await client.query('select 4 as n')).rows).toEqual([{ n: 4 }]);
    } finally {
      await client.end();
    }
  });

  it('answers an empty query', async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      for (let round = 0; round < 2; round++) {
        raw.send(serialize.query(''));
        expect(kinds(await raw.readyForQuery(1))).toBe('emptyQueryResponse,readyForQuery');
        raw.send(
          serialize.parse({ sql: '' }),
          serialize.bind({}),
          serialize.execute(),
          serialize.sync(),
        );
        expect(kinds(await raw.readyForQuery(1))).toBe(
          'parseComplete,bindComplete,emptyQueryResponse,readyForQuery',
        );
      }
    } finally {
      raw.close();
    }
    const client = await edgeClient();
    try {
      const result = await client.query('');
      expect(result.rows).toEqual([]);
      expect((await client.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('streams a large result identical to a direct connection', async () => {
    const sql = 'select g, md5(g::text) as h from generate_series(1, 200000) g';
    const expected = await direct.query<unknown[]>({ text: sql, rowMode: 'array' });
    expect(expected.rows).toHaveLength(200_000);
    const client = await edgeClient();
    try {
      for (let round = 0; round < 2; round++) {
        const result = await client.query<unknown[]>({ text: sql, rowMode: 'array' });
        expect(result.rowCount).toBe(200_000);
        expect(digest(result.rows)).toBe(digest(expected.rows));
      }
    } finally {
      await client.end();
    }
  });

  it('returns binary results when a Bind asks for them, and text when it does not', async () => {
    const raw = await RawClient.open(edge.port, id);
    try {
      const sql = 'select $1::int4 as n, $2::int8 as big, $3::text as t, $4::int4 as from_binary';
      const four = Buffer.alloc(4);
      four.writeInt32BE(-42);
      const unit = (resultFormats: number[]) => [
        serialize.parse({ sql }),
        serialize.bind({
          paramFormats: [0, 0, 0, 1],
          params: ['7', '9000000000', 'hé', four],
          resultFormats,
        }),
        serialize.describe('P'),
        serialize.execute(),
        serialize.sync(),
      ];
      const before = edge.runtime.stats(id).hits;
      for (const formats of [[1], [1], [0], [0], [1]]) {
        raw.send(...unit(formats));
        const answer = await raw.readyForQuery(1);
        const description = answer.find((message) => message.kind === 'rowDescription');
        expect(description).toMatchObject({
          fields: [
            { format: formats[0] },
            { format: formats[0] },
            { format: formats[0] },
            { format: formats[0] },
          ],
        });
        const row = answer.find((message) => message.kind === 'dataRow');
        if (row?.kind !== 'dataRow') throw new Error(`no DataRow in ${kinds(answer)}`);
        const values = dataRowValues(row) as Buffer[];
        if (formats[0] === 1) {
          expect(values[0]?.readInt32BE()).toBe(7);
          expect(values[1]?.readBigInt64BE()).toBe(9_000_000_000n);
          expect(values[2]?.toString('utf8')).toBe('hé');
          expect(values[3]?.readInt32BE()).toBe(-42);
        } else {
          expect(dataRowText(row)).toEqual(['7', '9000000000', 'hé', '-42']);
        }
      }
      // The result formats are part of the key: each format is stored once and served after.
      expect(edge.runtime.stats(id).hits - before).toBe(cached ? 3 : 0);
    } finally {
      raw.close();
    }
  });

  it.each(['simple', 'extended', 'prepared'])(
    'pgbench runs 4 clients × 200 transactions in %s mode without an error',
    async (protocol) => {
      const result = await run(
        'pgbench',
        [
          '-c',
          '4',
          '-j',
          '2',
          '-t',
          '200',
          '-M',
          protocol,
          '-h',
          '127.0.0.1',
          '-p',
          String(edge.port),
          '-U',
          ORIGIN.user,
          benchDatabase,
        ],
        { env: { PGAPPNAME: id } },
      );
      expect(result.stderr).not.toMatch(/error/i);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/number of transactions actually processed: 800\/800/);
      // pgbench empties the history first; every transaction left one row and kept the sums equal.
      const bench = new pg.Client({ ...ORIGIN, database: benchDatabase });
      await bench.connect();
      try {
        const check = await bench.query(`
          select (select count(*)::int from pgbench_history) as history,
                 (select sum(abalance) from pgbench_accounts)::bigint as accounts,
                 (select sum(tbalance) from pgbench_tellers)::bigint as tellers,
                 (select sum(bbalance) from pgbench_branches)::bigint as branches`);
        const [sums] = check.rows;
        expect(sums.history).toBe(800);
        expect(sums.accounts).toBe(sums.branches);
        expect(sums.tellers).toBe(sums.branches);
      } finally {
        await bench.end();
      }
    },
  );
});
