// A misbehaving client, origin or network ends only its own session: the edge process keeps
// serving everyone else, and a fresh connection through the same edge works after each case.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EdgeCacheConfig, EdgeLogger } from '../src/index.ts';
import {
  BackendParser,
  FrontendParser,
  ProtocolError,
  codes,
  dataRowText,
  serialize,
} from '../src/pg/protocol/index.ts';
import type { BackendMessage } from '../src/pg/protocol/index.ts';
import { cacheConfig as baseConfig, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';
import { prng, randomBytesFrom } from './helpers/prng.ts';

const ORIGIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } as const;

function cacheConfig(
  id: string,
  defaultMode: 'auto' | 'off',
  port: number = ORIGIN.port,
): EdgeCacheConfig {
  return baseConfig(id, { defaultMode, port });
}

// A name for the origin backend of one session: the edge forwards what follows `cacheId:`.
function tag(kind: string): string {
  return `edge-robust-${kind}-${randomBytes(4).toString('hex')}`;
}

// A client on a bare socket: sends any bytes, records typed replies and how the connection ended.
class RawClient {
  readonly socket: Socket;
  readonly messages: BackendMessage[] = [];
  /** Replaces storing: for results too big to keep. */
  onMessage: (message: BackendMessage) => void = (message) => this.messages.push(message);
  readonly closed: Promise<{ hadError: boolean }>;
  isClosed = false;
  readonly #parser = new BackendParser();
  #unparseable = false;
  #wake: () => void = () => undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (this.#unparseable) return;
      try {
        this.#parser.parse(chunk, (message) => this.onMessage(message));
      } catch {
        this.#unparseable = true;
      }
      this.#wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', (hadError) => {
        this.isClosed = true;
        this.#wake();
        resolve({ hadError });
      }),
    );
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Connects and logs in; resolves at the first ReadyForQuery. */
  static async login(port: number, applicationName: string): Promise<RawClient> {
    const client = await RawClient.connect(port);
    client.socket.write(
      serialize.startupMessage({
        user: ORIGIN.user,
        database: ORIGIN.database,
        application_name: applicationName,
      }),
    );
    await client.until((messages) => messages.some((m) => m.kind === 'readyForQuery'));
    client.messages.length = 0;
    return client;
  }

  /** Waits until `done` holds for the messages so far, or the connection closes. */
  async until(done: (messages: BackendMessage[]) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.messages) && !this.isClosed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${kinds(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

function kinds(messages: BackendMessage[]): string {
  return messages.map((message) => message.kind).join(',') || '(nothing)';
}

function errorFields(messages: BackendMessage[]): Record<string, string> | undefined {
  const error = messages.find((message) => message.kind === 'errorResponse');
  return error?.kind === 'errorResponse' ? error.fields : undefined;
}

function mutate(random: (limit: number) => number, input: Buffer): Buffer {
  const bytes = Buffer.from(input);
  const at = random(bytes.length);
  switch (random(5)) {
    case 0:
      bytes[at] = (bytes[at] as number) ^ (1 << random(8));
      return bytes;
    case 1:
      bytes[at] = random(256);
      return bytes;
    case 2:
      return bytes.subarray(0, at);
    case 3:
      return Buffer.concat([
        bytes.subarray(0, at),
        randomBytesFrom(random, 1 + random(8)),
        bytes.subarray(at),
      ]);
    default:
      // Lie about a length, or anything else that is an int32.
      if (bytes.length >= 4)
        bytes.writeInt32BE(random(2 ** 31) - random(2 ** 31), random(bytes.length - 3));
      return bytes;
  }
}

// A FunctionCall with a random OID could call any function as the superuser: never send one.
function callsAFunction(input: Buffer): boolean {
  const parser = new FrontendParser();
  let found = false;
  try {
    parser.parse(serialize.startupMessage({ user: ORIGIN.user }), () => undefined);
    parser.parse(input, (message) => {
      if (message.kind === 'functionCall' || message.frame[0] === codes.FunctionCall) found = true;
    });
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
  return found;
}

const offId = newCacheId();
const autoId = newCacheId();
const refusedId = newCacheId();
const source = new StaticConfigSource([
  cacheConfig(offId, 'off'),
  cacheConfig(autoId, 'auto'),
  // Nothing listens on port 1.
  cacheConfig(refusedId, 'off', 1),
]);
const internalErrors: object[] = [];
const logger: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
  error: (obj) => internalErrors.push(obj),
};
const direct = new pg.Client(ORIGIN);
let edge: RunningEdge;
// Connected through the edge for the whole file: no other session's trouble may reach it.
let bystander: pg.Client;

function edgeClient(applicationName: string): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: edge.port,
    user: ORIGIN.user,
    database: ORIGIN.database,
    application_name: applicationName,
  });
}

async function originBackends(
  applicationName: string,
): Promise<{ pid: number; state: string; wait: string | null }[]> {
  const result = await direct.query<{ pid: number; state: string; wait: string | null }>(
    'select pid, state, wait_event as wait from pg_stat_activity where application_name = $1',
    [applicationName],
  );
  return result.rows;
}

// The edge still serves its other session and a new one, and has no session left over.
async function expectEdgeStillServes(): Promise<void> {
  expect((await bystander.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
  const fresh = edgeClient(offId);
  await fresh.connect();
  try {
    expect((await fresh.query('select $1::int + 1 as n', [1])).rows).toEqual([{ n: 2 }]);
  } finally {
    await fresh.end();
  }
  await vi.waitFor(() => expect(edge.server.sessionCount).toBe(1), { timeout: 5000 });
  expect(internalErrors).toEqual([]);
}

beforeAll(async () => {
  edge = await startEdge({ source, logger });
  await direct.connect();
  bystander = edgeClient(offId);
  await bystander.connect();
});

afterAll(async () => {
  await bystander?.end();
  await edge?.close();
  await direct.end();
});

describe('one bad session never takes the edge down', () => {
  it('a client that disconnects in the middle of a long query ends only its session', async () => {
    const name = tag('abandoned');
    const client = await RawClient.login(edge.port, `${offId}:${name}`);
    client.socket.write(serialize.query('select pg_sleep(2)'));
    await sleep(100);
    await vi.waitFor(
      async () =>
        expect(await originBackends(name)).toMatchObject([{ state: 'active', wait: 'PgSleep' }]),
      { timeout: 1000, interval: 20 },
    );
    client.socket.destroy();
    await vi.waitFor(() => expect(edge.server.sessionCount).toBe(1), { timeout: 1000 });
    // The origin connection is closed too: its backend exits once the sleep is over.
    await vi.waitFor(async () => expect(await originBackends(name)).toEqual([]), {
      timeout: 5000,
      interval: 100,
    });
    await expectEdgeStillServes();
  });

  it('a client that leads a cached miss and disconnects does not strand the one waiting on it', async () => {
    const sql = `select count(*) as n from generate_series(1, 6000000) /* ${tag('leader')} */`;
    const { uncacheable, hits } = edge.runtime.stats(autoId);
    const leader = await RawClient.login(edge.port, autoId);
    const follower = await RawClient.login(edge.port, autoId);
    leader.socket.write(serialize.query(sql));
    await sleep(50);
    follower.socket.write(serialize.query(sql));
    await sleep(50);
    leader.socket.destroy();
    await follower.until((messages) => messages.some((m) => m.kind === 'readyForQuery'), 10_000);
    expect(kinds(follower.messages)).toBe('rowDescription,dataRow,commandComplete,readyForQuery');
    const row = follower.messages[1];
    expect(row?.kind === 'dataRow' && dataRowText(row)).toEqual(['6000000']);
    // The follower waited on the leader's miss, then asked the origin itself.
    expect(edge.runtime.stats(autoId).uncacheable - uncacheable).toBe(1);
    expect(edge.runtime.stats(autoId).hits - hits).toBe(0);
    follower.socket.end(serialize.terminate());
    await follower.closed;
    await expectEdgeStillServes();
  });

  it("an idle client whose origin backend is terminated gets the origin's error", async () => {
    const name = tag('terminated-idle');
    const client = edgeClient(`${offId}:${name}`);
    const errors: (Error & { code?: string })[] = [];
    client.on('error', (error) => errors.push(error));
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    await client.connect();
    const [backend] = await originBackends(name);
    await direct.query('select pg_terminate_backend($1)', [backend?.pid]);
    await ended;
    // The origin's own FATAL (57P01 admin_shutdown) and nothing of the edge's; pg adds its own
    // "Connection terminated unexpectedly" (no SQLSTATE), as it does direct.
    const sqlStates = errors.flatMap((error) => (error.code === undefined ? [] : [error.code]));
    expect(sqlStates).toEqual(['57P01']);
    await expect(client.query('select 1')).rejects.toThrow();
    await expectEdgeStillServes();
  });

  it("a terminated origin backend's FATAL reaches the client alone: one ErrorResponse, then the close", async () => {
    const name = tag('terminated-once');
    const client = await RawClient.login(edge.port, `${offId}:${name}`);
    const [backend] = await originBackends(name);
    await direct.query('select pg_terminate_backend($1)', [backend?.pid]);
    expect(await client.closed).toEqual({ hadError: false });
    // Postgres sends one message and closes; a second (08006) would be raised by drivers as an
    // unhandled error after the first.
    expect(kinds(client.messages)).toBe('errorResponse');
    expect(errorFields(client.messages)).toMatchObject({ S: 'FATAL', C: '57P01' });
    await expectEdgeStillServes();
  });

  it('a client that disconnects in the middle of a query has that query cancelled on the origin', async () => {
    const name = tag('cancelled');
    const client = await RawClient.login(edge.port, `${offId}:${name}`);
    client.socket.write(serialize.query('select pg_sleep(30)'));
    await vi.waitFor(
      async () =>
        expect(await originBackends(name)).toMatchObject([{ state: 'active', wait: 'PgSleep' }]),
      { timeout: 2000, interval: 20 },
    );
    client.socket.destroy();
    // Without a cancel the backend would sleep on for 30 s (it notices a lost client only when it
    // writes).
    await vi.waitFor(async () => expect(await originBackends(name)).toEqual([]), {
      timeout: 3000,
      interval: 100,
    });
    await expectEdgeStillServes();
  });

  it('a Terminate sent before the startup packet closes the connection without a word, as Postgres does', async () => {
    const client = await RawClient.connect(edge.port);
    client.socket.write(
      Buffer.concat([
        serialize.terminate(),
        serialize.startupMessage({ user: ORIGIN.user, database: ORIGIN.database }),
      ]),
    );
    expect(await client.closed).toEqual({ hadError: false });
    expect(client.messages).toEqual([]);
    await expectEdgeStillServes();
  });

  it('node-postgres ending a client right after connect() gets no protocol error', async () => {
    const errors: (Error & { code?: string })[] = [];
    const client = edgeClient(offId);
    client.on('error', (error) => errors.push(error));
    // pg queues Terminate before its startup packet when end() follows connect() at once. Its
    // connect() then never settles, as it does not with Postgres direct: only errors count here.
    void client.connect().catch((error: Error) => errors.push(error));
    await client.end();
    await sleep(200);
    expect(errors.filter((error) => error.code !== undefined)).toEqual([]);
    await expectEdgeStillServes();
  });

  it('a query whose origin backend is terminated fails with the origin error', async () => {
    const name = tag('terminated-busy');
    const client = edgeClient(`${offId}:${name}`);
    client.on('error', () => undefined);
    await client.connect();
    // Handled from the start: the failure may arrive before the terminate call below returns.
    const running = client.query('select pg_sleep(5)').catch((caught: unknown) => caught);
    await vi.waitFor(
      async () => expect(await originBackends(name)).toMatchObject([{ state: 'active' }]),
      {
        timeout: 2000,
        interval: 20,
      },
    );
    const [backend] = await originBackends(name);
    await direct.query('select pg_terminate_backend($1)', [backend?.pid]);
    const error = (await running) as Error & { code?: string };
    expect(error).toBeInstanceOf(Error);
    expect(['57P01', '08006']).toContain(error.code);
    await client.end().catch(() => undefined);
    await expectEdgeStillServes();
  });

  it('an origin that refuses connections is a 08001 error at connect', async () => {
    const client = edgeClient(refusedId);
    client.on('error', () => undefined);
    await expect(client.connect()).rejects.toMatchObject({
      code: '08001',
      message: expect.stringContaining('127.0.0.1:1'),
    });
    await expectEdgeStillServes();
  });

  it('a malformed message after startup is a 08P01 error, then the connection closes', async () => {
    const name = tag('malformed');
    const client = await RawClient.login(edge.port, `${offId}:${name}`);
    // A Query whose length (2) is shorter than the length field itself.
    client.socket.write(Buffer.from([codes.Query, 0, 0, 0, 2]));
    expect(await client.closed).toEqual({ hadError: false });
    expect(kinds(client.messages)).toBe('errorResponse');
    expect(errorFields(client.messages)).toMatchObject({ S: 'FATAL', C: '08P01' });
    await vi.waitFor(async () => expect(await originBackends(name)).toEqual([]), {
      timeout: 2000,
      interval: 50,
    });
    await expectEdgeStillServes();
  });

  it('an oversized startup packet is a 08P01 error, then the connection closes', async () => {
    const client = await RawClient.connect(edge.port);
    const header = Buffer.alloc(8);
    header.writeInt32BE(100_000, 0);
    header.writeInt32BE(codes.ProtocolVersion3, 4);
    client.socket.write(Buffer.concat([header, Buffer.alloc(4096, 0x61)]));
    expect(await client.closed).toEqual({ hadError: false });
    expect(kinds(client.messages)).toBe('errorResponse');
    expect(errorFields(client.messages)).toMatchObject({ C: '08P01' });
    await expectEdgeStillServes();
  });

  it('keeps serving after 200 connections send random and mutated messages', async () => {
    const random = prng(0xed9e);
    const name = tag('fuzz');
    const login = serialize.startupMessage({
      user: ORIGIN.user,
      database: ORIGIN.database,
      application_name: `${offId}:${name}`,
    });
    const valid = [
      serialize.query('select 1'),
      serialize.query("select 'x' as y, 2 as z"),
      serialize.parse({ name: 's', sql: 'select $1::int', paramTypes: [23] }),
      serialize.bind({ statement: 's', params: ['1'], resultFormats: [1] }),
      serialize.describe('S', 's'),
      serialize.describe('P'),
      serialize.execute(),
      serialize.sync(),
      serialize.flush(),
      serialize.close('S', 's'),
      serialize.copyData(Buffer.from('1\n')),
      serialize.copyDone(),
      serialize.copyFail('stop'),
      serialize.terminate(),
    ];
    const outcomes = { protocolError: 0, answered: 0, closed: 0, silent: 0 };

    async function fuzzOne(): Promise<void> {
      const shape = random(4);
      let input: Buffer;
      let client: RawClient;
      if (shape === 0) {
        client = await RawClient.connect(edge.port);
        input = randomBytesFrom(random, 1 + random(300));
      } else if (shape === 1) {
        client = await RawClient.connect(edge.port);
        input = login;
        for (let n = 1 + random(3); n > 0; n--) input = mutate(random, input);
      } else {
        do {
          input = Buffer.concat(
            Array.from({ length: 1 + random(6) }, () => valid[random(valid.length)] as Buffer),
          );
          for (let n = random(4); n > 0; n--) input = mutate(random, input);
        } while (input.length === 0 || callsAFunction(input));
        client = await RawClient.login(edge.port, `${offId}:${name}`);
      }
      client.socket.write(input);
      await Promise.race([client.closed, sleep(250)]);
      if (errorFields(client.messages)?.C === '08P01') outcomes.protocolError += 1;
      else if (client.messages.some((m) => m.kind === 'readyForQuery')) outcomes.answered += 1;
      else if (client.isClosed) outcomes.closed += 1;
      else outcomes.silent += 1;
      client.socket.destroy();
    }

    const workers = Array.from({ length: 10 }, async () => {
      for (let i = 0; i < 20; i++) await fuzzOne();
    });
    await Promise.all(workers);
    // Both paths were exercised: messages the edge refused, and ones the origin answered.
    expect(outcomes.protocolError).toBeGreaterThan(20);
    expect(outcomes.answered).toBeGreaterThan(5);
    await vi.waitFor(() => expect(edge.server.sessionCount).toBe(1), { timeout: 5000 });
    await vi.waitFor(async () => expect(await originBackends(name)).toEqual([]), {
      timeout: 5000,
      interval: 100,
    });
    await expectEdgeStillServes();
  });

  it.each([
    { mode: 'off', id: offId },
    { mode: 'auto', id: autoId },
  ])(
    'does not buffer a big result for a client that stops reading (caching $mode)',
    async ({ id }) => {
      const name = tag('slow');
      const client = await RawClient.login(edge.port, `${id}:${name}`);
      let rows = 0;
      let wrongRows = 0;
      const rowBytes = 5 + 2 + 4 + 1000;
      client.onMessage = (message) => {
        if (message.kind !== 'dataRow') {
          client.messages.push(message);
          return;
        }
        rows += 1;
        if (message.frame.length !== rowBytes || message.frame[rowBytes - 1] !== 0x78)
          wrongRows += 1;
      };
      client.socket.pause();
      const before = process.memoryUsage().rss;
      client.socket.write(
        serialize.query(`select repeat('x', 1000) from generate_series(1, 200000) /* ${name} */`),
      );
      let peak = before;
      for (let waited = 0; waited < 2000; waited += 100) {
        await sleep(100);
        peak = Math.max(peak, process.memoryUsage().rss);
      }
      // About 200 MB of rows are waiting: the edge must have stopped reading from the origin.
      expect(peak - before).toBeLessThan(100 * 1024 * 1024);
      expect(await originBackends(name)).toMatchObject([{ state: 'active', wait: 'ClientWrite' }]);

      client.socket.resume();
      await client.until((messages) => messages.some((m) => m.kind === 'readyForQuery'), 20_000);
      expect(rows).toBe(200_000);
      expect(wrongRows).toBe(0);
      expect(kinds(client.messages)).toBe('rowDescription,commandComplete,readyForQuery');
      expect(client.messages[1]).toMatchObject({ tag: 'SELECT 200000' });
      client.socket.end(serialize.terminate());
      await client.closed;
      await expectEdgeStillServes();
    },
  );

  it('a client that sends Terminate is closed cleanly, and so is its origin connection', async () => {
    const name = tag('terminate');
    const client = await RawClient.login(edge.port, `${offId}:${name}`);
    expect(await originBackends(name)).toHaveLength(1);
    client.socket.write(serialize.terminate());
    expect(await client.closed).toEqual({ hadError: false });
    expect(client.messages).toEqual([]);
    await vi.waitFor(async () => expect(await originBackends(name)).toEqual([]), {
      timeout: 2000,
      interval: 50,
    });
    await expectEdgeStillServes();
  });
});
