// npm run bench:edge:mysql: sysbench oltp_point_select and oltp_read_only, as text queries and as
// prepared statements, through six paths to the machine's MariaDB in one run — direct, a plain Node
// TCP pass-through, a Node ceiling (point selects answered from one stored reply), the edge with
// caching off, on (cold) and on (warm) — with ratios against the baselines of the same run.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { MYSQL_CACHE_OFF, MYSQL_CACHE_ON } from './support/bench-caches.ts';
import type { EdgeReport } from './support/edge-process.ts';

const HELP = `npm run bench:edge:mysql [-- options]

sysbench against MariaDB on 127.0.0.1:3306 (root, no password) in a database it creates and drops
(edgegate_bench_mysql), through: MariaDB direct, a Node TCP pass-through, a Node ceiling server,
and the edge (caching off, on cold, on warm; user CACHE_ID-root); then the point select's
single-client latency direct, through the ceiling and from the edge's cache. Loopback only.

  --seconds N        length of each sysbench run (default 5)
  --threads N        sysbench threads (default 8)
  --table-size N     rows in sbtest1 (default 10000)
  --workloads LIST   default oltp_point_select,oltp_read_only
  --modes LIST       text (--db-ps-mode=disable) and/or prepared (the default); default both
  --edge-threads N   EDGE_THREADS of the edge (default: one per core)
  --help             this text

Rows that cannot run (the edge without its MySQL listener, a failed connection) are printed as
"unavailable: <reason>" and the others still run.`;

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    threads: { type: 'string', default: '8' },
    'table-size': { type: 'string', default: '10000' },
    workloads: { type: 'string', default: 'oltp_point_select,oltp_read_only' },
    modes: { type: 'string', default: 'text,prepared' },
    'edge-threads': { type: 'string', default: String(availableParallelism()) },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

const SECONDS = positive('seconds');
const THREADS = positive('threads');
const TABLE_SIZE = positive('table-size');
const EDGE_THREADS = positive('edge-threads');
const WORKLOADS = list('workloads', ['oltp_point_select', 'oltp_read_only']);
const MODES = list('modes', ['text', 'prepared']) as Mode[];
const ORIGIN_PORT = 3306;
// The Postgres origin the edge process also fronts; nothing here connects to it.
const PG_ORIGIN_PORT = 5432;
const USER = 'root';
const DATABASE = 'edgegate_bench_mysql';
// A run that does not end this long after its time is killed and shown as unavailable.
const RUN_GRACE_MS = 30_000;
const WARM_UP_SECONDS = 3;

type Mode = 'text' | 'prepared';

function positive(name: 'seconds' | 'threads' | 'table-size' | 'edge-threads'): number {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value < 1) fail(`--${name} must be a positive integer`);
  return value;
}

function list(name: 'workloads' | 'modes', allowed: string[]): string[] {
  const items = (flags[name] as string).split(',').filter((item) => item !== '');
  const unknown = items.filter((item) => !allowed.includes(item));
  if (items.length === 0 || unknown.length > 0) {
    fail(`--${name} takes a list of ${allowed.join(', ')}`);
  }
  return items;
}

function fail(message: string): never {
  console.error(`${message}\n\n${HELP}`);
  process.exit(2);
}

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error === null) return resolve(stdout);
        const said = `${stdout}\n${stderr}`.match(/FATAL: .*|ERROR .*|error: .*/)?.[0];
        reject(
          new Error(
            error.killed ? `no answer within ${timeoutMs / 1000} s` : (said ?? error.message),
          ),
        );
      },
    ),
  );
}

const mariadb = (sql: string) =>
  run(
    'mariadb',
    ['--no-defaults', '-h', '127.0.0.1', '-P', String(ORIGIN_PORT), '-u', USER, '-N', '-e', sql],
    30_000,
  );

function sysbenchTarget(port: number, user: string): string[] {
  return [
    `--mysql-host=127.0.0.1`,
    `--mysql-port=${port}`,
    `--mysql-user=${user}`,
    `--mysql-db=${DATABASE}`,
    '--tables=1',
    `--table-size=${TABLE_SIZE}`,
  ];
}

interface Row {
  workload: string;
  path: string;
  mode: Mode;
  /** sysbench threads: THREADS for the main table, 1 for single-client latency. */
  threads: number;
  queriesPerSecond: number;
  p50Ms: number;
  errors: number;
  /** CPU time the Node process on the path spent per query (µs); NaN for MariaDB direct. */
  cpuMicrosPerQuery: number;
  unavailable: string | null;
}

async function sysbench(
  workload: string,
  path: string,
  mode: Mode,
  target: { port: number; user: string; pid?: number } | string,
  threads: number,
): Promise<Row> {
  const row: Row = {
    workload,
    path,
    mode,
    threads,
    queriesPerSecond: NaN,
    p50Ms: NaN,
    errors: 0,
    cpuMicrosPerQuery: NaN,
    unavailable: null,
  };
  if (typeof target === 'string') {
    row.unavailable = target;
  } else {
    try {
      const cpuBefore = target.pid === undefined ? null : await cpuSeconds(target.pid);
      const output = await run(
        'sysbench',
        [
          workload,
          ...sysbenchTarget(target.port, target.user),
          `--threads=${threads}`,
          `--time=${SECONDS}`,
          '--percentile=50',
          // A single client's p50 from the histogram: its buckets are 0.001 ms apart here, where
          // the percentile line rounds to 0.01 ms.
          ...(threads === 1 ? ['--histogram=on'] : []),
          ...(mode === 'text' ? ['--db-ps-mode=disable'] : []),
          'run',
        ],
        SECONDS * 1000 + RUN_GRACE_MS,
      );
      row.queriesPerSecond = Number(/queries:\s+\d+\s+\(([\d.]+) per sec/.exec(output)?.[1] ?? NaN);
      row.p50Ms =
        histogramMedian(output) ?? Number(/50th percentile:\s+([\d.]+)/.exec(output)?.[1] ?? NaN);
      row.errors = Number(/ignored errors:\s+(\d+)/.exec(output)?.[1] ?? 0);
      const queries = Number(/queries:\s+(\d+)/.exec(output)?.[1] ?? NaN);
      if (cpuBefore !== null && target.pid !== undefined && queries > 0) {
        row.cpuMicrosPerQuery = (((await cpuSeconds(target.pid)) - cpuBefore) * 1e6) / queries;
      }
      if (!Number.isFinite(row.queriesPerSecond))
        row.unavailable = 'sysbench printed no query rate';
    } catch (error) {
      row.unavailable = (error as Error).message.split('\n')[0] as string;
    }
  }
  const shown =
    row.unavailable === null
      ? `${row.queriesPerSecond.toFixed(0).padStart(7)} queries/s  p50 ${row.p50Ms.toFixed(2)} ms`
      : `unavailable: ${row.unavailable}`;
  const who = threads === 1 ? `${path}, 1 client` : path;
  console.error(`  ${who.padEnd(34)} ${mode.padEnd(8)} ${shown}`);
  return row;
}

// The CPU time (user and system, all threads) a process has used so far, from /proc: what a path
// costs per query is steadier than its rate on a machine whose cores the load generator and the
// database share. Linux counts it in USER_HZ ticks (100 a second).
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// The median of sysbench's latency histogram (--histogram=on): rows of "value | bars count".
function histogramMedian(output: string): number | null {
  const buckets = [...output.matchAll(/^\s+([\d.]+) \|[ *]*\s(\d+)$/gm)].map((match) => ({
    value: Number(match[1]),
    count: Number(match[2]),
  }));
  const total = buckets.reduce((sum, bucket) => sum + bucket.count, 0);
  let seen = 0;
  for (const bucket of buckets) {
    seen += bucket.count;
    if (seen * 2 >= total) return bucket.value;
  }
  return null;
}

type Add = (
  path: string,
  target: Parameters<typeof sysbench>[3],
  threads?: number,
) => Promise<void>;

interface Child<T> {
  child: ChildProcess;
  hello: T;
}

// A bench server in its own process: its first stdout line is JSON saying where it listens.
async function startChild<T>(script: string, args: string[]): Promise<Child<T>> {
  const child = spawn(process.execPath, [new URL(script, import.meta.url).pathname, ...args], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${script} exited (code ${code}) before it listened`);
  });
  const [line] = (await Promise.race([once(lines, 'line'), exited])) as [string];
  return { child, hello: JSON.parse(line) as T };
}

async function ask<T>(child: ChildProcess, message: object): Promise<T> {
  child.send(message);
  const [reply] = (await once(child, 'message')) as [T];
  return reply;
}

const children = new Set<ChildProcess>();
let prepared = false;
async function cleanUp(): Promise<void> {
  for (const child of children) child.kill();
  if (prepared) {
    prepared = false;
    await mariadb(`DROP DATABASE IF EXISTS ${DATABASE}`).catch((error: Error) =>
      console.error(`could not drop ${DATABASE}: ${error.message}`),
    );
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().then(() => process.exit(130)));
}

for (const [tool, apt] of [
  ['sysbench', 'sysbench'],
  ['mariadb', 'mariadb-client'],
]) {
  await run(tool as string, ['--version'], 10_000).catch(() =>
    fail(`\`${tool}\` is not installed: apt-get install -y ${apt}`),
  );
}
const LOAD_AT_START = loadavg()[0] as number;
// Nine runs a group, and three single-client runs for each point-select group.
const runs =
  WORKLOADS.length * MODES.length * 9 +
  (WORKLOADS.includes('oltp_point_select') ? 3 : 0) * MODES.length;
console.error(
  `sysbench, ${THREADS} threads, ${SECONDS} s a run, ${runs} runs: at most about ${Math.ceil((runs * (SECONDS + 1)) / 60)} min`,
);
const rows: Row[] = [];
try {
  const version = (await mariadb('SELECT VERSION()')).trim();
  await mariadb(`DROP DATABASE IF EXISTS ${DATABASE}; CREATE DATABASE ${DATABASE}`);
  prepared = true;
  console.error(
    `sysbench prepare: ${TABLE_SIZE} rows into ${DATABASE}.sbtest1 on MariaDB ${version} …`,
  );
  await run(
    'sysbench',
    ['oltp_point_select', ...sysbenchTarget(ORIGIN_PORT, USER), 'prepare'],
    120_000,
  );
  // The first run after prepare is slow (pages, caches, CPU clocks): one unreported run first.
  console.error(`warming MariaDB up (${WARM_UP_SECONDS} s, not reported) …`);
  await run(
    'sysbench',
    [
      WORKLOADS[0] as string,
      ...sysbenchTarget(ORIGIN_PORT, USER),
      `--threads=${THREADS}`,
      `--time=${WARM_UP_SECONDS}`,
      'run',
    ],
    WARM_UP_SECONDS * 1000 + RUN_GRACE_MS,
  );
  const passthrough = await startChild<{ port: number }>('./support/passthrough.ts', [
    String(ORIGIN_PORT),
  ]);
  const ceiling = await startChild<{ port: number }>('./support/mysql-ceiling.ts', [
    String(ORIGIN_PORT),
  ]);

  for (const workload of WORKLOADS) {
    for (const mode of MODES) {
      console.error(`${workload}, ${mode}:`);
      const add: Add = async (path, target, threads = THREADS) =>
        void rows.push(await sysbench(workload, path, mode, target, threads));
      const direct = { port: ORIGIN_PORT, user: USER };
      const ceilingTarget = { port: ceiling.hello.port, user: USER, pid: ceiling.child.pid };
      const passthroughTarget = {
        port: passthrough.hello.port,
        user: USER,
        pid: passthrough.child.pid,
      };
      // Single-client latency of one point select: what a hit's p50 is held against.
      const singleClient = workload === 'oltp_point_select';
      await add('MariaDB direct', direct);
      await add('Node TCP pass-through', passthroughTarget);
      const answeredBefore = (await ask<{ answered: number }>(ceiling.child, { stats: true }))
        .answered;
      await add('Node ceiling', ceilingTarget);
      const answered = (await ask<{ answered: number }>(ceiling.child, { stats: true })).answered;
      console.error(`    the ceiling answered ${answered - answeredBefore} point selects itself`);
      if (singleClient) {
        await add('MariaDB direct', direct, 1);
        await add('Node ceiling', ceilingTarget, 1);
      }
      await edgeRuns(add, singleClient);
      // Each baseline again, after the edge: the ratios divide by the mean of its two runs.
      await add('Node ceiling (again)', ceilingTarget);
      await add('Node TCP pass-through (again)', passthroughTarget);
      await add('MariaDB direct (again)', { port: ORIGIN_PORT, user: USER });
    }
  }
  console.log(table(rows, version));
} finally {
  await cleanUp();
}

// A fresh edge per group, so that "cold" starts with an empty cache.
async function edgeRuns(add: Add, singleClient: boolean): Promise<void> {
  let edge: Child<{ port: number; mysqlPort: number | null }> | null = null;
  let why: string | null = null;
  try {
    edge = await startChild('./support/edge-process.ts', [
      String(PG_ORIGIN_PORT),
      '1024',
      String(EDGE_THREADS),
      String(ORIGIN_PORT),
    ]);
    if (edge.hello.mysqlPort === null) {
      why = 'the edge has no MySQL listener (startPgEdge returned no mysqlPort)';
    }
  } catch (error) {
    why = `the edge did not start: ${(error as Error).message}`;
  }
  const target = (cacheId: string) =>
    why === null && edge !== null
      ? { port: edge.hello.mysqlPort as number, user: `${cacheId}-${USER}`, pid: edge.child.pid }
      : (why as string);
  try {
    await add('edge, caching off', target(MYSQL_CACHE_OFF));
    await add('edge, caching on (cold)', target(MYSQL_CACHE_ON));
    const before = edge !== null && why === null ? await edgeStats(edge.child) : null;
    await add('edge, caching on (warm)', target(MYSQL_CACHE_ON));
    if (before !== null && edge !== null) {
      const after = await edgeStats(edge.child);
      const hits = after.hits - before.hits;
      const misses = after.misses - before.misses;
      console.error(
        `    warm run: ${hits} hits, ${misses} misses (${((100 * hits) / Math.max(1, hits + misses)).toFixed(1)} % hits), ${after.entries} entries`,
      );
    }
    if (singleClient) await add('edge, caching on (warm)', target(MYSQL_CACHE_ON), 1);
  } finally {
    edge?.child.kill();
  }
}

function edgeStats(child: ChildProcess): Promise<EdgeReport> {
  return ask<EdgeReport>(child, { stats: true, cacheId: MYSQL_CACHE_ON });
}

function table(rows: Row[], version: string): string {
  const ratio = (value: number, base: number | undefined) =>
    base === undefined || !Number.isFinite(base) || !Number.isFinite(value)
      ? ''
      : `${(value / base).toFixed(2)}×`;
  const measured = (row: Row, other: Row) =>
    other.workload === row.workload &&
    other.mode === row.mode &&
    other.threads === row.threads &&
    other.unavailable === null;
  const unavailable = (row: Row, columns: number) => [
    `unavailable: ${row.unavailable}`,
    ...new Array<string>(columns - 1).fill(''),
  ];
  const lines = [
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, MariaDB ${version}, ` +
      `sysbench ${THREADS} threads, ${SECONDS} s a run, ${TABLE_SIZE} rows, edge on ${EDGE_THREADS} thread(s).`,
    // Everything here shares the machine's cores: a busy machine makes every row noisy.
    `Load average (1 min) ${LOAD_AT_START.toFixed(1)} at the start, ${(loadavg()[0] as number).toFixed(1)} at the end.`,
    '',
    '| workload | path | mode | queries/s | p50 ms | errors | vs direct | vs pass-through | vs ceiling | CPU µs/query |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows.filter((row) => row.threads === THREADS)) {
    const group = rows.filter((other) => measured(row, other));
    // A baseline's rate: the mean of its run before the edge and its run after (again).
    const rate = (path: string) => {
      const runs = group.filter((other) => other.path === path || other.path === `${path} (again)`);
      return runs.length === 0
        ? undefined
        : runs.reduce((sum, other) => sum + other.queriesPerSecond, 0) / runs.length;
    };
    const cells =
      row.unavailable === null
        ? [
            row.queriesPerSecond.toFixed(0),
            row.p50Ms.toFixed(2),
            String(row.errors),
            ratio(row.queriesPerSecond, rate('MariaDB direct')),
            ratio(row.queriesPerSecond, rate('Node TCP pass-through')),
            ratio(row.queriesPerSecond, rate('Node ceiling')),
            Number.isFinite(row.cpuMicrosPerQuery) ? row.cpuMicrosPerQuery.toFixed(1) : '',
          ]
        : unavailable(row, 7);
    lines.push(`| ${[row.workload, row.path, row.mode, ...cells].join(' | ')} |`);
  }
  const single = rows.filter((row) => row.threads === 1);
  if (single.length > 0) {
    lines.push(
      '',
      '| single client (sysbench --threads=1) | mode | p50 ms | queries/s | p50 vs direct |',
      '|---|---|---|---|---|',
    );
    for (const row of single) {
      const direct = rows.find(
        (other) => measured(row, other) && other.path === 'MariaDB direct',
      )?.p50Ms;
      const cells =
        row.unavailable === null
          ? [row.p50Ms.toFixed(3), row.queriesPerSecond.toFixed(0), ratio(row.p50Ms, direct)]
          : unavailable(row, 3);
      lines.push(`| ${[`${row.workload}: ${row.path}`, row.mode, ...cells].join(' | ')} |`);
    }
  }
  lines.push(
    '',
    '"vs direct", "vs pass-through" and "vs ceiling" divide by the mean of that baseline\'s two runs ' +
      '(before the edge and again after it) in the same group. p50 is per sysbench event ' +
      '(one query for oltp_point_select, one 16-query transaction for oltp_read_only); sysbench ' +
      'rounds it to 0.01 ms. The ceiling answers only point selects itself and relays the rest. ' +
      '"CPU µs/query" is the CPU time (user and system, every thread) of the Node process on the ' +
      "path per query, from /proc: a path's cost, steadier than its rate when the load generator " +
      'and MariaDB share the cores (not measured for MariaDB direct).',
    "Targets (issue 16): caching on (warm) ≥ 0.85× the ceiling and above direct; caching off ≥ 0.85× the pass-through; a hit's p50 below direct's.",
  );
  return lines.join('\n');
}
