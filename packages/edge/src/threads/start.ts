// Starts the Postgres edge in this thread, or on worker threads sharing its port (EDGE_THREADS),
// behind one face: whoever reads its counters (the control plane, the benchmark) need not know which.
import type { CacheStats } from '../metrics/cache-stats.ts';
import { PgEdgeServer } from '../pg/server.ts';
import { loadSqlParser } from '../pg/sql/analyze.ts';
import { EdgeRuntime } from '../runtime.ts';
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

export async function startPgEdge(options: EdgeThreadsOptions): Promise<PgEdge> {
  if (options.threads > 1) return EdgeThreads.start(options);
  await loadSqlParser();
  const runtime = new EdgeRuntime({
    source: options.source,
    cacheMaxBytes: options.cacheMaxBytes,
    guard: await loadGuard(options.guard),
    logger: options.logger,
  });
  const server = new PgEdgeServer({
    runtime,
    host: options.host,
    port: options.port,
    tls: options.tls,
  });
  let port: number;
  try {
    ({ port } = await server.listen());
  } catch (error) {
    runtime.close();
    throw error;
  }
  return {
    port,
    threads: 1,
    stats: (cacheId) => runtime.stats(cacheId),
    allStats: () => runtime.allStats(),
    cacheBytes: () => runtime.results.bytes,
    collect: async () => [
      {
        cacheBytes: runtime.results.bytes,
        entries: runtime.results.size,
        sessions: server.sessionCount,
      },
    ],
    async close() {
      await server.close();
      runtime.close();
    },
  };
}
