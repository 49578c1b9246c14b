// Two `edgegate edge` processes (two threads each) with one Redis act as one cache: a write through one is never read
// stale through the other beyond the bound (1,000 rounds, and again while Redis restarts and is
// paused, with no client query failing), and a cancel reaches the session's node from the other.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCaches, startServer, type RunningServer } from '@edgegate/server';
import { loadConfig } from '../../server/src/config.ts';
import { signUp } from '../../server/src/services/accounts.ts';
import { createTestDatabase } from '../../server/test/helpers/stores.ts';
import { freePort, ThrowawayRedis } from '../../edge/test/helpers/throwaway-redis.ts';
import { spawnEdgegate, stopEdgegate, type Edgegate } from './helpers/spawn-edgegate.ts';

const ORIGIN = 'postgres://postgres@127.0.0.1:5432/test';
// What a read on the other node may lag a write's answer by, at most (the bound).
const BOUND_MS = 50;

interface Node {
  process: Edgegate;
  status: string;
  pgPort: number;
  mysqlPort: number;
}

async function startNode(
  storeUrl: string,
  redisUrl: string,
  env: Record<string, string> = {},
): Promise<Node> {
  const [pgPort, mysqlPort] = [await freePort(), await freePort()];
  const process = spawnEdgegate(
    [
      'edge',
      '--database-url',
      storeUrl,
      '--data-dir',
      mkdtempSync(join(tmpdir(), 'eg-cluster-')),
      '--port',
      '0',
      '--edge-pg-port',
      String(pgPort),
      '--edge-mysql-port',
      String(mysqlPort),
      '--redis-url',
      redisUrl,
      // On threads: reads check the lease in shared memory, writes publish through the host thread.
      '--edge-threads',
      '2',
    ],
    env,
  );
  return { process, status: await process.url, pgPort, mysqlPort };
}

async function ready(node: Node): Promise<{ status: number; checks: Record<string, string> }> {
  const response = await fetch(`${node.status}/readyz`);
  return { status: response.status, checks: (await response.json()).checks };
}

async function until(condition: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function hits(node: Node, cacheId: string): Promise<number> {
  const text = await (await fetch(`${node.status}/metrics`)).text();
  const line = text
    .split('\n')
    .find((row) =>
      row.startsWith(`edgegate_edge_queries_total{cache_id="${cacheId}",result="hit"}`),
    );
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

describe('two edge nodes sharing Redis', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let controlPlane: RunningServer;
  let redis: ThrowawayRedis;
  let a: Node;
  let b: Node;
  let cacheId: string;
  let mysqlCacheId: string;
  const table = `cluster_${randomBytes(4).toString('hex')}`;
  const origin = new pg.Client({ connectionString: ORIGIN });
  const clients: pg.Client[] = [];

  async function connect(node: Node): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: `postgres://postgres@127.0.0.1:${node.pgPort}/test?application_name=${cacheId}`,
    });
    await client.connect();
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    [database, redis] = await Promise.all([
      createTestDatabase({ migrated: true }),
      ThrowawayRedis.start(),
    ]);
    controlPlane = await startServer(
      loadConfig({
        DATABASE_URL: database.url,
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-cluster-cp-')),
        PORT: '0',
        EDGE_PG_PORT: '0',
        EDGE_MYSQL_PORT: '0',
        EDGEGATE_SECRET: 'a'.repeat(48),
        LOG_LEVEL: 'silent',
      }),
      { logger: pino({ level: 'silent' }), planes: 'server' },
    );
    const { personalWorkspace } = await signUp(controlPlane.store.db, {
      email: 'cluster@example.com',
      password: 'long enough pw',
    });
    const cache = await adminCaches.createCacheInWorkspace(
      controlPlane.store.db,
      {
        workspace: personalWorkspace.slug,
        name: 'Cluster',
        type: 'postgres',
        hostname: '127.0.0.1',
        port: 5432,
        originTls: 'disable',
      } as adminCaches.CreateCacheInput,
      { privateRanges: 'allow' },
    );
    cacheId = cache.id;
    const mariadb = await adminCaches.createCacheInWorkspace(
      controlPlane.store.db,
      {
        workspace: personalWorkspace.slug,
        name: 'Cluster MariaDB',
        type: 'mariadb',
        hostname: '127.0.0.1',
        port: 3306,
        originTls: 'disable',
      } as adminCaches.CreateCacheInput,
      { privateRanges: 'allow' },
    );
    mysqlCacheId = mariadb.id;
    await origin.connect();
    await origin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`);
    await origin.query(`INSERT INTO ${table} VALUES (1, 0)`);
    [a, b] = await Promise.all([
      startNode(database.url, redis.url),
      startNode(database.url, redis.url),
    ]);
    for (const node of [a, b]) {
      await until(async () => (await ready(node)).status === 200, 10_000, 'the node is ready');
    }
  }, 30_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    await origin.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await origin.end();
    await Promise.all([stopEdgegate(a?.process), stopEdgegate(b?.process)]);
    await controlPlane?.close();
    await redis?.stop();
    await database?.drop();
  });

  /**
   * Writes `value` through `writer`, then reads through `reader` until it sees it: returns how
   * long after the write's answer that was, and whether the first read was stale. Fails when a read
   * sent more than BOUND_MS after the write's answer is stale.
   */
  async function round(writer: pg.Client, reader: pg.Client, value: number) {
    const written = await writer.query(`UPDATE ${table} SET v = ${value} WHERE id = 1`);
    expect(written.rowCount).toBe(1);
    const answered = performance.now();
    let first = true;
    let staleFirst = false;
    for (;;) {
      const sent = performance.now() - answered;
      const { rows } = await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
      const delay = performance.now() - answered;
      if (rows[0].v === value) return { delay, staleFirst };
      if (first) staleFirst = true;
      first = false;
      // Judged by when the read was sent: a read that took long on a busy machine was still asked
      // within the bound.
      if (sent > BOUND_MS)
        throw new Error(
          `round ${value}: a read sent ${sent.toFixed(1)} ms after the write's answer was stale`,
        );
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  it('1,000 writes through A are each read fresh through B within the bound; B serves hits meanwhile', async () => {
    const writer = await connect(a);
    const reader = await connect(b);
    const before = await hits(b, cacheId);
    // A repeated read on B is a hit: B does cache.
    await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
    await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
    await until(async () => (await hits(b, cacheId)) > before, 2000, 'B counts a hit');

    const delays: number[] = [];
    let staleFirsts = 0;
    for (let i = 1; i <= 1000; i++) {
      // Between rounds B caches the value it read: the next write must reach it.
      const { delay, staleFirst } = await round(writer, reader, i);
      delays.push(delay);
      if (staleFirst) staleFirsts += 1;
      await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
    }
    delays.sort((x, y) => x - y);
    console.info(
      `cross-node read after write: p50 ${percentile(delays, 50).toFixed(2)} ms, p99 ${percentile(delays, 99).toFixed(2)} ms, max ${delays.at(-1)?.toFixed(2)} ms; first read stale in ${staleFirsts} of 1000 rounds`,
    );
    expect(await hits(b, cacheId)).toBeGreaterThan(before + 500);
  }, 30_000);

  it('Redis restarted and paused mid-load: no stale read beyond the bound, no failed query, caching resumes', async () => {
    const writer = await connect(a);
    const reader = await connect(b);
    let value = 10_000;
    let slowestWrite = 0;
    const load = async (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        const started = performance.now();
        await round(writer, reader, ++value);
        slowestWrite = Math.max(slowestWrite, performance.now() - started);
        await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
      }
    };
    const faults = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await redis.restart();
      await new Promise((resolve) => setTimeout(resolve, 1200));
      redis.pause();
      await new Promise((resolve) => setTimeout(resolve, 1200));
      redis.resume();
    })();
    await Promise.all([load(4500), faults]);
    // A write's answer waited at most the publish timeout and a lease.
    expect(slowestWrite).toBeLessThan(2500);
    for (const node of [a, b]) {
      await until(async () => (await ready(node)).status === 200, 5000, 'the node is ready again');
    }
    const before = await hits(b, cacheId);
    await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
    await reader.query(`SELECT v FROM ${table} WHERE id = 1`);
    await until(async () => (await hits(b, cacheId)) > before, 2000, 'B serves hits again');
  }, 30_000);

  it('says why it does not serve in /readyz and in its metrics while Redis is paused', async () => {
    redis.pause();
    try {
      await until(async () => (await ready(b)).status === 503, 2000, 'B is not ready');
      const { checks } = await ready(b);
      expect(checks.cluster).toMatch(/not serving from the cache .*Redis/);
      const metrics = await (await fetch(`${b.status}/metrics`)).text();
      expect(
        metrics.split('\n').find((line) => line.startsWith('edgegate_edge_cluster_serving{')),
      ).toMatch(/edgegate_edge_cluster_serving\{reason="(no_answer|connection_lost)"\} 0/);
    } finally {
      redis.resume();
    }
    await until(async () => (await ready(b)).status === 200, 5000, 'B is ready again');
    expect(await (await fetch(`${b.status}/metrics`)).text()).toContain(
      'edgegate_edge_cluster_serving{reason=""} 1',
    );
  }, 15_000);

  it('a CancelRequest sent to B cancels the query of a session on A', async () => {
    const session = await connect(a);
    const { processID, secretKey } = session as unknown as { processID: number; secretKey: number };
    const sleeping = session.query('SELECT pg_sleep(10)').then(
      () => 'finished',
      (error: Error) => error.message,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    const frame = Buffer.alloc(16);
    frame.writeInt32BE(16, 0);
    frame.writeInt32BE(80877102, 4);
    frame.writeInt32BE(processID, 8);
    frame.writeInt32BE(secretKey, 12);
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(b.pgPort, '127.0.0.1', () => socket.end(frame));
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    expect(await sleeping).toMatch(/canceling statement due to user request/);
    expect(performance.now() - started).toBeLessThan(2000);
  }, 15_000);

  it('a MySQL KILL QUERY sent through B stops the query of a session on A', async () => {
    const connect = (node: Node) =>
      mysql.createConnection({
        host: '127.0.0.1',
        port: node.mysqlPort,
        user: `${mysqlCacheId}-root`,
        database: 'test',
      });
    const [onA, onB] = await Promise.all([connect(a), connect(b)]);
    try {
      const started = performance.now();
      // MariaDB ends a killed SLEEP() early with 1 (or an ER_QUERY_INTERRUPTED error); the outcome
      // is taken at once, so an error that comes before the KILL's answer is not left unhandled.
      const sleeping = onA.query('SELECT SLEEP(20) AS slept').then(
        ([rows]) => rows,
        (error: { errno?: number }) => error.errno,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      // The id the edge node A gave its client; B finds its origin connection in Redis.
      await onB.query(`KILL QUERY ${onA.threadId}`);
      const outcome = await sleeping;
      expect([[{ slept: 1 }], 1317]).toContainEqual(outcome);
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      await Promise.all([onA.end(), onB.end()]);
    }
  }, 15_000);
});

describe('an edge node on rediss://', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: ThrowawayRedis;
  let node: Node | undefined;

  afterAll(async () => {
    await stopEdgegate(node?.process);
    await redis?.stop();
    await database?.drop();
  });

  it('serves from its cache over TLS to Redis, trusting the CA given by NODE_EXTRA_CA_CERTS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-redis-tls-'));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const tlsPort = await freePort();
    [database, redis] = await Promise.all([
      createTestDatabase({ migrated: true }),
      ThrowawayRedis.start([
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        cert,
        '--tls-key-file',
        key,
        '--tls-ca-cert-file',
        cert,
        '--tls-auth-clients',
        'no',
      ]),
    ]);
    node = await startNode(database.url, `rediss://127.0.0.1:${tlsPort}`, {
      NODE_EXTRA_CA_CERTS: cert,
    });
    await until(async () => (await ready(node as Node)).status === 200, 20_000, 'ready over TLS');
    expect((await ready(node)).checks).toMatchObject({ cluster: 'ok', redis: 'ok' });
  }, 45_000);
});
