// The edge's view of caches and rules, read from the store; changes arrive by LISTEN/NOTIFY on the
// store (Postgres, or PGlite in one process), so a running edge sees them as soon as they commit.
import { cacheIdSchema } from '@edgegate/contract';
import type { EdgeCacheConfig, EdgeConfigSource } from '@edgegate/edge';
import { CACHE_CHANGED_CHANNEL } from '../db/queries/cache-events.ts';
import { findCacheById } from '../db/queries/caches.ts';
import { listAllRulesOfCache } from '../db/queries/rules.ts';
import type { Store } from '../db/store.ts';

export interface StoreConfigSource extends EdgeConfigSource {
  /** Starts listening for changes; resolves once the LISTEN is in place. */
  start(): Promise<void>;
  /** Whether change notices arrive now (false before start and while the LISTEN is reopened). */
  connected(): boolean;
  stop(): Promise<void>;
  /**
   * The tables under each of a cache's views, as its change-stream follower read them from the
   * origin's catalog (null: none known). A change reloads the cache on the edge, which drops what
   * it held of it: a read stored before could be tagged with a view's name alone.
   */
  setViewTables(cacheId: string, viewTables: Record<string, string[]> | null): void;
}

export function createStoreConfigSource(store: Store): StoreConfigSource {
  const listeners = new Set<(cacheId: string | null) => void>();
  const tell = (cacheId: string | null): void => {
    for (const listener of listeners) listener(cacheId);
  };
  let unlisten: (() => Promise<void>) | null = null;
  let connected = false;
  const views = new Map<string, Record<string, string[]>>();
  return {
    async loadCache(id) {
      // Whatever a client puts in application_name reaches here: only well-formed ids hit the store.
      if (!cacheIdSchema.safeParse(id).success) return null;
      const row = await findCacheById(store.db, id);
      if (row === undefined) return null;
      const rules = await listAllRulesOfCache(store.db, id);
      const config: EdgeCacheConfig = {
        id: row.id,
        type: row.type,
        hostname: row.hostname,
        port: row.port,
        defaultMode: row.default_mode,
        defaultTtlSeconds: row.default_ttl_seconds,
        originTls: row.origin_tls,
        // The second level is checked against versions only writes through the edge bump: a cache
        // whose writes come from the origin's change stream keeps its results local.
        sharedResults: row.shared_results && row.invalidation_mode === 'edge',
        rules: rules.map((rule) => ({
          kind: rule.kind,
          key: rule.key,
          mode: rule.mode,
          ttlSeconds: rule.ttl_seconds,
          transactionPolicy: rule.transaction_policy,
        })),
      };
      const viewTables = views.get(id);
      if (viewTables !== undefined) config.viewTables = viewTables;
      return config;
    },
    setViewTables(cacheId, viewTables) {
      const known = views.get(cacheId);
      if (JSON.stringify(known ?? null) === JSON.stringify(viewTables)) return;
      if (viewTables === null) views.delete(cacheId);
      else views.set(cacheId, viewTables);
      tell(cacheId);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {
      unlisten ??= await store.listen(
        CACHE_CHANGED_CHANNEL,
        (id) => tell(id),
        () => tell(null),
        (now) => (connected = now),
      );
      connected = true;
    },
    connected: () => connected,
    async stop() {
      await unlisten?.();
      unlisten = null;
      connected = false;
    },
  };
}
