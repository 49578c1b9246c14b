// The Postgres edge as its own process for the benchmark, with two caches in front of the origin:
// one with caching off, one with caching on (auto).
import { EdgeRuntime, loadSqlParser, PgEdgeServer, type EdgeCacheConfig } from '@edgegate/edge';

const [originPort, cacheMb] = process.argv.slice(2).map(Number);
export const CACHE_OFF = 'cch_benchoff00000000000000';
export const CACHE_ON = 'cch_benchon000000000000000';

const caches = new Map<string, EdgeCacheConfig>(
  [CACHE_OFF, CACHE_ON].map((id) => [
    id,
    {
      id,
      type: 'postgres',
      hostname: '127.0.0.1',
      port: originPort as number,
      defaultMode: id === CACHE_ON ? 'auto' : 'off',
      defaultTtlSeconds: 3600,
      originTls: 'disable',
      rules: [],
    },
  ]),
);

await loadSqlParser();
const quiet = {
  info() {},
  warn() {},
  debug() {},
  error: (o: object, m?: string) => console.error(m, o),
};
const runtime = new EdgeRuntime({
  source: { loadCache: async (id) => caches.get(id) ?? null, subscribe: () => () => {} },
  cacheMaxBytes: (cacheMb ?? 1024) * 1024 * 1024,
  guard: null,
  logger: quiet,
});
const server = new PgEdgeServer({ runtime, host: '127.0.0.1', port: 0, tls: null });
const address = await server.listen();
process.stdout.write(JSON.stringify({ port: address.port }) + '\n');
process.on('message', (message: { stats?: boolean }) => {
  if (!message.stats) return;
  const on = runtime.stats(CACHE_ON);
  process.send?.({
    hits: on.hits,
    misses: on.misses,
    entries: runtime.results.size,
    bytes: runtime.results.bytes,
  });
});
