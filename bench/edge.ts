// npm run bench:edge: pgbench -S (select-only) through four paths to the same Postgres, alternated
// within one run: direct, a plain Node TCP pass-through, the edge with caching off, the edge with
// caching on; plus single-client latency (pgbench -c 1) of a cache hit beside the same query direct.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import type { EdgeReport } from './support/edge-process.ts';
import { createInterface } from 'node:readline';
import { serialize } from '../packages/edge/src/pg/protocol/index.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const MODES = (process.env.BENCH_MODES ?? 'simple,extended').split(',');
// The edge's threads (EDGE_THREADS): one per core unless told otherwise.
const EDGE_THREADS = Number(process.env.BENCH_EDGE_THREADS ?? availableParallelism());
const DATABASE = 'edgegate_bench';
const ORIGIN_PORT = 5432;
const CACHE_OFF = 'cch_benchoff00000000000000';
const CACHE_ON = 'cch_benchon000000000000000';
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
  const exists = psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${DATABASE}'`);
  if (exists !== '1') psql('postgres', `CREATE DATABASE ${DATABASE}`);
  let branches = '';
  try {
    branches = psql(DATABASE, 'SELECT count(*) FROM pgbench_branches');
  } catch {
    // Not initialised yet.
  }
  if (branches !== String(SCALE)) {
    console.error(`pgbench -i -s ${SCALE} into ${DATABASE} …`);
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
        String(SCALE),
        DATABASE,
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
  }
}

async function startChild(
  script: string,
  args: string[],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [new URL(script, import.meta.url).pathname, ...args], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const [line] = (await once(
    createInterface({ input: child.stdout as NodeJS.ReadableStream }),
    'line',
  )) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

// Where pgbench connects, without its vacuum step (the edge would relay it, the origin refuses
// nothing, and it is not what is measured).
function pgbenchTarget(port: number): string[] {
  return ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-n'];
}

interface Run {
  path: string;
  mode: string;
  tps: number;
  latencyMs: number;
  failed: number;
}

function pgbench(path: string, mode: string, port: number, appName: string | null): Run {
  const env = { ...process.env, ...(appName ? { PGAPPNAME: appName } : {}) };
  const output = execFileSync(
    'pgbench',
    [
      ...pgbenchTarget(port),
      '-S',
      '-M',
      mode,
      '-c',
      String(CLIENTS),
      '-j',
      String(THREADS),
      '-T',
      String(SECONDS),
      DATABASE,
    ],
    { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tps = Number(/tps = ([\d.]+)/.exec(output)?.[1] ?? 0);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(output)?.[1] ?? 0);
  const failed = Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0);
  console.error(`  ${path.padEnd(28)} ${mode.padEnd(9)} ${tps.toFixed(0).padStart(7)} TPS`);
  return { path, mode, tps, latencyMs, failed };
}

// A raw protocol connection: pipelined queries and exact round-trip timing, no driver overhead.
class Raw {
  readonly socket: net.Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #ready = 0;
  #waiter: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      let offset = 0;
      while (offset + 5 <= this.#buffer.length) {
        const size = this.#buffer.readInt32BE(offset + 1) + 1;
        if (offset + size > this.#buffer.length) break;
        if (this.#buffer[offset] === 0x5a) this.#ready += 1;
        if (this.#buffer[offset] === 0x45)
          throw new Error(this.#buffer.toString('utf8', offset + 5, offset + size));
        offset += size;
      }
      this.#buffer = this.#buffer.subarray(offset);
      this.#waiter?.();
    });
  }

  static async open(port: number, appName: string | null): Promise<Raw> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    const raw = new Raw(socket);
    socket.write(
      serialize.startupMessage({
        user: 'postgres',
        database: DATABASE,
        ...(appName ? { application_name: appName } : {}),
      }),
    );
    await raw.readies(1);
    return raw;
  }

  async readies(count: number): Promise<void> {
    while (this.#ready < count) await new Promise<void>((resolve) => (this.#waiter = resolve));
    this.#ready -= count;
  }
}

// Puts every account's balance in the edge's cache, in the exact form pgbench sends it. Each thread
// keeps its own results, so this warms through one connection per thread (the kernel picks a new
// connection's thread: connections are opened until every thread has one).
async function warm(edge: Edge, mode: string): Promise<void> {
  const accounts = 100_000 * SCALE;
  const started = Date.now();
  let sessions = (await edgeStats(edge.child)).sessions;
  const perThread = new Array<Raw | undefined>(sessions.length);
  const spare: Raw[] = [];
  for (let attempt = 0; attempt < 64 && perThread.includes(undefined); attempt++) {
    const raw = await Raw.open(edge.port, CACHE_ON);
    const now = (await edgeStats(edge.child)).sessions;
    const gained = now.findIndex((count, i) => count > (sessions[i] as number));
    if (gained >= 0 && perThread[gained] === undefined) perThread[gained] = raw;
    else spare.push(raw);
    sessions = now;
  }
  for (const raw of spare) raw.socket.destroy();
  const warmers = perThread.filter((raw) => raw !== undefined);
  await Promise.all(warmers.map((raw) => warmThrough(raw, mode, accounts)));
  for (const raw of warmers) raw.socket.destroy();
  console.error(
    `  warmed ${accounts} ${mode} keys on ${warmers.length} thread(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

async function warmThrough(raw: Raw, mode: string, accounts: number): Promise<void> {
  const batch = 1000;
  for (let first = 1; first <= accounts; first += batch) {
    const messages: Buffer[] = [];
    for (let aid = first; aid < first + batch && aid <= accounts; aid++) {
      if (mode === 'simple') {
        messages.push(serialize.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`));
      } else {
        messages.push(
          serialize.parse({ sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;' }),
          serialize.bind({ params: [String(aid)], resultFormats: [0] }),
          serialize.describe('P'),
          serialize.execute(),
          serialize.sync(),
        );
      }
    }
    raw.socket.write(Buffer.concat(messages));
    await raw.readies(Math.min(batch, accounts - first + 1));
  }
}

const LATENCY_QUERY = 'SELECT abalance FROM pgbench_accounts WHERE aid = 4242;';

// Single-client latency, measured by pgbench itself (a C client, so the client adds little): one
// transaction at a time for a few seconds, every transaction's latency logged, p50/p99 from the log.
function latency(
  port: number,
  appName: string | null,
  seconds: number,
): { p50: number; p99: number } {
  const dir = mkdtempSync(join(tmpdir(), 'eg-bench-'));
  try {
    const script = join(dir, 'one.sql');
    writeFileSync(script, `${LATENCY_QUERY}\n`);
    const env = { ...process.env, ...(appName ? { PGAPPNAME: appName } : {}) };
    execFileSync(
      'pgbench',
      [
        ...pgbenchTarget(port),
        '-c',
        '1',
        '-j',
        '1',
        '-T',
        String(seconds),
        '-f',
        script,
        '-l',
        `--log-prefix=${join(dir, 'log')}`,
        DATABASE,
      ],
      { env, stdio: 'ignore' },
    );
    const times: number[] = [];
    for (const file of readdirSync(dir).filter((name) => name.startsWith('log'))) {
      for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
        const micros = Number(line.split(' ')[2]);
        if (Number.isFinite(micros) && line !== '') times.push(micros / 1000);
      }
    }
    times.sort((a, b) => a - b);
    return {
      p50: times[Math.floor(times.length * 0.5)] as number,
      p99: times[Math.floor(times.length * 0.99)] as number,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Edge {
  child: ChildProcess;
  port: number;
}

async function edgeStats(child: ChildProcess): Promise<EdgeReport> {
  child.send({ stats: true });
  const [stats] = (await once(child, 'message')) as [EdgeReport];
  return stats;
}

prepareDatabase();
const passthrough = await startChild('./support/passthrough.ts', [String(ORIGIN_PORT)]);
const startEdge = (threads = EDGE_THREADS): Promise<Edge> =>
  startChild('./support/edge-process.ts', [
    String(ORIGIN_PORT),
    process.env.BENCH_CACHE_MB ?? '1024',
    String(threads),
  ]);
// A fresh edge per protocol: its cache then holds that workload's keys only (1M accounts), not
// the other protocol's too.
let edge = await startEdge();
const runs: Run[] = [];
try {
  for (const [index, mode] of MODES.entries()) {
    if (index > 0) {
      edge.child.kill();
      edge = await startEdge();
    }
    console.error(
      `pgbench -S -M ${mode}, ${CLIENTS} clients, ${THREADS} threads, ${SECONDS} s each:`,
    );
    // The cold pass fills part of the cache; the warm pass has every account cached.
    const paths: [string, number, string | null][] = [
      ['Postgres direct', ORIGIN_PORT, null],
      ['Node TCP pass-through', passthrough.port, null],
      ['edge, caching off', edge.port, CACHE_OFF],
      ['edge, caching on (cold)', edge.port, CACHE_ON],
    ];
    // Alternate the order between modes so no path always runs first.
    for (const [path, port, app] of index % 2 === 0 ? paths : [...paths].reverse()) {
      if (path.endsWith('(cold)') && index % 2 === 1) continue;
      runs.push(pgbench(path, mode, port, app));
    }
    await warm(edge, mode);
    const before = await edgeStats(edge.child);
    runs.push(pgbench('edge, caching on (warm)', mode, edge.port, CACHE_ON));
    const after = await edgeStats(edge.child);
    const hits = after.hits - before.hits;
    const misses = after.misses - before.misses;
    console.error(
      `  warm run: ${hits} hits, ${misses} misses (${((100 * hits) / Math.max(1, hits + misses)).toFixed(1)} % hits), ${after.entries} entries, ${(after.bytes / 1048576).toFixed(0)} MiB`,
    );
    if (EDGE_THREADS > 1) {
      // The same edge on one thread, for what the second thread adds.
      const single = await startEdge(1);
      try {
        await warm(single, mode);
        runs.push(pgbench('edge, caching on (warm), 1 thread', mode, single.port, CACHE_ON));
      } finally {
        single.child.kill();
      }
    }
    runs.push(pgbench('Postgres direct (again)', mode, ORIGIN_PORT, null));
  }
  console.error('single-client latency (pgbench -c 1, same query), alternated:');
  const directRuns = [latency(ORIGIN_PORT, null, 5)];
  const hitRuns = [latency(edge.port, CACHE_ON, 5), latency(edge.port, CACHE_ON, 5)];
  directRuns.push(latency(ORIGIN_PORT, null, 5));
  const mean = (runs: { p50: number; p99: number }[]) => ({
    p50: runs.reduce((a, r) => a + r.p50, 0) / runs.length,
    p99: runs.reduce((a, r) => a + r.p99, 0) / runs.length,
  });
  const directLatency = mean(directRuns);
  const hitLatency = mean(hitRuns);

  const lines = [
    `Edge on ${EDGE_THREADS} thread(s) (EDGE_THREADS) unless the row says otherwise.`,
    '',
    '| path | mode | TPS | avg latency ms | failed | vs direct | vs pass-through |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const run of runs) {
    const direct = runs.filter((r) => r.mode === run.mode && r.path.startsWith('Postgres direct'));
    const directTps = direct.reduce((a, r) => a + r.tps, 0) / direct.length;
    const pass =
      runs.find((r) => r.mode === run.mode && r.path === 'Node TCP pass-through')?.tps ?? NaN;
    lines.push(
      `| ${run.path} | ${run.mode} | ${run.tps.toFixed(0)} | ${run.latencyMs.toFixed(3)} | ${run.failed} | ${(run.tps / directTps).toFixed(2)}× | ${(run.tps / pass).toFixed(2)}× |`,
    );
  }
  lines.push('');
  lines.push(
    '| single client (pgbench -c 1), same query, mean of 2 runs | p50 ms | p99 ms |',
    '|---|---|---|',
  );
  lines.push(
    `| Postgres direct | ${directLatency.p50.toFixed(3)} | ${directLatency.p99.toFixed(3)} |`,
  );
  lines.push(`| edge cache hit | ${hitLatency.p50.toFixed(3)} | ${hitLatency.p99.toFixed(3)} |`);
  lines.push('');
  lines.push(
    'Targets: caching on (warm) ≥ 1.2× direct; caching off ≥ 0.8× the pass-through; hit p50 below direct p50. ' +
      '"vs direct" divides by the mean of the direct runs of that mode.',
  );
  console.log(lines.join('\n'));
} finally {
  passthrough.child.kill();
  edge.child.kill();
}
