// The shared second level through real edges, a real Redis and real origins (the machine's
// Postgres and MariaDB): a fresh node serves at once what another node read, a write makes it
// unusable, a store racing a write is dropped, protocols, users and databases never share, big
// results stay local, the rule's TTL bounds an entry, and a Redis that is down or paused costs a
// trip to the origin, never an error.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SharedResults, type EdgeCacheConfig } from '../src/index.ts';
import { serialize } from '../src/pg/protocol/index.ts';
import { entryKey, versionsKey } from '../src/cluster/shared-results.ts';
import { cacheConfig, newCacheId } from './helpers/cache-config.ts';
import { mariadbCache } from './helpers/mysql-edge.ts';
import {
  bumpVersions,
  startSharedNode,
  startThrowawayRedis,
  until,
  type SharedNode,
} from './helpers/shared-node.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';
const suffix = randomBytes(4).toString('hex');
const schema = `edge_l2_${suffix}`;
const otherUser = `edge_l2_u_${suffix}`;
const dbA = `edge_l2_a_${suffix}`;
const dbB = `edge_l2_b_${suffix}`;

let redis: Redis;
let admin: pg.Client;
let myAdmin: mysql.Connection;
const source = new StaticConfigSource();
const nodes: SharedNode[] = [];
const pgClients: pg.Client[] = [];
const myClients: mysql.Connection[] = [];
const created: string[] = [];

async function node(
  maxEntryBytes?: number,
  redisUrl = REDIS_URL,
  connected = true,
  pauseMs?: number,
): Promise<SharedNode> {
  const started = await startSharedNode({
    source,
    redis,
    connected,
    shared: {
      redisUrl,
      ...(maxEntryBytes === undefined ? {} : { maxEntryBytes }),
      ...(pauseMs === undefined ? {} : { pauseMs }),
    },
  });
  nodes.push(started);
  return started;
}

function pgCache(changes: Partial<EdgeCacheConfig> = {}): string {
  const id = newCacheId();
  created.push(id);
  source.set(cacheConfig(id, { sharedResults: true, ...changes }));
  return id;
}

function myCache(changes: Partial<EdgeCacheConfig> = {}): string {
  const id = newCacheId();
  created.push(id);
  source.set(mariadbCache({ id, sharedResults: true, ...changes }));
  return id;
}

async function viaPg(at: SharedNode, id: string, user = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: at.pgPort,
    user,
    database: 'test',
    application_name: id,
  });
  await client.connect();
  pgClients.push(client);
  return client;
}

async function viaMysql(at: SharedNode, id: string, database: string): Promise<mysql.Connection> {
  const conn = await mysql.createConnection({
    host: '127.0.0.1',
    port: at.mysqlPort,
    user: `${id}-root`,
    database,
  });
  myClients.push(conn);
  return conn;
}

async function pgValue(client: pg.Client, sql: string): Promise<unknown> {
  const result = await client.query(sql);
  return result.rows[0]?.v;
}

async function myValue(conn: mysql.Connection, sql: string): Promise<unknown> {
  const [rows] = await conn.query(sql);
  return (rows as { v: unknown }[])[0]?.v;
}

// Reads through `at` and waits until the origin's answer is in Redis.
async function readAndShare(at: SharedNode, read: () => Promise<unknown>): Promise<unknown> {
  const stored = at.shared.counts.stored;
  const value = await read();
  await until(() => at.shared.counts.stored > stored);
  return value;
}

// Raw Postgres protocol: the exact bytes answered to `queries`, sent in one write (pipelined),
// up to the ReadyForQuery of the last.
async function pipelined(port: number, id: string | null, queries: string[]): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffer = Buffer.alloc(0);
  let wake = () => {};
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    wake();
  });
  // Everything up to and including the n-th ReadyForQuery from `from`, or null if not all here.
  const readies = (from: number, n: number): number | null => {
    let offset = from;
    let seen = 0;
    while (offset + 5 <= buffer.length) {
      const size = buffer.readInt32BE(offset + 1) + 1;
      if (offset + size > buffer.length) return null;
      const ready = buffer[offset] === 0x5a;
      offset += size;
      if (ready && ++seen === n) return offset;
    }
    return null;
  };
  const until = async (from: number, n: number): Promise<number> => {
    for (;;) {
      const end = readies(from, n);
      if (end !== null) return end;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  try {
    socket.write(
      serialize.startupMessage({
        user: 'postgres',
        database: 'test',
        ...(id === null ? {} : { application_name: id }),
      }),
    );
    const start = await until(0, 1);
    socket.write(Buffer.concat(queries.map((sql) => serialize.query(sql))));
    const end = await until(start, queries.length);
    return buffer.subarray(start, end);
  } finally {
    socket.destroy();
  }
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await admin.connect();
  await admin.query(`
    CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text);
    INSERT INTO ${schema}.t VALUES (1, 'one'), (2, 'two');
    CREATE TABLE ${schema}.big (id int PRIMARY KEY, v text);
    INSERT INTO ${schema}.big SELECT g, repeat('x', 100) FROM generate_series(1, 50) g;
    CREATE ROLE ${otherUser} LOGIN;
    GRANT USAGE ON SCHEMA ${schema} TO ${otherUser};
    GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${otherUser};
  `);
  myAdmin = await mysql.createConnection({
    host: '127.0.0.1',
    port: 3306,
    user: 'root',
    multipleStatements: true,
  });
  await myAdmin.query(`
    CREATE DATABASE ${dbA}; CREATE DATABASE ${dbB};
    CREATE TABLE ${dbA}.t (id int PRIMARY KEY, v varchar(40));
    CREATE TABLE ${dbB}.t (id int PRIMARY KEY, v varchar(40));
    INSERT INTO ${dbA}.t VALUES (1, 'a-one'); INSERT INTO ${dbB}.t VALUES (1, 'b-one');
  `);
});

afterEach(async () => {
  await Promise.all(pgClients.splice(0).map((client) => client.end().catch(() => undefined)));
  await Promise.all(myClients.splice(0).map((conn) => conn.end().catch(() => undefined)));
  await Promise.all(nodes.splice(0).map((at) => at.close()));
});

afterAll(async () => {
  await admin?.query(`
    DROP SCHEMA IF EXISTS ${schema} CASCADE;
    DROP ROLE IF EXISTS ${otherUser};
  `);
  await admin?.end();
  await myAdmin?.query(`DROP DATABASE IF EXISTS ${dbA}; DROP DATABASE IF EXISTS ${dbB}`);
  await myAdmin?.end();
  for (const id of created) {
    const keys = await redis.keys(`eg:{${id}}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

describe('Postgres through two edge nodes', () => {
  it('a fresh node serves at once, from Redis, a result another node read', async () => {
    const id = pgCache();
    const a = await node();
    const sql = `SELECT v FROM ${schema}.t WHERE id = 1`;
    const first = await viaPg(a, id);
    expect(await readAndShare(a, () => pgValue(first, sql))).toBe('one');

    const b = await node();
    const second = await viaPg(b, id);
    expect(await pgValue(second, sql)).toBe('one');
    expect(b.shared.counts.hits).toBe(1);
    expect(b.runtime.stats(id).hits).toBe(1);
    expect(b.runtime.stats(id).misses).toBe(0);
    // Filled into B's local store: the next read does not go to Redis.
    expect(await pgValue(second, sql)).toBe('one');
    expect(b.shared.counts.hits).toBe(1);
    expect(b.runtime.stats(id).hits).toBe(2);
    // The extended protocol has its own key, shared alike.
    await readAndShare(a, async () => (await first.query(`${sql} AND $1 = 1`, [1])).rows[0]?.v);
    expect((await second.query(`${sql} AND $1 = 1`, [1])).rows[0]?.v).toBe('one');
    expect(b.shared.counts.hits).toBe(2);
  });

  it('a write through a node makes the shared entry unusable on every node', async () => {
    const id = pgCache();
    const a = await node();
    const sql = `SELECT v FROM ${schema}.t WHERE id = 2`;
    const onA = await viaPg(a, id);
    await readAndShare(a, () => pgValue(onA, sql));
    await onA.query(`UPDATE ${schema}.t SET v = 'two!' WHERE id = 2`);
    const b = await node();
    const onB = await viaPg(b, id);
    expect(await pgValue(onB, sql)).toBe('two!');
    expect(b.shared.counts.hits).toBe(0);
    expect(b.runtime.stats(id).misses).toBe(1);
    // A bump of `*` (a write to every table) does the same.
    await until(() => b.shared.counts.stored > 0);
    await bumpVersions(redis, id, 'all');
    const c = await node();
    expect(await pgValue(await viaPg(c, id), sql)).toBe('two!');
    expect(c.shared.counts.hits).toBe(0);
    await admin.query(`UPDATE ${schema}.t SET v = 'two' WHERE id = 2`);
  });

  it('a changed config shares nothing with the old one (a TTL cut short)', async () => {
    const id = pgCache();
    const a = await node();
    const sql = `SELECT v FROM ${schema}.t WHERE id = 1`;
    expect(await readAndShare(a, async () => pgValue(await viaPg(a, id), sql))).toBe('one');
    source.set(cacheConfig(id, { sharedResults: true, defaultTtlSeconds: 1 }));
    // The entry is still in Redis, with most of its old 60 s left: a fresh node does not use it.
    const b = await node();
    expect(await pgValue(await viaPg(b, id), sql)).toBe('one');
    expect(b.shared.counts.hits).toBe(0);
    expect(b.runtime.stats(id).misses).toBe(1);
  });

  it('caching turned off and on again: a write made while it was off is never served from Redis', async () => {
    const id = pgCache();
    await admin.query(`INSERT INTO ${schema}.t VALUES (30, 'thirty')`);
    try {
      const a = await node();
      const sql = `SELECT v FROM ${schema}.t WHERE id = 30`;
      const onA = await viaPg(a, id);
      expect(await readAndShare(a, () => pgValue(onA, sql))).toBe('thirty');
      const setMode = async (defaultMode: 'off' | 'auto') => {
        source.set(cacheConfig(id, { sharedResults: true, defaultMode }));
        for (;;) {
          const { config } = await a.runtime.cache(id);
          if (config?.defaultMode === defaultMode) break;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      };
      await setMode('off');
      await onA.query(`UPDATE ${schema}.t SET v = 'thirty!' WHERE id = 30`);
      await setMode('auto');
      // A fresh node finds nothing usable in Redis; a new session on the writing node reads fresh
      // too (the writing session itself no longer uses the cache: caching was off under it).
      const b = await node();
      const misses = b.shared.counts.misses;
      expect(await pgValue(await viaPg(b, id), sql)).toBe('thirty!');
      expect(b.shared.counts).toMatchObject({ hits: 0, misses: misses + 1 });
      expect(await pgValue(await viaPg(a, id), sql)).toBe('thirty!');
    } finally {
      await admin.query(`DELETE FROM ${schema}.t WHERE id = 30`);
    }
  });

  it('a read started after a write was answered is fresh on the writing node, even if it met the old shared entry while the versions were being bumped', async () => {
    const id = pgCache();
    const sql = `SELECT v FROM ${schema}.t WHERE id = 1 AND 2 = 2`;
    const x = await node();
    await readAndShare(x, async () => pgValue(await viaPg(x, id), sql));
    const a = await node();
    const writer = await viaPg(a, id);
    const reader = await viaPg(a, id);
    let release = () => {};
    a.bus.gate = new Promise((resolve) => (release = resolve));
    const write = writer.query(`UPDATE ${schema}.t SET v = 'uno' WHERE id = 1`);
    await until(() => a.bus.published === 1);
    // Committed at the origin, versions not bumped yet: a concurrent read may get the old result.
    expect(await pgValue(reader, sql)).toBe('one');
    expect(a.shared.counts.hits).toBe(1);
    release();
    await write;
    expect(await pgValue(reader, sql)).toBe('uno');
    await admin.query(`UPDATE ${schema}.t SET v = 'one' WHERE id = 1`);
  });

  it('a named prepared statement still reaches the origin on a node that finds its result shared', async () => {
    const id = pgCache();
    const text = `SELECT v FROM ${schema}.t WHERE id = $1`;
    const a = await node();
    const onA = await viaPg(a, id);
    // Shared by an unnamed statement of the same text and values (the same key).
    await readAndShare(a, async () => (await onA.query(text, [2])).rows[0]?.v);
    const b = await node();
    const onB = await viaPg(b, id);
    expect((await onB.query({ name: 'by_id', text, values: [2] })).rows[0]?.v).toBe('two');
    expect(b.shared.counts.hits).toBe(0);
    // The statement exists at the origin: the next Bind of it (without Parse) works.
    expect((await onB.query({ name: 'by_id', text, values: [1] })).rows[0]?.v).toBe('one');
  });

  it('pipelined reads come back in order, byte for byte as the origin sends them, hits from Redis among misses', async () => {
    const id = pgCache();
    const shared1 = `SELECT id, v FROM ${schema}.t WHERE id = 1 AND 4 = 4`;
    const shared2 = `SELECT id, v FROM ${schema}.t ORDER BY id`;
    const notShared = `SELECT v FROM ${schema}.t WHERE id = 2 AND 4 = 4`;
    const a = await node();
    // Through the same kind of client (the startup settings are part of the key).
    await pipelined(a.pgPort, id, [shared1, shared2]);
    await until(() => a.shared.counts.stored === 2);
    const queries = [shared1, notShared, shared2, shared1, notShared];
    const direct = await pipelined(5432, null, queries);
    const b = await node();
    expect(await pipelined(b.pgPort, id, queries)).toEqual(direct);
    expect(b.shared.counts.hits).toBe(2);
    expect(b.runtime.stats(id)).toMatchObject({ hits: 4, misses: 1 });
  });

  it('two users never share an entry', async () => {
    const id = pgCache();
    const a = await node();
    const sql = `SELECT v, current_user AS u FROM ${schema}.t WHERE id = 1`;
    const asPostgres = await viaPg(a, id);
    await readAndShare(a, () => pgValue(asPostgres, sql));
    const b = await node();
    const asOther = await viaPg(b, id, otherUser);
    expect((await asOther.query(sql)).rows[0]?.u).toBe(otherUser);
    expect(b.shared.counts.hits).toBe(0);
    expect(b.shared.counts.misses).toBe(1);
  });

  it('a result over the entry bound is served but not shared', async () => {
    const id = pgCache();
    const a = await node(2_000);
    const sql = `SELECT id, v FROM ${schema}.big ORDER BY id`;
    const onA = await viaPg(a, id);
    expect((await onA.query(sql)).rowCount).toBe(50);
    await until(() => a.shared.counts.oversize === 1);
    expect(a.shared.counts.stored).toBe(0);
    const b = await node();
    expect((await (await viaPg(b, id)).query(sql)).rowCount).toBe(50);
    expect(b.shared.counts.hits).toBe(0);
  });

  it('an entry lives no longer than the rule TTL', async () => {
    const id = pgCache({ defaultTtlSeconds: 1 });
    const a = await node();
    const sql = `SELECT v FROM ${schema}.t WHERE id = 1 AND true`;
    await readAndShare(a, async () => pgValue(await viaPg(a, id), sql));
    const [key] = await redis.keys(`eg:{${id}}:r:*`);
    const ttl = await redis.pttl(key as string);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1_000);
    await new Promise((resolve) => setTimeout(resolve, ttl + 50));
    const b = await node();
    expect(await pgValue(await viaPg(b, id), sql)).toBe('one');
    expect(b.shared.counts.hits).toBe(0);
  });

  it('a cache without the setting neither looks in Redis nor stores there', async () => {
    const id = pgCache({ sharedResults: false });
    const a = await node();
    const client = await viaPg(a, id);
    await pgValue(client, `SELECT v FROM ${schema}.t WHERE id = 1`);
    await pgValue(client, `SELECT v FROM ${schema}.t WHERE id = 2`);
    expect(a.shared.counts).toMatchObject({ hits: 0, misses: 0, stored: 0, errors: 0 });
    expect(await redis.exists(versionsKey(id))).toBe(0);
  });

  it('a node whose bus is not serving does not use the second level', async () => {
    const id = pgCache();
    const a = await node();
    a.bus.serving = false;
    await pgValue(await viaPg(a, id), `SELECT v FROM ${schema}.t WHERE id = 1`);
    expect(a.shared.counts).toMatchObject({ hits: 0, misses: 0, stored: 0 });
  });
});

describe('MariaDB through two edge nodes', () => {
  it('a fresh node serves from Redis, and each database keeps its own results', async () => {
    const id = myCache();
    const a = await node();
    const sql = 'SELECT v FROM t WHERE id = 1';
    const onA = await viaMysql(a, id, dbA);
    expect(await readAndShare(a, () => myValue(onA, sql))).toBe('a-one');
    const b = await node();
    expect(await myValue(await viaMysql(b, id, dbA), sql)).toBe('a-one');
    expect(b.shared.counts.hits).toBe(1);
    // The same text in another database is another result.
    expect(await myValue(await viaMysql(b, id, dbB), sql)).toBe('b-one');
    expect(b.shared.counts.hits).toBe(1);
  });

  it('caching turned off and on again: a write made while it was off is never served from Redis', async () => {
    const id = myCache();
    await myAdmin.query(`INSERT INTO ${dbA}.t VALUES (30, 'a-thirty')`);
    try {
      const a = await node();
      const sql = 'SELECT v FROM t WHERE id = 30';
      const onA = await viaMysql(a, id, dbA);
      expect(await readAndShare(a, () => myValue(onA, sql))).toBe('a-thirty');
      const setMode = async (defaultMode: 'off' | 'auto') => {
        source.set(mariadbCache({ id, sharedResults: true, defaultMode }));
        for (;;) {
          const { config } = await a.runtime.cache(id);
          if (config?.defaultMode === defaultMode) break;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      };
      await setMode('off');
      await onA.query(`UPDATE t SET v = 'a-thirty!' WHERE id = 30`);
      await setMode('auto');
      const b = await node();
      const misses = b.shared.counts.misses;
      expect(await myValue(await viaMysql(b, id, dbA), sql)).toBe('a-thirty!');
      expect(b.shared.counts).toMatchObject({ hits: 0, misses: misses + 1 });
      expect(await myValue(await viaMysql(a, id, dbA), sql)).toBe('a-thirty!');
    } finally {
      await myAdmin.query(`DELETE FROM ${dbA}.t WHERE id = 30`);
    }
  });

  it('prepared statements (COM_STMT_EXECUTE) are shared too, by their parameters', async () => {
    const id = myCache();
    const sql = 'SELECT v FROM t WHERE id = ? AND 3 = 3';
    const a = await node();
    const onA = await viaMysql(a, id, dbA);
    await readAndShare(a, async () => {
      const [rows] = await onA.execute(sql, [1]);
      return (rows as { v: unknown }[])[0]?.v;
    });
    const b = await node();
    const onB = await viaMysql(b, id, dbA);
    const [same] = await onB.execute(sql, [1]);
    expect((same as { v: unknown }[])[0]?.v).toBe('a-one');
    expect(b.shared.counts.hits).toBe(1);
    const [other] = await onB.execute(sql, [2]);
    expect(other).toEqual([]);
    expect(b.shared.counts.hits).toBe(1);
  });

  it('a write through a node makes the shared entry unusable', async () => {
    const id = myCache();
    const a = await node();
    const sql = 'SELECT v FROM t WHERE id = 1 AND 1 = 1';
    const onA = await viaMysql(a, id, dbA);
    await readAndShare(a, () => myValue(onA, sql));
    await onA.query("UPDATE t SET v = 'a-one!' WHERE id = 1");
    const b = await node();
    expect(await myValue(await viaMysql(b, id, dbA), sql)).toBe('a-one!');
    expect(b.shared.counts.hits).toBe(0);
    await myAdmin.query(`UPDATE ${dbA}.t SET v = 'a-one' WHERE id = 1`);
  });
});

describe('the shared store', () => {
  let shared: SharedResults;
  afterEach(() => shared?.close());
  const entry = (text: string) => ({
    response: Buffer.from(text),
    statusOffsets: [3],
    ttlMs: 10_000,
  });

  it('does not store a result when a table was written after its versions were read', async () => {
    shared = await SharedResults.connect(REDIS_URL);
    await shared.ready();
    const id = newCacheId();
    const first = await shared.lookup(id, 'postgres', 'k', ['orders', 'items']);
    expect(first.kind).toBe('miss');
    const versions = first.kind === 'miss' ? first.versions : '';
    await bumpVersions(redis, id, ['items']);
    expect(await shared.store(id, 'postgres', 'k', ['orders', 'items'], versions, entry('r'))).toBe(
      false,
    );
    expect(shared.counts.raced).toBe(1);
    expect((await shared.lookup(id, 'postgres', 'k', ['orders', 'items'])).kind).toBe('miss');
    // With the versions as they are now, it is stored and found (tables in any order).
    const now = await shared.lookup(id, 'postgres', 'k', ['items', 'orders']);
    const current = now.kind === 'miss' ? now.versions : '';
    expect(await shared.store(id, 'postgres', 'k', ['orders', 'items'], current, entry('r'))).toBe(
      true,
    );
    const found = await shared.lookup(id, 'postgres', 'k', ['orders', 'items']);
    expect(found.kind === 'hit' && found.entry.response.toString()).toBe('r');
    expect(found.kind === 'hit' && found.entry.statusOffsets).toEqual([3]);
    await redis.del(versionsKey(id), entryKey(id, 'k'));
  });

  it('never serves an old entry after the version hash vanished and was counted again', async () => {
    shared = await SharedResults.connect(REDIS_URL);
    await shared.ready();
    const id = newCacheId();
    const read = async () => {
      const found = await shared.lookup(id, 'postgres', 'k', ['t']);
      return found;
    };
    // Stored after one write to t (version 1).
    await bumpVersions(redis, id, ['t']);
    const found = await read();
    const versions = found.kind === 'miss' ? found.versions : '';
    expect(await shared.store(id, 'postgres', 'k', ['t'], versions, entry('old'))).toBe(true);
    expect((await read()).kind).toBe('hit');
    // The hash is evicted (or deleted), and a later write counts t to 1 again.
    await redis.del(versionsKey(id));
    await bumpVersions(redis, id, ['t']);
    expect(await redis.hget(versionsKey(id), 't')).toBe('1');
    expect((await read()).kind).not.toBe('hit');
    await redis.del(versionsKey(id), entryKey(id, 'k'));
  });

  it('never serves an entry to the other protocol, or to another key in its place', async () => {
    shared = await SharedResults.connect(REDIS_URL);
    await shared.ready();
    const id = newCacheId();
    const miss = await shared.lookup(id, 'postgres', 'k', ['t']);
    const versions = miss.kind === 'miss' ? miss.versions : '';
    await shared.store(id, 'postgres', 'k', ['t'], versions, entry('pg bytes'));
    expect((await shared.lookup(id, 'mysql', 'k', ['t'])).kind).not.toBe('hit');
    // Another key's entry under this key's hash (a collision) is not served either.
    await redis.rename(entryKey(id, 'k'), entryKey(id, 'other'));
    expect((await shared.lookup(id, 'postgres', 'other', ['t'])).kind).not.toBe('hit');
    await redis.del(versionsKey(id), entryKey(id, 'other'));
  });

  describe('with a Redis of its own', () => {
    let server: { port: number; process: ChildProcess } | null = null;
    afterEach(() => {
      server?.process.kill('SIGCONT');
      server?.process.kill('SIGKILL');
      server = null;
    });

    it('a session that closes while its miss is looked up in Redis does not strand the identical miss that joined it', async () => {
      server = await startThrowawayRedis();
      const id = pgCache();
      // Lookups wait up to 3 s for the paused Redis (ioredis gives up on a command after 1 s):
      // long enough for the second reader to join.
      const b = await startSharedNode({
        source,
        redis,
        shared: { redisUrl: `redis://127.0.0.1:${server.port}`, timeoutMs: 3_000 },
      });
      nodes.push(b);
      const sql = `SELECT v FROM ${schema}.t WHERE id = 2`;
      server.process.kill('SIGSTOP');
      // Both connected first, so that the follower's read comes right behind the leader's going.
      const follower = await viaPg(b, id);
      // The leader sends the read and is gone while its lookup waits (the same client settings as
      // the follower's, so that both reads have one key).
      const leader = await viaPg(b, id);
      leader.on('error', () => undefined);
      const before = b.runtime.stats(id).uncacheable;
      const lost = leader.query(sql).catch(() => 'connection lost');
      await new Promise((resolve) => setTimeout(resolve, 100));
      (leader as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
      expect(await lost).toBe('connection lost');
      // The follower joins the leader's miss, is told to ask for itself once the lookup gives up,
      // and gets the origin's answer.
      expect(await pgValue(follower, sql)).toBe('two');
      expect(b.runtime.stats(id).uncacheable).toBe(before + 1);
    }, 15_000);

    it('a paused or stopped Redis sends misses to the origin, without an error', async () => {
      server = await startThrowawayRedis();
      const url = `redis://127.0.0.1:${server.port}`;
      const id = pgCache();
      const a = await node(undefined, url);
      const client = await viaPg(a, id);
      await pgValue(client, `SELECT v FROM ${schema}.t WHERE id = 1`);
      await until(() => a.shared.counts.stored === 1);
      // B connects first, then Redis stops answering.
      // (Skipping lookups for 2 s after a timeout: the next miss comes well within that.)
      const b = await node(undefined, url, true, 8_000);
      server.process.kill('SIGSTOP');
      const onB = await viaPg(b, id);
      const started = performance.now();
      expect(await pgValue(onB, `SELECT v FROM ${schema}.t WHERE id = 1`)).toBe('one');
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(b.shared.counts.errors).toBe(1);
      expect(b.shared.counts.hits).toBe(0);
      // While it recovers, misses skip Redis at once.
      expect(await pgValue(onB, `SELECT v FROM ${schema}.t WHERE id = 2`)).toBe('two');
      expect(b.shared.counts).toMatchObject({ errors: 1, skipped: 1 });
      server.process.kill('SIGKILL');
      // A node started while Redis is down starts at once, and asks the origin.
      const starting = performance.now();
      const c = await node(undefined, url, false);
      expect(performance.now() - starting).toBeLessThan(1_000);
      expect(await pgValue(await viaPg(c, id), `SELECT v FROM ${schema}.t WHERE id = 1`)).toBe(
        'one',
      );
      expect(c.shared.counts.hits).toBe(0);
    });
  });
});
