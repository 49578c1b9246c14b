// npm run bench:edge:shared: what the shared second level (Redis) gives a cold edge node and what
// it costs a miss, on loopback against the machine's Postgres (database `test`) and Redis (6379).
// Node A reads every row once (so Redis holds each result); then a cold node reads a fixed
// sequence with and without the second level, and single-client misses are timed on nodes whose
// second level is empty (with: a Redis lookup, then the origin, then a store in the background)
// and without it. Every node is a real edge (its own runtime and local store) in this process; the
// invalidation bus is stood in for by the version bump it makes in Redis (HINCRBY), as the edge's
// tests do. BENCH_ROWS (2000), BENCH_READS (6000), BENCH_CLIENTS (4), BENCH_MISSES (400),
// BENCH_ROUNDS (3).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { SharedResults } from '../packages/edge/src/cluster/shared-results.ts';
import type { InvalidationBus } from '../packages/edge/src/cluster/bus.ts';
import type { EdgeCacheConfig, EdgeConfigSource } from '../packages/edge/src/control/config.ts';
import { openPgEdge } from '../packages/edge/src/threads/start.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 2000);
const READS = Number(process.env.BENCH_READS ?? 6000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 4);
const MISSES = Number(process.env.BENCH_MISSES ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ORIGIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

const suffix = randomBytes(4).toString('hex');
const schema = `bench_l2_${suffix}`;
const cacheId = `cch_benchl2${suffix}${'0'.repeat(22 - 7 - suffix.length)}`;
const config: EdgeCacheConfig = {
  id: cacheId,
  type: 'postgres',
  hostname: ORIGIN.host,
  port: ORIGIN.port,
  defaultMode: 'auto',
  defaultTtlSeconds: 600,
  originTls: 'disable',
  rules: [],
  sharedResults: true,
};
const source: EdgeConfigSource = {
  loadCache: async (id) => (id === cacheId ? structuredClone(config) : null),
  subscribe: () => () => undefined,
};
const silent = { info() {}, warn() {}, error() {}, debug() {} };
const redis = new Redis(REDIS_URL);
// The bus's part that the second level relies on: a committed write bumps its tables' versions.
const bus: InvalidationBus = {
  serving: true,
  async publish(id, tables) {
    const fields = tables === 'all' ? ['*'] : [...tables];
    for (const field of fields) await redis.hincrby(`eg:{${id}}:v`, field, 1);
  },
};

async function startNode(withShared: boolean) {
  const shared = withShared ? await SharedResults.connect(REDIS_URL) : null;
  await shared?.ready();
  const edge = await openPgEdge(
    {
      source,
      cacheMaxBytes: 64 * 1024 * 1024,
      guard: null,
      logger: silent,
      bus,
      sharedResults: shared,
    },
    { host: '127.0.0.1', port: 0, tls: null },
  );
  return { edge, shared };
}

async function clientsOf(port: number, count: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = new pg.Client({ ...ORIGIN, port, application_name: cacheId });
      await client.connect();
      return client;
    }),
  );
}

// A fixed sequence of row ids, skewed as real traffic is (a few rows hot, a long tail).
function sequence(count: number): number[] {
  let state = 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  return Array.from({ length: count }, () => 1 + Math.floor(ROWS * next() ** 3));
}

// Two kinds of read: a primary-key lookup (the origin answers in well under a millisecond here),
// and one that makes the origin scan the table (a few milliseconds), where a second level pays.
type Kind = 'point' | 'scan';
const KINDS: Kind[] = ['point', 'scan'];
const readSql = (kind: Kind, id: number, tag = '') =>
  kind === 'point'
    ? `SELECT id, v FROM ${schema}.items WHERE id = ${id}${tag}`
    : `SELECT i.id, (SELECT count(*) FROM ${schema}.items j WHERE j.v LIKE '%' || substr(i.v, 1, 3) || '%') AS near FROM ${schema}.items i WHERE i.id = ${id}${tag}`;

// The cold node's run: CLIENTS clients split the sequence; hit ratio and elapsed time.
async function coldRun(withShared: boolean, kind: Kind, ids: number[]) {
  const { edge, shared } = await startNode(withShared);
  const clients = await clientsOf(edge.port, CLIENTS);
  const started = performance.now();
  await Promise.all(
    clients.map(async (client, index) => {
      for (let i = index; i < ids.length; i += CLIENTS)
        await client.query(readSql(kind, ids[i] ?? 1));
    }),
  );
  const elapsed = performance.now() - started;
  const stats = edge.runtime.stats(cacheId);
  const result = {
    hitRatio: stats.hits / (stats.hits + stats.misses),
    ms: elapsed,
    fromRedis: shared?.counts.hits ?? 0,
    redisErrors: shared?.counts.errors ?? 0,
    redisSkipped: shared?.counts.skipped ?? 0,
  };
  await Promise.all(clients.map((client) => client.end()));
  await edge.close();
  return result;
}

// Single-client misses on ids the second level has never seen (each text once): latency in ms.
async function missLatencies(withShared: boolean, kind: Kind, offset: number): Promise<number[]> {
  const { edge } = await startNode(withShared);
  const [client] = await clientsOf(edge.port, 1);
  const times: number[] = [];
  for (let i = 0; i < MISSES; i++) {
    const sql = readSql(kind, 1 + (i % ROWS), ` AND ${offset + i} > 0`);
    const started = performance.now();
    await (client as pg.Client).query(sql);
    times.push(performance.now() - started);
  }
  await (client as pg.Client).end();
  await edge.close();
  return times;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};

async function main(): Promise<void> {
  const admin = new pg.Client(ORIGIN);
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.items (id int PRIMARY KEY, v text);
    INSERT INTO ${schema}.items SELECT g, md5(g::text) FROM generate_series(1, ${ROWS}) g`);
  try {
    // Node A reads every row once: Redis then holds every result.
    const a = await startNode(true);
    const [reader] = await clientsOf(a.edge.port, 1);
    for (const kind of KINDS) {
      for (let id = 1; id <= ROWS; id++) await (reader as pg.Client).query(readSql(kind, id));
    }
    const deadline = Date.now() + 10_000;
    while ((a.shared as SharedResults).counts.stored < 2 * ROWS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await (reader as pg.Client).end();
    await a.edge.close();

    const ids = sequence(READS);
    const rows: [string, number, number, string][] = [];
    let fromRedis = 0;
    let redisErrors = 0;
    let redisSkipped = 0;
    for (const kind of KINDS) {
      // Rounds alternate without and with, so load from elsewhere on the machine hits both alike;
      // the table shows the median round, and latencies pooled over every round.
      const withoutRuns: { hitRatio: number; ms: number }[] = [];
      const withRuns: { hitRatio: number; ms: number }[] = [];
      const missWithout: number[] = [];
      const missWith: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        withoutRuns.push(await coldRun(false, kind, ids));
        const run = await coldRun(true, kind, ids);
        withRuns.push(run);
        fromRedis += run.fromRedis;
        redisErrors += run.redisErrors;
        redisSkipped += run.redisSkipped;
        missWithout.push(...(await missLatencies(false, kind, 1_000_000 * (1 + 2 * round))));
        missWith.push(...(await missLatencies(true, kind, 1_000_000 * (2 + 2 * round))));
      }
      const without = {
        hitRatio: quantile(
          withoutRuns.map((r) => r.hitRatio),
          0.5,
        ),
        ms: quantile(
          withoutRuns.map((r) => r.ms),
          0.5,
        ),
      };
      const withL2 = {
        hitRatio: quantile(
          withRuns.map((r) => r.hitRatio),
          0.5,
        ),
        ms: quantile(
          withRuns.map((r) => r.ms),
          0.5,
        ),
      };
      rows.push(
        [
          `${kind}: cold node hit ratio over ${READS} reads`,
          without.hitRatio,
          withL2.hitRatio,
          'ratio',
        ],
        [`${kind}: cold node run time, ms (${CLIENTS} clients)`, without.ms, withL2.ms, 'ms'],
        [
          `${kind}: miss latency p50, ms (one client)`,
          quantile(missWithout, 0.5),
          quantile(missWith, 0.5),
          'ms',
        ],
        [
          `${kind}: miss latency p99, ms (one client)`,
          quantile(missWithout, 0.99),
          quantile(missWith, 0.99),
          'ms',
        ],
      );
    }
    console.log(
      `\nShared results (second level): ${ROWS} rows, ${READS} skewed reads on a cold node, ${MISSES} timed misses, ${ROUNDS} rounds (median round; latencies pooled); ` +
        `hits served from Redis on the cold nodes: ${fromRedis}; lookups that failed or timed out (75 ms): ${redisErrors}, skipped just after one: ${redisSkipped}\n`,
    );
    console.log('| measure | without second level | with second level | with / without |');
    console.log('| --- | --- | --- | --- |');
    for (const [name, off, on, unit] of rows) {
      const show = (v: number) => (unit === 'ratio' ? v.toFixed(3) : v.toFixed(v < 10 ? 2 : 0));
      console.log(`| ${name} | ${show(off)} | ${show(on)} | ${(on / off).toFixed(2)}× |`);
    }
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
    const keys = await redis.keys(`eg:{${cacheId}}:*`);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    redis.disconnect();
  }
}

await main();
