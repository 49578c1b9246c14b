// Starts the Postgres edge in this thread, or on worker threads sharing its port (EDGE_THREADS),
// behind one face: whoever reads its counters (the control plane, the benchmark) need not know which.
import type { CacheStats } from '../metrics/cache-stats.ts';
import { PgEdgeServer, type PgEdgeServerOptions } from '../pg/server.ts';
import { loadSqlParser } from '../pg/sql/analyze.ts';
import { EdgeRuntime, type RuntimeOptions } from '../runtime.ts';
import { loadGuard } from './guard.ts';
import { EdgeThreads, type EdgeThreadsOptions, type ThreadReport } from './pool.ts';

export interface PgEdge {
  readonly port: number;
  readonly threads: number;
  /** Per-cache totals (with threads: as of the last `collect`). */
  stats(cacheId: string): CacheStats;
  allStats(): Iterable<CacheStats>;
  /** Bytes of cached results held (with threads: as of the last `collect`). */
  cacheBytes(): number;
  /** Brings the totals up to date (asks every thread) and returns what each thread holds. */
  collect(): Promise<ThreadReport[]>;
  close(): Promise<void>;
}

/** One edge listener with its runtime, in the calling thread: what each layout runs per thread. */
export async function openPgEdge(
  runtimeOptions: RuntimeOptions,
  listen: Pick<PgEdgeServerOptions, 'host' | 'port' | 'tls' | 'reusePort'>,
): Promise<{
  runtime: EdgeRuntime;
  port: number;
  /** What this listener holds now. */
  held(): ThreadReport;
  close(): Promise<void>;
}> {
  await loadSqlParser();
  const runtime = new EdgeRuntime(runtimeOptions);
  const server = new PgEdgeServer({ runtime, ...listen });
  let port: number;
  try {
    ({ port } = await server.listen());
  } catch (error) {
    runtime.close();
    throw error;
  }
  return {
    runtime,
    port,
    held: () => ({
      cacheBytes: runtime.results.bytes,
      entries: runtime.results.size,
      sessions: server.sessionCount,
    }),
    async close() {
      await server.close();
      runtime.close();
    },
  };
}

export async function startPgEdge(options: EdgeThreadsOptions): Promise<PgEdge> {
  if (options.threads > 1) return EdgeThreads.start(options);
  const { runtime, port, held, close } = await openPgEdge(
    {
      source: options.source,
      cacheMaxBytes: options.cacheMaxBytes,
      guard: await loadGuard(options.guard),
      logger: options.logger,
    },
    { host: options.host, port: options.port, tls: options.tls },
  );
  return {
    port,
    threads: 1,
    stats: (cacheId) => runtime.stats(cacheId),
    allStats: () => runtime.allStats(),
    cacheBytes: () => runtime.results.bytes,
    collect: async () => [held()],
    close,
  };
}
