// A closed-loop HTTP load generator over undici: N concurrent callers for a fixed time.
import { Pool } from 'undici';

export interface LoadResult {
  name: string;
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  /** The server thread's CPU time (user + system) per request answered while measuring. */
  serverCpuUs?: number;
}

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  warmupMs?: number;
  /**
   * Reads the server thread's CPU time in µs. Throughput on a shared 2-core machine swings with
   * whatever else the cores do; the CPU a request costs the server swings much less.
   */
  serverCpu?: () => Promise<number>;
}

/** `options` with the server thread's CPU read at the start and end of the measured run. */
export function readingCpuOf(
  server: { cpu(): Promise<number> },
  options: LoadOptions,
): LoadOptions {
  return { ...options, serverCpu: () => server.cpu() };
}

/**
 * `call(pool, worker)` performs one request and resolves to whether it succeeded, or to `null`
 * when it has no work left (finite inputs such as single-use codes); the run then ends early.
 */
export async function runLoad(
  name: string,
  origin: string,
  options: LoadOptions,
  call: (pool: Pool, worker: number) => Promise<boolean | null>,
): Promise<LoadResult> {
  const pool = new Pool(origin, { connections: options.concurrency, pipelining: 1 });
  const latencies: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  let lastDone = 0;
  const worker = async (index: number) => {
    while (!stop) {
      const started = performance.now();
      const ok = await call(pool, index).catch(() => false);
      if (ok === null) break;
      lastDone = performance.now();
      if (!measuring) continue;
      if (ok) latencies.push(lastDone - started);
      else errors += 1;
    }
  };
  const workers = Array.from({ length: options.concurrency }, (_, i) => worker(i));
  const allDone = Promise.all(workers);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await Promise.race([sleep(options.warmupMs ?? 1000), allDone]);
  measuring = true;
  const started = performance.now();
  const cpuAtStart = options.serverCpu?.();
  await Promise.race([sleep(options.durationMs), allDone]);
  measuring = false;
  const cpuAtEnd = options.serverCpu?.();
  const answered = latencies.length + errors;
  const ended = Math.min(performance.now(), Math.max(lastDone, started + 1));
  const elapsed = (ended - started) / 1000;
  stop = true;
  await allDone;
  await pool.close();
  const cpuUs = cpuAtStart && cpuAtEnd ? (await cpuAtEnd) - (await cpuAtStart) : undefined;
  latencies.sort((a, b) => a - b);
  const pick = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    name,
    requests: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50: pick(0.5),
    p99: pick(0.99),
    ...(cpuUs === undefined || answered === 0 ? {} : { serverCpuUs: cpuUs / answered }),
  };
}

export function printTable(rows: (LoadResult & { baseline?: string; ratio?: number })[]) {
  const withCpu = rows.some((r) => r.serverCpuUs !== undefined);
  const header = ['benchmark', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'ratio', 'vs'];
  if (withCpu) header.push('server CPU µs/req');
  const lines = rows.map((r) => [
    r.name,
    r.rps.toFixed(0),
    r.p50.toFixed(2),
    r.p99.toFixed(2),
    String(r.errors),
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    r.baseline ?? '',
    ...(withCpu ? [r.serverCpuUs === undefined ? '' : r.serverCpuUs.toFixed(0)] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const line of lines) console.log(fmt(line));
}
