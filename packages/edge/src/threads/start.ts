// Starts the Postgres edge in this thread, or on worker threads sharing its port (EDGE_THREADS),
// behind one face: whoever reads its counters (the control plane, the benchmark) need not know which.
import { emptyCounts, SharedResults, type SharedResultsCounts } from '../cluster/shared-results.ts';
import { SessionIds, type SessionInfo } from '../core/session-control.ts';
import type { CacheStats } from '../metrics/cache-stats.ts';
import { ConnectionCounts } from '../limits/connection-counts.ts';
import { MysqlEdgeServer } from '../mysql/server.ts';
import { PgEdgeServer, type PgEdgeServerOptions, type RefusalCounts } from '../pg/server.ts';
import { loadSqlParser } from '../pg/sql/analyze.ts';
import { EdgeRuntime, type RuntimeOptions } from '../runtime.ts';
import { loadGuard } from './guard.ts';
import {
  EdgeThreads,
  type EdgeEventCounts,
  type EdgeThreadsOptions,
  type ThreadReport,
} from './pool.ts';

export interface PgEdge {
  readonly port: number;
  /** The MySQL/MariaDB listener's port; null when the edge runs without one. */
  readonly mysqlPort: number | null;
  readonly threads: number;
  /** Per-cache totals (with threads: as of the last `collect`). */
  stats(cacheId: string): CacheStats;
  allStats(): Iterable<CacheStats>;
  /** Bytes of cached results held (with threads: as of the last `collect`). */
  cacheBytes(): number;
  /** The shared second level's counts since start (with threads: as of the last `collect`). */
  sharedResults(): SharedResultsCounts;
  /** Connections refused over a cap since start (with threads: as of the last `collect`). */
  refused(): RefusalCounts;
  /** Evictions and failed logins since start (with threads: as of the last `collect`). */
  events(): EdgeEventCounts;
  /**
   * Marks tables of a cache as written now, on every thread: for writes the edge did not carry
   * (the origin's replication stream). Postgres tables by bare name, MySQL by `database.table`.
   */
  invalidate(cacheId: string, tables: readonly string[] | 'all'): void;
  /**
   * Adds (1) or removes (-1) a hold on a cache: while held, on every thread, it neither serves nor
   * stores results (its change-stream follower is down or behind). Holds are counted.
   */
  hold(cacheId: string, delta: 1 | -1): void;
  /** Brings the totals up to date (asks every thread) and returns what each thread holds. */
  collect(): Promise<ThreadReport[]>;
  /** Serves new sessions with this certificate and key; rejects (nothing changed) if unusable. */
  setTls(pem: { cert: string; key: string }): Promise<void>;
  /** The open sessions of every thread and both protocols. */
  sessions(): Promise<SessionInfo[]>;
  /** Ends a session (57P01 / MySQL 1927); false when no thread holds it. */
  kill(id: string): Promise<boolean>;
  /**
   * The shutdown drain: stops accepting on both ports at once, ends idle sessions now and busy
   * ones as soon as they go idle; resolves when none is left or after `ms`. `close` ends the rest.
   */
  drain(ms: number): Promise<void>;
  /** Stops accepting and ends every session left with 57P01 / MySQL 1053. */
  close(): Promise<void>;
}

/** Resolves when `work` does or after `ms`, whichever comes first. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** One edge listener with its runtime, in the calling thread: what each layout runs per thread. */
export async function openPgEdge(
  runtimeOptions: RuntimeOptions,
  listen: Pick<
    PgEdgeServerOptions,
    'host' | 'port' | 'tls' | 'reusePort' | 'connections' | 'loginTimeoutMs'
  > & {
    /** The MySQL listener's port (0: a free one); null or absent: no MySQL listener. */
    mysqlPort?: number | null;
    threadIndex?: number;
  },
): Promise<{
  runtime: EdgeRuntime;
  port: number;
  mysqlPort: number | null;
  /** What this listener holds now. */
  held(): ThreadReport;
  /** Connections it refused since it started. */
  refused(): RefusalCounts;
  setTls(pem: { cert: string; key: string }): void;
  sessions(): SessionInfo[];
  kill(id: string): boolean;
  drain(ms: number): Promise<void>;
  close(): Promise<void>;
}> {
  await loadSqlParser();
  const runtime = new EdgeRuntime(runtimeOptions);
  const { mysqlPort: mysqlListen = null, threadIndex, ...pgListen } = listen;
  // One id space for both protocols: an operator names a session by its id alone.
  const ids = new SessionIds(threadIndex);
  const server = new PgEdgeServer({ runtime, ...pgListen, ids });
  const connections = pgListen.connections;
  const mysql =
    mysqlListen === null
      ? null
      : new MysqlEdgeServer({
          runtime,
          ...pgListen,
          // One budget for both protocols: the Postgres listener's counts, or a fresh one for both.
          connections: connections ?? server.connections,
          port: mysqlListen,
          threadIndex,
          ids,
        });
  let port: number;
  let mysqlPort: number | null = null;
  try {
    ({ port } = await server.listen());
    if (mysql !== null) ({ port: mysqlPort } = await mysql.listen());
  } catch (error) {
    await server.close();
    runtime.close();
    throw error;
  }
  return {
    runtime,
    port,
    mysqlPort,
    held: () => ({
      cacheBytes: runtime.results.bytes,
      entries: runtime.results.size,
      sessions: server.sessionCount + (mysql?.sessionCount ?? 0),
    }),
    // Both listeners count against one budget: a refusal is a refusal, whichever port it came on.
    refused: () => ({
      total: server.refused.total + (mysql?.refused.total ?? 0),
      address: server.refused.address + (mysql?.refused.address ?? 0),
    }),
    setTls: (pem) => {
      server.setTls(pem);
      mysql?.setTls(pem);
    },
    sessions: () => [...server.sessions(), ...(mysql?.sessions() ?? [])],
    kill: (id) => server.kill(id) || (mysql?.kill(id) ?? false),
    drain: (ms) => within(Promise.all([server.drain(), mysql?.drain()]), ms),
    async close() {
      await Promise.all([server.close(), mysql?.close()]);
      runtime.close();
    },
  };
}

export async function startPgEdge(options: EdgeThreadsOptions): Promise<PgEdge> {
  if (options.threads > 1) return EdgeThreads.start(options);
  const { runtime, port, mysqlPort, held, refused, setTls, sessions, kill, drain, close } =
    await openPgEdge(
      {
        source: options.source,
        cacheMaxBytes: options.cacheMaxBytes,
        guard: await loadGuard(options.guard),
        sharedResults: await SharedResults.open(options.sharedResults ?? null),
        logger: options.logger,
        ...(options.bus == null ? {} : { bus: options.bus, epochs: options.bus.epochs }),
        ...(options.cancelKeys === undefined ? {} : { cancelKeys: options.cancelKeys }),
      },
      {
        host: options.host,
        port: options.port,
        tls: options.tls,
        connections:
          options.connectionCaps === undefined
            ? undefined
            : new ConnectionCounts(ConnectionCounts.buffer(1), 0, options.connectionCaps),
        loginTimeoutMs: options.loginTimeoutMs,
        mysqlPort: options.mysqlPort ?? null,
      },
    );
  return {
    port,
    mysqlPort,
    threads: 1,
    stats: (cacheId) => runtime.stats(cacheId),
    allStats: () => runtime.allStats(),
    cacheBytes: () => runtime.results.bytes,
    sharedResults: () => ({ ...(runtime.sharedResults?.counts ?? emptyCounts()) }),
    refused,
    events: () => ({
      evictions: runtime.results.evictions,
      authFailures: { ...runtime.sessions.authFailures },
    }),
    invalidate: (cacheId, tables) =>
      runtime.results.invalidate(runtime.results.epochsFor(cacheId), tables),
    hold: (cacheId, delta) => runtime.results.epochsFor(cacheId).table.hold(cacheId, delta),
    collect: async () => [held()],
    setTls: async (pem) => setTls(pem),
    sessions: async () => sessions(),
    kill: async (id) => kill(id),
    drain,
    close,
  };
}
