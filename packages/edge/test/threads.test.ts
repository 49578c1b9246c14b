// The edge on several threads sharing one port: connections spread over the threads, a write
// through any thread makes every thread's next read fresh at once (shared epochs), cancel keys and
// config changes reach every thread, and the host's totals add up what each thread counted.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeThreads, type EdgeCacheConfig, type EdgeLogger } from '../src/index.ts';
import { serialize } from '../src/pg/protocol/index.ts';
import { cacheConfig, LOCAL_POSTGRES, newCacheId } from './helpers/cache-config.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const ORIGIN = LOCAL_POSTGRES;
const THREADS = 2;

const id = newCacheId();
const table = `edge_threads_${randomBytes(4).toString('hex')}`;
const logged: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = [];
const record =
  (level: string) =>
  (obj: object, msg?: string): void => {
    logged.push({ level, obj: obj as Record<string, unknown>, msg });
  };
const logger: EdgeLogger = {
  info: record('info'),
  warn: record('warn'),
  error: record('error'),
  debug: record('debug'),
};

// A store that can fail to answer for some caches, as a store that is down would.
class FlakySource extends StaticConfigSource {
  readonly failing = new Set<string>();

  override async loadCache(cacheId: string): Promise<EdgeCacheConfig | null> {
    if (this.failing.has(cacheId)) throw new Error('the store is not answering');
    return super.loadCache(cacheId);
  }
}
let source: FlakySource;
let edge: EdgeThreads;
let admin: pg.Client;
const clients: pg.Client[] = [];

async function viaEdge(cache = id): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: edge.port,
    user: ORIGIN.user,
    database: ORIGIN.database,
    application_name: cache,
  });
  await client.connect();
  clients.push(client);
  return client;
}

/**
 * One connection on each thread. The kernel picks the thread of a new connection, so this opens
 * connections until every thread has gained one, and tells which is which from the sessions each
 * thread reports.
 */
async function oneClientPerThread(): Promise<pg.Client[]> {
  const mine: (pg.Client | undefined)[] = new Array<pg.Client | undefined>(THREADS);
  let before = (await edge.collect()).map((report) => report.sessions);
  for (let attempt = 0; attempt < 64 && mine.includes(undefined); attempt++) {
    const client = await viaEdge();
    const after = (await edge.collect()).map((report) => report.sessions);
    const thread = after.findIndex((sessions, i) => sessions > (before[i] as number));
    if (thread >= 0 && mine[thread] === undefined) mine[thread] = client;
    before = after;
  }
  expect(mine).not.toContain(undefined);
  return mine as pg.Client[];
}

async function totals() {
  await edge.collect();
  const { hits, misses, uncacheable } = edge.stats(id);
  return { hits, misses, uncacheable };
}

beforeAll(async () => {
  admin = new pg.Client(ORIGIN);
  await admin.connect();
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
  await admin.query(`INSERT INTO ${table} VALUES (1, 'one'), (2, 'two')`);
  source = new FlakySource([cacheConfig(id)]);
  edge = await EdgeThreads.start({
    threads: THREADS,
    host: '127.0.0.1',
    port: 0,
    tls: null,
    cacheMaxBytes: 16 * 1024 * 1024,
    guard: null,
    source,
    logger,
  });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  await edge?.close();
  await admin?.query(`DROP TABLE IF EXISTS ${table}`);
  await admin?.end();
});

describe('the edge on several threads', () => {
  it('listens on one port with every thread, each serving reads and hits', async () => {
    expect(edge.threads).toBe(THREADS);
    const perThread = await oneClientPerThread();
    const before = await totals();
    for (const client of perThread) {
      const sql = `SELECT v FROM ${table} WHERE id = 2 AND ${perThread.indexOf(client)} >= 0`;
      expect((await client.query(sql)).rows).toEqual([{ v: 'two' }]);
      expect((await client.query(sql)).rows).toEqual([{ v: 'two' }]);
    }
    const after = await totals();
    expect(after.hits - before.hits).toBe(THREADS);
    expect(after.misses - before.misses).toBe(THREADS);
    const reports = await edge.collect();
    expect(reports.every((report) => report.entries >= 1 && report.cacheBytes > 0)).toBe(true);
    expect(edge.cacheBytes()).toBe(reports.reduce((sum, report) => sum + report.cacheBytes, 0));
  });

  it("a write through one thread makes the other thread's next read fresh", async () => {
    const [writer, reader] = await oneClientPerThread();
    const read = `SELECT v FROM ${table} WHERE id = 1`;
    expect((await reader!.query(read)).rows).toEqual([{ v: 'one' }]);
    const { hits } = await totals();
    expect((await reader!.query(read)).rows).toEqual([{ v: 'one' }]);
    expect((await totals()).hits).toBe(hits + 1);
    await writer!.query(`UPDATE ${table} SET v = 'uno' WHERE id = 1`);
    expect((await reader!.query(read)).rows).toEqual([{ v: 'uno' }]);
    // And back the other way: the reader's thread writes, the writer's thread had it cached.
    expect((await writer!.query(read)).rows).toEqual([{ v: 'uno' }]);
    expect((await writer!.query(read)).rows).toEqual([{ v: 'uno' }]);
    await reader!.query(`UPDATE ${table} SET v = 'eins' WHERE id = 1`);
    expect((await writer!.query(read)).rows).toEqual([{ v: 'eins' }]);
  });

  it('a write in a transaction reaches the other thread at COMMIT, and a ROLLBACK drops nothing', async () => {
    const [writer, reader] = await oneClientPerThread();
    const read = `SELECT v FROM ${table} WHERE id = 2`;
    await reader!.query(read);
    await writer!.query('BEGIN');
    await writer!.query(`UPDATE ${table} SET v = 'deux' WHERE id = 2`);
    await writer!.query('ROLLBACK');
    const { hits } = await totals();
    expect((await reader!.query(read)).rows).toEqual([{ v: 'two' }]);
    expect((await totals()).hits).toBe(hits + 1);
    await writer!.query('BEGIN');
    await writer!.query(`UPDATE ${table} SET v = 'zwei' WHERE id = 2`);
    expect((await reader!.query(read)).rows).toEqual([{ v: 'two' }]);
    await writer!.query('COMMIT');
    expect((await reader!.query(read)).rows).toEqual([{ v: 'zwei' }]);
  });

  // The kernel picks the thread of each cancel connection: over eight cancels, some land on the
  // thread that holds the session and some on the other (all on one: 1 chance in 128).
  it('a CancelRequest cancels the query whichever thread receives it', async () => {
    const perThread = await oneClientPerThread();
    for (let attempt = 0; attempt < 8; attempt++) {
      const client = perThread[attempt % THREADS] as pg.Client;
      const running = client.query('SELECT pg_sleep(5)');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const { processID, secretKey } = client as unknown as {
        processID: number;
        secretKey: number;
      };
      const socket = net.connect({ host: '127.0.0.1', port: edge.port });
      socket.on('error', () => undefined);
      socket.end(serialize.cancelRequest(processID, secretKey));
      await expect(running).rejects.toMatchObject({ code: '57014' });
    }
  });

  it('a config change reaches every thread: each drops what it had cached', async () => {
    const perThread = await oneClientPerThread();
    const read = `SELECT v FROM ${table} WHERE id = 1 AND 'config' = 'config'`;
    // A thread counts a read just after answering it: wait until it is counted, then say which.
    const counted = async (client: pg.Client): Promise<'hit' | 'miss'> => {
      const before = await totals();
      await client.query(read);
      // Generous: the threads answer between other test files' work on two cores.
      const deadline = Date.now() + 5000;
      for (;;) {
        const after = await totals();
        if (after.hits + after.misses > before.hits + before.misses)
          return after.misses > before.misses ? 'miss' : 'hit';
        expect(Date.now()).toBeLessThan(deadline);
      }
    };
    for (const client of perThread) await counted(client);
    for (const client of perThread) expect(await counted(client), 'before').toBe('hit');
    // The new config still caches this read, so a miss on a thread means that thread dropped it.
    source.set(cacheConfig(id, { defaultTtlSeconds: 120 }));
    const deadline = Date.now() + 5000;
    const missed = new Set<number>();
    while (missed.size < THREADS) {
      for (const [thread, client] of perThread.entries()) {
        if ((await counted(client)) === 'miss') missed.add(thread);
      }
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // And each thread caches again under the new config. (Each thread drops the cache's results
    // when it reloads, in the epochs every thread shares: a thread that reloads later drops what
    // an earlier one stored again since, so a thread may miss once more before it hits.)
    for (const client of perThread) {
      const until = Date.now() + 5000;
      while ((await counted(client)) !== 'hit') expect(Date.now(), 'after').toBeLessThan(until);
    }
    source.set(cacheConfig(id));
  });

  it('a deleted cache is refused on every thread', async () => {
    const gone = newCacheId();
    source.set(cacheConfig(gone));
    await (await viaEdge(gone)).query('SELECT 1');
    source.delete(gone);
    // The notice reaches the threads within a second; after that no thread lets anyone in.
    const deadline = Date.now() + 1000;
    while (
      await viaEdge(gone).then(
        () => true,
        () => false,
      )
    ) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    for (let i = 0; i < 8; i++) {
      await expect(viaEdge(gone)).rejects.toMatchObject({ code: '08004' });
    }
  });

  it("the threads log through the host's logger, errors with their message", async () => {
    const flaky = newCacheId();
    source.set(cacheConfig(flaky));
    source.failing.add(flaky);
    source.set(cacheConfig(flaky));
    const deadline = Date.now() + 1000;
    const reloads = () => logged.filter((entry) => entry.msg === 'could not reload a cache config');
    while (reloads().length < THREADS) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(new Set(reloads().map((entry) => entry.obj.worker))).toEqual(new Set([0, 1]));
    expect(reloads()[0]).toMatchObject({
      level: 'error',
      obj: { cacheId: flaky, err: { message: 'the store is not answering' } },
    });
  });

  // SO_REUSEPORT would let a second edge's threads share the port (and its traffic) with this one.
  it('a second edge on the same port is refused, and this one keeps serving', async () => {
    await expect(
      EdgeThreads.start({
        threads: THREADS,
        host: '127.0.0.1',
        port: edge.port,
        tls: null,
        cacheMaxBytes: 16 * 1024 * 1024,
        guard: null,
        source,
        logger,
      }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
    const reports = await edge.collect();
    expect(reports).toHaveLength(THREADS);
    expect((await (await viaEdge()).query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});

describe('an edge thread that dies', () => {
  const crash = newCacheId();
  const alive = newCacheId();
  let pool: EdgeThreads;
  const errors: string[] = [];

  const start = () =>
    EdgeThreads.start({
      threads: THREADS,
      host: '127.0.0.1',
      port: 0,
      tls: null,
      cacheMaxBytes: 16 * 1024 * 1024,
      guard: {
        module: new URL('./helpers/crashing-guard.ts', import.meta.url).href,
        name: 'crashingGuard',
        argument: null,
      },
      source: new StaticConfigSource([
        cacheConfig(crash, { hostname: '127.0.0.2' }),
        cacheConfig(alive),
      ]),
      logger: { ...logger, error: (_obj, msg) => errors.push(msg ?? '') },
    });

  const connect = async (cache: string) => {
    const client = new pg.Client({ ...ORIGIN, port: pool.port, application_name: cache });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };

  afterAll(async () => {
    await pool?.close();
  });

  it('is replaced: its sessions end, the port keeps serving, and the new thread serves too', async () => {
    pool = await start();
    const survivor = await connect(alive);
    await expect(connect(crash)).rejects.toThrow();
    const deadline = Date.now() + 5000;
    while (
      !errors.some((msg) => /stopped \(exit code 3\); starting a new one in 1000 ms/.test(msg))
    ) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // The thread that held the survivor may have been the one that died; either way the port answers.
    await survivor.end().catch(() => undefined);
    while ((await pool.collect()).length < THREADS) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (let i = 0; i < 8; i++) {
      const client = await connect(alive);
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await client.end();
    }
  });

  it('closing while a thread is being replaced stops every thread and frees the port', async () => {
    const logged = errors.length;
    await expect(connect(crash)).rejects.toThrow();
    const deadline = Date.now() + 5000;
    while (errors.length === logged) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // Close just after the new thread has begun to start (1 s, or 2 s for a second death in a row).
    const delay = Number(/starting a new one in (\d+) ms/.exec(errors.at(-1) ?? '')?.[1]);
    expect([1000, 2000]).toContain(delay);
    await new Promise((resolve) => setTimeout(resolve, delay + 30));
    const port = pool.port;
    await pool.close();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await expect(
      new Promise((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port }, () => {
          socket.destroy();
          resolve('connected');
        });
        socket.on('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('refusals on several threads', () => {
  it('add up on the host: every connection refused over a cap is counted once', async () => {
    const pool = await EdgeThreads.start({
      threads: THREADS,
      host: '127.0.0.1',
      port: 0,
      tls: null,
      cacheMaxBytes: 1024 * 1024,
      connectionCaps: { maxConnections: 2, maxPerAddress: 2 },
      guard: null,
      source: new StaticConfigSource([]),
      logger,
    });
    const sockets: net.Socket[] = [];
    const open = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect(pool.port, '127.0.0.1', () => resolve(socket));
        socket.once('error', reject);
        sockets.push(socket);
      });
    try {
      // Two connections that stay in startup hold both places; five more are refused.
      await Promise.all([open(), open()]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const socket = await open();
          const closed = new Promise((resolve) => socket.once('close', resolve));
          socket.on('error', () => undefined);
          // Read what the edge sends (its 53300), so its end reaches us.
          socket.resume();
          await closed;
        }),
      );
      expect(refused).toHaveLength(5);
      await pool.collect();
      const counted = pool.refused();
      expect(counted.total + counted.address).toBe(5);
      // A second collect adds nothing: each thread reports only what is new.
      await pool.collect();
      expect(pool.refused()).toEqual(counted);
    } finally {
      for (const socket of sockets) socket.destroy();
      await pool.close();
    }
  });
});
