// The edge as its own process for the benchmark, with two caches in front of the Postgres origin
// (argv[2]): one with caching off, one with caching on (auto), on argv[4] threads sharing the port
// (one runs in this process's main thread, as `EDGE_THREADS=1` does). With a MariaDB origin port
// (argv[5]) it also listens for MySQL clients, with the same two caches in front of that origin.
// With BENCH_REDIS_URL it is one node of a cluster (as REDIS_URL makes it), and says its port once
// it serves from its cache.
import { EpochTable, RedisBus, startPgEdge, type EdgeCacheConfig } from '@edgegate/edge';
import { CACHE_OFF, CACHE_ON, MYSQL_CACHE_OFF, MYSQL_CACHE_ON } from './bench-caches.ts';

const [originPort, cacheMb, threads, mysqlOriginPort] = process.argv.slice(2).map(Number) as [
  number,
  number,
  number,
  number | undefined,
];

function benchCache(
  id: string,
  type: EdgeCacheConfig['type'],
  port: number,
  caching: boolean,
): [string, EdgeCacheConfig] {
  return [
    id,
    {
      id,
      type,
      hostname: '127.0.0.1',
      port,
      defaultMode: caching ? 'auto' : 'off',
      defaultTtlSeconds: 3600,
      originTls: 'disable',
      rules: [],
    },
  ];
}

const withMysql = mysqlOriginPort !== undefined && Number.isFinite(mysqlOriginPort);
const caches = new Map<string, EdgeCacheConfig>([
  benchCache(CACHE_OFF, 'postgres', originPort, false),
  benchCache(CACHE_ON, 'postgres', originPort, true),
  ...(withMysql
    ? [
        benchCache(MYSQL_CACHE_OFF, 'mariadb', mysqlOriginPort, false),
        benchCache(MYSQL_CACHE_ON, 'mariadb', mysqlOriginPort, true),
      ]
    : []),
]);

const quiet = {
  info() {},
  // BENCH_VERBOSE: warnings too (a cluster node that stops serving says why).
  warn: (o: object, m?: string) => {
    if (process.env.BENCH_VERBOSE) console.error(m, o);
  },
  debug() {},
  error: (o: object, m?: string) => console.error(m, o),
};
const source = {
  loadCache: async (id: string) => caches.get(id) ?? null,
  subscribe: () => () => {},
};
const cacheMaxBytes = (cacheMb || 1024) * 1024 * 1024;

/** What the bench asks between runs: totals, and the sessions each thread holds. */
export interface EdgeReport {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
  sessions: number[];
}

// `mysqlPort` asks for the MySQL listener (0: a free port); an edge without one ignores it.
const options: Parameters<typeof startPgEdge>[0] & { mysqlPort?: number } = {
  threads,
  host: '127.0.0.1',
  port: 0,
  tls: null,
  cacheMaxBytes,
  guard: null,
  source,
  logger: quiet,
  ...(withMysql ? { mysqlPort: 0 } : {}),
};
const redisUrl = process.env.BENCH_REDIS_URL;
const bus =
  redisUrl === undefined || redisUrl === ''
    ? null
    : new RedisBus({ url: redisUrl, epochs: new EpochTable(), logger: quiet });
const edge = await startPgEdge({ ...options, bus });
for (let waited = 0; bus !== null && !bus.serving; waited += 20) {
  if (waited > 10_000) throw new Error(`the cluster bus does not serve: ${bus.reason}`);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const mysqlPort = 'mysqlPort' in edge && typeof edge.mysqlPort === 'number' ? edge.mysqlPort : null;
process.stdout.write(JSON.stringify({ port: edge.port, mysqlPort }) + '\n');
/** What bench:edge:sessions asks: this process's memory after a full collection. */
export interface MemoryReport {
  rss: number;
  heapUsed: number;
  external: number;
  sessions: number;
}

process.on('message', (message: { stats?: boolean; cacheId?: string; memory?: boolean }) => {
  if (message.memory) {
    // Run with --expose-gc: what is measured is what the sessions keep, not garbage.
    (globalThis as { gc?: () => void }).gc?.();
    void edge.collect().then((reports) => {
      const { rss, heapUsed, external } = process.memoryUsage();
      const sessions = reports.reduce((sum, r) => sum + r.sessions, 0);
      process.send?.({ rss, heapUsed, external, sessions } satisfies MemoryReport);
    });
    return;
  }
  if (!message.stats) return;
  void edge.collect().then((reports) => {
    const on = edge.stats(message.cacheId ?? CACHE_ON);
    const report: EdgeReport = {
      hits: on.hits,
      misses: on.misses,
      entries: reports.reduce((sum, r) => sum + r.entries, 0),
      bytes: edge.cacheBytes(),
      sessions: reports.map((r) => r.sessions),
    };
    process.send?.(report);
  });
});
