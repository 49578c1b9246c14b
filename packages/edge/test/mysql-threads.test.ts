// The MySQL edge on several threads: both protocols' listeners run in every thread, a write through
// one thread makes the next read on another fresh (shared epochs), and KILL QUERY with the id a
// client of another thread was given reaches that client's origin connection.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeThreads, type EdgeLogger } from '../src/index.ts';
import { mariadbCache } from './helpers/mysql-edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const THREADS = 2;
const table = `mysql_threads_${randomBytes(4).toString('hex')}`;
const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

describe('the MySQL edge on several threads', () => {
  let edge: EdgeThreads;
  const clients: mysql.Connection[] = [];

  async function viaEdge(): Promise<mysql.Connection> {
    const client = await mysql.createConnection({
      host: '127.0.0.1',
      port: edge.mysqlPort ?? 0,
      user: 'cch_mysql-root',
      database: 'test',
    });
    clients.push(client);
    return client;
  }

  // The kernel picks each connection's thread: open connections until every thread has one.
  async function oneClientPerThread(): Promise<mysql.Connection[]> {
    const mine = new Array<mysql.Connection | undefined>(THREADS);
    let before = (await edge.collect()).map((report) => report.sessions);
    for (let attempt = 0; attempt < 64 && mine.includes(undefined); attempt++) {
      const client = await viaEdge();
      const after = (await edge.collect()).map((report) => report.sessions);
      const thread = after.findIndex((sessions, i) => sessions > (before[i] as number));
      if (thread >= 0 && mine[thread] === undefined) mine[thread] = client;
      before = after;
    }
    expect(mine).not.toContain(undefined);
    return mine as mysql.Connection[];
  }

  beforeAll(async () => {
    edge = await EdgeThreads.start({
      threads: THREADS,
      host: '127.0.0.1',
      port: 0,
      mysqlPort: 0,
      tls: null,
      cacheMaxBytes: 16 * 1024 * 1024,
      guard: null,
      source: new StaticConfigSource([mariadbCache()]),
      logger: silent,
    });
  });

  afterAll(async () => {
    await clients[0]?.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    await edge?.close();
  });

  it('listens for MySQL in every thread, and a write in one is seen by a read in the other', async () => {
    expect(edge.mysqlPort).toBeGreaterThan(0);
    const [a, b] = await oneClientPerThread();
    await a!.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await a!.query(`INSERT INTO ${table} VALUES (1, 'before')`);
    const read = `SELECT v FROM ${table} WHERE id = 1`;
    for (let round = 0; round < 20; round += 1) {
      const [warm] = await b!.query(read);
      expect(warm).toEqual([{ v: round === 0 ? 'before' : `r${round - 1}` }]);
      await b!.query(read);
      await a!.query(`UPDATE ${table} SET v = 'r${round}' WHERE id = 1`);
      const [fresh] = await b!.query(read);
      expect(fresh).toEqual([{ v: `r${round}` }]);
    }
    await edge.collect();
    expect(edge.stats('cch_mysql').hits).toBeGreaterThanOrEqual(20);
  });

  it('lets KILL QUERY from one thread stop a query of a client on the other', async () => {
    const [a, b] = await oneClientPerThread();
    const started = Date.now();
    // MariaDB ends a killed SLEEP() early with 1 (or an ER_QUERY_INTERRUPTED error, which can come
    // before the KILL's own answer: handled from the start, never an unhandled rejection).
    const sleeping = a!.query('SELECT SLEEP(20) AS slept').then(
      ([rows]) => rows,
      (error: { errno?: number }) => error.errno,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await b!.query(`KILL QUERY ${a!.threadId}`);
    const outcome = await sleeping;
    expect([[{ slept: 1 }], 1317]).toContainEqual(outcome);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
