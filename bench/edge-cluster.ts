// npm run bench:edge:cluster: two edge nodes sharing invalidation through Redis (REDIS_URL) beside
// two nodes alone, in one run: the aggregate hit throughput of pgbench select-only with the clients
// split across the two nodes (alternated, each pair warmed first), the time from a write's answer
// on node A until a read on node B sees it (idle, and with pgbench loading both nodes), and what
// the shared versions cost a write. Its own Redis on a free port; the machine's is not touched.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { ThrowawayRedis } from '../packages/edge/test/helpers/throwaway-redis.ts';
import { CACHE_ON } from './support/bench-caches.ts';
import type { EdgeReport } from './support/edge-process.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
// Each node on one thread: the machine's cores are shared by both nodes and pgbench.
const EDGE_THREADS = Number(process.env.BENCH_EDGE_THREADS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 500);
const KEYS = 5_000;
const DATABASE = 'edgegate_bench_cluster';
const ORIGIN_PORT = 5432;
const PSQL = [
  '-h',
  '127.0.0.1',
  '-p',
  String(ORIGIN_PORT),
  '-U',
  'postgres',
  '-X',
  '-q',
  '-t',
  '-A',
];

function psql(database: string, sql: string): string {
  return execFileSync('psql', [...PSQL, '-d', database, '-c', sql], { encoding: 'utf8' }).trim();
}

function prepareDatabase(): void {
  if (psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${DATABASE}'`) !== '1') {
    psql('postgres', `CREATE DATABASE ${DATABASE}`);
  }
  let branches = '';
  try {
    branches = psql(DATABASE, 'SELECT count(*) FROM pgbench_branches');
  } catch {
    // Not initialised yet.
  }
  if (branches !== '1') {
    execFileSync(
      'pgbench',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(ORIGIN_PORT),
        '-U',
        'postgres',
        '-i',
        '-q',
        '-s',
        '1',
        DATABASE,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }
  psql(DATABASE, 'CREATE TABLE IF NOT EXISTS cluster_version (id int PRIMARY KEY, v int NOT NULL)');
  psql(DATABASE, 'INSERT INTO cluster_version VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 0');
}

interface Node {
  child: ChildProcess;
  port: number;
}

async function startNode(redisUrl: string | null): Promise<Node> {
  const child = spawn(
    process.execPath,
    [
      new URL('./support/edge-process.ts', import.meta.url).pathname,
      String(ORIGIN_PORT),
      '64',
      String(EDGE_THREADS),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_REDIS_URL: redisUrl ?? '' },
    },
  );
  const [line] = (await once(
    createInterface({ input: child.stdout as NodeJS.ReadableStream }),
    'line',
  )) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function stats(node: Node): Promise<EdgeReport> {
  node.child.send({ stats: true });
  const [report] = (await once(node.child, 'message')) as [EdgeReport];
  return report;
}

const dir = mkdtempSync(join(tmpdir(), 'eg-bench-cluster-'));
const script = join(dir, 'select.sql');
writeFileSync(
  script,
  `\\set aid random(1, ${KEYS})\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n`,
);

/** pgbench on both nodes at once, half the clients each; the TPS of both together. */
async function pair(nodes: [Node, Node], seconds: number): Promise<number> {
  const one = (node: Node) =>
    new Promise<number>((resolve, reject) => {
      const child = spawn(
        'pgbench',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(node.port),
          '-U',
          'postgres',
          '-n',
          '-c',
          String(CLIENTS / 2),
          '-j',
          '1',
          '-T',
          String(seconds),
          '-f',
          script,
          DATABASE,
        ],
        { env: { ...process.env, PGAPPNAME: CACHE_ON }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('exit', (code) => {
        const tps = Number(/tps = ([\d.]+)/.exec(output)?.[1] ?? NaN);
        if (code !== 0 || !Number.isFinite(tps)) reject(new Error(`pgbench failed: ${output}`));
        else resolve(tps);
      });
    });
  const [a, b] = await Promise.all([one(nodes[0]), one(nodes[1])]);
  return a + b;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/**
 * Writes through A, then reads through B until the value is there: per round, how long after the
 * write's answer the read saw it, and how long the write took.
 */
async function rounds(nodes: [Node, Node], count: number, start: number) {
  const connect = async (node: Node) => {
    const client = new pg.Client({
      connectionString: `postgres://postgres@127.0.0.1:${node.port}/${DATABASE}?application_name=${CACHE_ON}`,
    });
    await client.connect();
    return client;
  };
  const [writer, reader] = await Promise.all([connect(nodes[0]), connect(nodes[1])]);
  const delays: number[] = [];
  const writes: number[] = [];
  try {
    for (let value = start; value < start + count; value++) {
      const began = performance.now();
      await writer.query(`UPDATE cluster_version SET v = ${value} WHERE id = 1`);
      const answered = performance.now();
      writes.push(answered - began);
      for (;;) {
        const { rows } = await reader.query('SELECT v FROM cluster_version WHERE id = 1');
        if (rows[0].v === value) break;
        if (performance.now() - answered > 5000) throw new Error(`round ${value} stayed stale`);
      }
      delays.push(performance.now() - answered);
      // B caches the value it read: the next write must reach it.
      await reader.query('SELECT v FROM cluster_version WHERE id = 1');
    }
  } finally {
    await Promise.all([writer.end(), reader.end()]);
  }
  delays.sort((x, y) => x - y);
  writes.sort((x, y) => x - y);
  return {
    delay: { p50: percentile(delays, 50), p99: percentile(delays, 99) },
    write: { p50: percentile(writes, 50), p99: percentile(writes, 99) },
  };
}

async function writeLatency(node: Node, count: number) {
  const client = new pg.Client({
    connectionString: `postgres://postgres@127.0.0.1:${node.port}/${DATABASE}?application_name=${CACHE_ON}`,
  });
  await client.connect();
  const writes: number[] = [];
  for (let i = 0; i < count; i++) {
    const began = performance.now();
    await client.query(`UPDATE cluster_version SET v = ${-i} WHERE id = 1`);
    writes.push(performance.now() - began);
  }
  await client.end();
  writes.sort((x, y) => x - y);
  return { p50: percentile(writes, 50), p99: percentile(writes, 99) };
}

prepareDatabase();
const redis = await ThrowawayRedis.start();
const alone: [Node, Node] = [await startNode(null), await startNode(null)];
const shared: [Node, Node] = [await startNode(redis.url), await startNode(redis.url)];
try {
  console.error(`warming both pairs (${KEYS} keys, pgbench 5 s each) …`);
  await pair(alone, 5);
  await pair(shared, 5);
  const runs: { alone: number[]; shared: number[] } = { alone: [], shared: [] };
  const hitsBefore = await Promise.all(shared.map(stats));
  for (let i = 0; i < RUNS; i++) {
    // Alternated: no pair always runs first.
    for (const kind of i % 2 === 0
      ? (['alone', 'shared'] as const)
      : (['shared', 'alone'] as const)) {
      const tps = await pair(kind === 'alone' ? alone : shared, SECONDS);
      runs[kind].push(tps);
      console.error(
        `  two nodes ${kind === 'alone' ? 'without' : 'with'} Redis: ${tps.toFixed(0)} TPS`,
      );
    }
  }
  const hitsAfter = await Promise.all(shared.map(stats));
  const hits = hitsAfter.reduce((sum, r, i) => sum + r.hits - (hitsBefore[i]?.hits ?? 0), 0);
  const misses = hitsAfter.reduce((sum, r, i) => sum + r.misses - (hitsBefore[i]?.misses ?? 0), 0);
  console.error(`cross-node invalidation, ${ROUNDS} rounds idle …`);
  const idle = await rounds(shared, ROUNDS, 1);
  console.error(`cross-node invalidation, ${ROUNDS} rounds with pgbench on both nodes …`);
  const loaded = await Promise.all([pair(shared, 6), rounds(shared, ROUNDS, ROUNDS + 1)]);
  const writeAlone = await writeLatency(alone[0], ROUNDS);

  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const aloneTps = mean(runs.alone);
  const sharedTps = mean(runs.shared);
  const ms = (value: number) => value.toFixed(2);
  console.log(
    [
      `Two edge nodes (${EDGE_THREADS} thread each), pgbench select-only over ${KEYS} cached keys, ${CLIENTS} clients split across the nodes, ${SECONDS} s runs alternated (mean of ${RUNS}).`,
      '',
      '| two edge nodes | aggregate TPS | vs without Redis |',
      '|---|---|---|',
      `| without Redis (each alone) | ${aloneTps.toFixed(0)} | 1.00× |`,
      `| with Redis (one cache) | ${sharedTps.toFixed(0)} | ${(sharedTps / aloneTps).toFixed(2)}× |`,
      '',
      `Hits in the runs with Redis: ${((100 * hits) / Math.max(1, hits + misses)).toFixed(1)} % (${hits} hits, ${misses} misses).`,
      '',
      `| write on A, read on B (${ROUNDS} rounds) | delay p50 ms | delay p99 ms | write p50 ms | write p99 ms |`,
      '|---|---|---|---|---|',
      `| idle | ${ms(idle.delay.p50)} | ${ms(idle.delay.p99)} | ${ms(idle.write.p50)} | ${ms(idle.write.p99)} |`,
      `| pgbench on both nodes (${loaded[0].toFixed(0)} TPS) | ${ms(loaded[1].delay.p50)} | ${ms(loaded[1].delay.p99)} | ${ms(loaded[1].write.p50)} | ${ms(loaded[1].write.p99)} |`,
      `| a write on a node without Redis | – | – | ${ms(writeAlone.p50)} | ${ms(writeAlone.p99)} |`,
      '',
      'Delay: from the write’s answer on A until a read on B returned the new value (a read takes part of it). ' +
        'Targets: with Redis ≥ 0.9× the hit throughput without; delay p99 ≤ 50 ms.',
    ].join('\n'),
  );
} finally {
  for (const node of [...alone, ...shared]) node.child.kill();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
