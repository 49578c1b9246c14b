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
  stop(): Promise<void>;
}

export function createStoreConfigSource(store: Store): StoreConfigSource {
  const listeners = new Set<(cacheId: string | null) => void>();
  const tell = (cacheId: string | null): void => {
    for (const listener of listeners) listener(cacheId);
  };
  let unlisten: (() => Promise<void>) | null = null;
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
        rules: rules.map((rule) => ({
          kind: rule.kind,
          key: rule.key,
          mode: rule.mode,
          ttlSeconds: rule.ttl_seconds,
          transactionPolicy: rule.transaction_policy,
        })),
      };
      return config;
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
      );
    },
    async stop() {
      await unlisten?.();
      unlisten = null;
    },
  };
}
