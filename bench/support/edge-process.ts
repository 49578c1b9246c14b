// The Postgres edge as its own process for the benchmark, with two caches in front of the origin:
// one with caching off, one with caching on (auto), on argv[4] threads sharing the port (one runs
// in this process's main thread, as `EDGE_THREADS=1` does).
import { startPgEdge, type EdgeCacheConfig } from '@edgegate/edge';

const [originPort, cacheMb, threads] = process.argv.slice(2).map(Number) as [
  number,
  number,
  number,
];
export const CACHE_OFF = 'cch_benchoff00000000000000';
export const CACHE_ON = 'cch_benchon000000000000000';

const caches = new Map<string, EdgeCacheConfig>(
  [CACHE_OFF, CACHE_ON].map((id) => [
    id,
    {
      id,
      type: 'postgres',
      hostname: '127.0.0.1',
      port: originPort,
      defaultMode: id === CACHE_ON ? 'auto' : 'off',
      defaultTtlSeconds: 3600,
      originTls: 'disable',
      rules: [],
    },
  ]),
);

const quiet = {
  info() {},
  warn() {},
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

const edge = await startPgEdge({
  threads,
  host: '127.0.0.1',
  port: 0,
  tls: null,
  cacheMaxBytes,
  guard: null,
  source,
  logger: quiet,
});
process.stdout.write(JSON.stringify({ port: edge.port }) + '\n');
process.on('message', (message: { stats?: boolean }) => {
  if (!message.stats) return;
  void edge.collect().then((reports) => {
    const on = edge.stats(CACHE_ON);
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
