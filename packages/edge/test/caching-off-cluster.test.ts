// A cache with caching off still invalidates: its statements are relayed unread, so what they write
// is unknown and each one drops the whole cache on every node (docs/edge.md, "Invalidation"). Two
// edge nodes share a real Redis bus; one has already learned that caching is off while the other's
// config still caches (a change on its way to it): a write through the first must not leave the
// second serving what it cached before. Both protocols, against the machine's Postgres and MariaDB.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EpochTable } from '../src/cache/epochs.ts';
import { RedisBus } from '../src/cluster/redis-bus.ts';
import type { EdgeCacheConfig, EdgeLogger } from '../src/index.ts';
import { openPgEdge } from '../src/threads/start.ts';
import { cacheConfig, newCacheId } from './helpers/cache-config.ts';
import { mariadbCache } from './helpers/mysql-edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';
import { ThrowawayRedis } from './helpers/throwaway-redis.ts';

const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};
const suffix = randomBytes(4).toString('hex');
const schema = `edge_offc_${suffix}`;
const database = `edge_offc_${suffix}`;

type Node = Awaited<ReturnType<typeof openPgEdge>> & { bus: RedisBus; source: StaticConfigSource };

let redis: ThrowawayRedis;
let admin: pg.Client;
let myAdmin: mysql.Connection;
const nodes: Node[] = [];
const closers: (() => Promise<unknown>)[] = [];

/** Polls `check` until it holds; fails after 2 s (the cluster's bound is 50 ms at p99). */
async function until(check: () => Promise<boolean>): Promise<void> {
  for (const started = Date.now(); !(await check());) {
    if (Date.now() - started > 2_000) throw new Error('the write never reached the other node');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function node(config: EdgeCacheConfig): Promise<Node> {
  const source = new StaticConfigSource([config]);
  const bus = new RedisBus({ url: redis.url, epochs: new EpochTable(), logger: silent });
  const edge = await openPgEdge(
    {
      source,
      cacheMaxBytes: 16 * 1024 * 1024,
      guard: null,
      logger: silent,
      bus,
      epochs: bus.epochs,
    },
    { host: '127.0.0.1', port: 0, mysqlPort: 0, tls: null },
  );
  const started = { ...edge, bus, source };
  nodes.push(started);
  for (let waited = 0; !bus.serving; waited += 10) {
    if (waited > 5000) throw new Error('the bus does not serve');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return started;
}

beforeAll(async () => {
  redis = await ThrowawayRedis.start();
  admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text);
    INSERT INTO ${schema}.t VALUES (1, 'one')`);
  myAdmin = await mysql.createConnection({
    host: '127.0.0.1',
    port: 3306,
    user: 'root',
    multipleStatements: true,
  });
  await myAdmin.query(`CREATE DATABASE ${database}; CREATE TABLE ${database}.t (id int PRIMARY KEY, v varchar(40));
    INSERT INTO ${database}.t VALUES (1, 'one')`);
}, 60_000);

afterAll(async () => {
  await Promise.all(closers.map((close) => close().catch(() => undefined)));
  await Promise.all(
    nodes.map(async (each) => {
      await each.close();
      await each.bus.close();
    }),
  );
  await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin?.end();
  await myAdmin?.query(`DROP DATABASE IF EXISTS ${database}`);
  await myAdmin?.end();
  await redis?.stop();
});

describe('a cache with caching off, on one node of two', () => {
  it('Postgres: a write through the node where it is off drops what the other node cached', async () => {
    const id = newCacheId();
    const caching = await node(cacheConfig(id));
    const off = await node(cacheConfig(id, { defaultMode: 'off' }));
    const connect = async (at: Node) => {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: at.port,
        user: 'postgres',
        database: 'test',
        application_name: id,
      });
      await client.connect();
      closers.push(() => client.end());
      return client;
    };
    const reader = await connect(caching);
    const writer = await connect(off);
    const sql = `SELECT v FROM ${schema}.t WHERE id = 1`;
    expect((await reader.query(sql)).rows).toEqual([{ v: 'one' }]);
    const hits = caching.runtime.stats(id).hits;
    expect((await reader.query(sql)).rows).toEqual([{ v: 'one' }]);
    expect(caching.runtime.stats(id).hits).toBe(hits + 1);

    // The simple protocol, then the extended one: neither is read by the edge. After each write
    // the reader gets the new row (another node's write reaches it through Redis within
    // milliseconds, not before the writer's answer), and then serves it from its cache (still
    // serving: the fresh row came from an invalidation, not from a node that stopped using it).
    const freshThenHit = async (v: string) => {
      await until(async () => (await reader.query(sql)).rows[0]?.v === v);
      const before = caching.runtime.stats(id).hits;
      expect((await reader.query(sql)).rows).toEqual([{ v }]);
      expect(caching.runtime.stats(id).hits).toBe(before + 1);
    };
    await writer.query(`UPDATE ${schema}.t SET v = 'uno' WHERE id = 1`);
    await freshThenHit('uno');
    await writer.query(`UPDATE ${schema}.t SET v = $1 WHERE id = 1`, ['eins']);
    await freshThenHit('eins');
  });

  it('MariaDB: a write through the node where it is off drops what the other node cached', async () => {
    const id = newCacheId();
    const caching = await node(mariadbCache({ id }));
    const off = await node(mariadbCache({ id, defaultMode: 'off' }));
    const connect = async (at: Node) => {
      const connection = await mysql.createConnection({
        host: '127.0.0.1',
        port: at.mysqlPort as number,
        user: `${id}-root`,
        database,
      });
      closers.push(() => connection.end());
      return connection;
    };
    const reader = await connect(caching);
    const writer = await connect(off);
    const read = async () =>
      ((await reader.query('SELECT v FROM t WHERE id = 1'))[0] as { v: string }[])[0]?.v;
    expect(await read()).toBe('one');
    const hits = caching.runtime.stats(id).hits;
    expect(await read()).toBe('one');
    expect(caching.runtime.stats(id).hits).toBe(hits + 1);

    const freshThenHit = async (v: string) => {
      await until(async () => (await read()) === v);
      const before = caching.runtime.stats(id).hits;
      expect(await read()).toBe(v);
      expect(caching.runtime.stats(id).hits).toBe(before + 1);
    };
    await writer.query(`UPDATE t SET v = 'uno' WHERE id = 1`);
    await freshThenHit('uno');
    await writer.execute('UPDATE t SET v = ? WHERE id = 1', ['eins']);
    await freshThenHit('eins');
  });
});
