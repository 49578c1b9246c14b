// What the edge needs from a cluster of edge nodes: committed writes reach every node, and a node
// that cannot be sure of that stops serving from its cache. Without REDIS_URL there is no bus: one
// node, in-process epochs only.
import type { EpochTable } from '../cache/epochs.ts';

export interface InvalidationBus {
  /**
   * Publishes a committed write to every node. Resolves once the shared truth (per-table versions
   * in Redis) holds it; the session holds the writer's answer until then. Rejects when it could not:
   * the node then stops serving (see `serving`) until the bus is healthy again.
   */
  publish(cacheId: string, tables: readonly string[] | 'all'): Promise<void>;
  /**
   * False while this node may have missed another node's write (Redis unreachable, subscription
   * lost, or not yet resynchronised after either): nothing is served from or stored in the cache.
   */
  readonly serving: boolean;
}

/**
 * The bus as an edge thread sees it: whether to serve is the lease in the shared epoch table (one
 * atomic read, no message), and a publish goes to whoever owns the Redis connection.
 */
export class LeasedBus implements InvalidationBus {
  readonly #epochs: EpochTable;
  readonly #publish: InvalidationBus['publish'];

  constructor(epochs: EpochTable, publish: InvalidationBus['publish']) {
    this.#epochs = epochs;
    this.#publish = publish;
  }

  get serving(): boolean {
    return this.#epochs.servingNow();
  }

  publish(cacheId: string, tables: readonly string[] | 'all'): Promise<void> {
    return this.#publish(cacheId, tables);
  }
}

/** The bus a node's host thread owns, with the epoch table it stamps and leases through. */
export interface NodeBus extends InvalidationBus {
  readonly epochs: EpochTable;
  /** Why the node does not serve from its cache now; null while it does. */
  readonly reason: string | null;
  /** `reason` in a word (a metric's label). */
  readonly reasonKind: string | null;
  /** REDIS_URL and this node's id in its messages, for the threads' own subscriptions. */
  readonly url: string;
  readonly nodeId: string;
  close(): Promise<void>;
}
