// npm run bench:edge:sessions: how many idle, authenticated sessions one edge process holds, and
// the memory each costs (RSS and JS heap growth over the count), against a throwaway Postgres with
// max_connections high enough for them all. PgBouncer's figure for comparison is about 2 KB per
// client connection. BENCH_SESSIONS (default 2000) sets the largest count; BENCH_EDGE_THREADS the
// edge's threads (1).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BackendParser, serialize } from '../packages/edge/src/pg/protocol/index.ts';
import { connectionsWithin, readFileLimit } from '../packages/edge/src/limits/file-limit.ts';
import type { MemoryReport } from './support/edge-process.ts';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 2000);
const EDGE_THREADS = Number(process.env.BENCH_EDGE_THREADS ?? 1);
const STEPS = [0.25, 0.5, 1].map((share) => Math.round(SESSIONS * share));
const CACHE_OFF = 'cch_benchoff00000000000000';
// Connections opened at once while filling: enough to be quick, few enough for the origin's forks.
const OPENING_AT_ONCE = 32;

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const version = readdirSync(root)
    .filter((name) => existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))[0];
  if (version === undefined) throw new Error(`no initdb under ${root}/<version>/bin`);
  return join(root, version, 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// A throwaway cluster (trust on loopback) that accepts every session the bench opens.
async function startOrigin(): Promise<{ port: number; stop(): void }> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'eg-bench-sessions-'));
  const asRoot = process.getuid?.() === 0;
  const run = (tool: string, args: string[]) =>
    execFileSync(
      asRoot ? 'runuser' : join(bin, tool),
      asRoot ? ['-u', 'postgres', '--', join(bin, tool), ...args] : args,
      { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 },
    );
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--locale=C']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses='127.0.0.1'",
    `-c max_connections=${SESSIONS + 20}`,
    '-c fsync=off',
    '-c shared_buffers=64MB',
  ].join(' ');
  run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-o', options, '-w', 'start']);
  const stop = () => {
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return { port, stop };
}

async function startEdge(originPort: number): Promise<{ child: ChildProcess; port: number }> {
  const script = new URL('./support/edge-process.ts', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ['--expose-gc', script, String(originPort), '64', String(EDGE_THREADS)],
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function memory(child: ChildProcess): Promise<MemoryReport> {
  // Twice: the first collection can leave work (finalizers) for the second.
  for (let i = 0; i < 2; i++) {
    child.send({ memory: true });
    const [report] = (await once(child, 'message')) as [MemoryReport];
    if (i === 1) return report;
  }
  throw new Error('unreachable');
}

// Logs in (startup, trust, ReadyForQuery) and stays idle. Spread over four loopback addresses so
// the per-address cap is not what is measured.
function openSession(port: number, n: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${1 + (n % 4)}` });
    const parser = new BackendParser();
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) =>
      parser.parse(chunk, (message) => {
        if (message.kind === 'errorResponse') reject(new Error(message.fields.M));
        if (message.kind === 'readyForQuery') resolve(socket);
      }),
    );
    socket.write(
      serialize.startupMessage({
        user: 'postgres',
        database: 'postgres',
        application_name: CACHE_OFF,
      }),
    );
  });
}

async function fill(port: number, from: number, to: number, into: net.Socket[]): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: OPENING_AT_ONCE }, async () => {
      while (next < to) into.push(await openSession(port, next++));
    }),
  );
}

const MB = 1024 * 1024;
const origin = await startOrigin();
const edge = await startEdge(origin.port);
const sockets: net.Socket[] = [];
try {
  // Warm up (the SQL parser, code paths, buffers), then close: the baseline is an edge that served.
  await fill(edge.port, 0, 50, sockets);
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const base = await memory(edge.child);
  const rows: string[][] = [];
  const started = Date.now();
  for (const target of STEPS) {
    await fill(edge.port, sockets.length, target, sockets);
    const now = await memory(edge.child);
    const n = now.sessions;
    rows.push([
      String(n),
      (now.rss / MB).toFixed(1),
      (now.heapUsed / MB).toFixed(1),
      ((now.rss - base.rss) / n / 1024).toFixed(1),
      ((now.heapUsed - base.heapUsed) / n / 1024).toFixed(1),
      ((now.external - base.external) / n / 1024).toFixed(2),
    ]);
  }
  console.log(
    `\nIdle authenticated sessions in one edge process (${EDGE_THREADS} thread${EDGE_THREADS > 1 ? 's' : ''}); ` +
      `baseline after warm-up: RSS ${(base.rss / MB).toFixed(1)} MB, heap ${(base.heapUsed / MB).toFixed(1)} MB; ` +
      `${sockets.length} sessions opened in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  const header = [
    'sessions',
    'RSS MB',
    'heap MB',
    'RSS KB/session',
    'heap KB/session',
    'external KB/session',
  ];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padStart(widths[i] as number)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  const limit = readFileLimit();
  console.log(
    `\nWith this machine's open-file limit (${limit?.soft ?? 'unknown'}) the edge's default cap is ` +
      `${connectionsWithin(limit)} sessions (two descriptors each, after the reserve).` +
      '\nReference: PgBouncer keeps about 2 KB per client connection.',
  );
} finally {
  for (const socket of sockets) socket.destroy();
  edge.child.kill();
  await once(edge.child, 'exit');
  origin.stop();
}
