// An EdgeConfigSource over an in-memory map: tests add, change and delete caches as the control
// plane would, and subscribed edges hear about it.
import type { EdgeCacheConfig, EdgeConfigSource } from '../../src/index.ts';

export class StaticConfigSource implements EdgeConfigSource {
  readonly #caches = new Map<string, EdgeCacheConfig>();
  readonly #listeners = new Set<(cacheId: string) => void>();

  constructor(caches: Iterable<EdgeCacheConfig> = []) {
    for (const cache of caches) this.#caches.set(cache.id, structuredClone(cache));
  }

  async loadCache(id: string): Promise<EdgeCacheConfig | null> {
    const cache = this.#caches.get(id);
    // A copy, as a store would return: the edge must not see later edits to the caller's object.
    return cache === undefined ? null : structuredClone(cache);
  }

  subscribe(listener: (cacheId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Adds or replaces a cache and tells the subscribers. */
  set(cache: EdgeCacheConfig): void {
    this.#caches.set(cache.id, structuredClone(cache));
    this.#notify(cache.id);
  }

  delete(id: string): void {
    if (this.#caches.delete(id)) this.#notify(id);
  }

  #notify(id: string): void {
    for (const listener of [...this.#listeners]) listener(id);
  }
}
