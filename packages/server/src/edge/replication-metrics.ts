// Prometheus series of this node's change-stream followers, read at scrape time: whether each cache
// in replication mode may be served from memory here, and how far its follower is behind.
import { Gauge, type Registry } from 'prom-client';
import type { Followers } from '../replication/followers.ts';

export function registerReplicationMetrics(registry: Registry, followers: Followers): void {
  new Gauge({
    name: 'edgegate_replication_following',
    help: 'Per cache in replication mode: 1 when this node may serve it from memory (its follower, here or on the node holding the lease, is following), else 0',
    labelNames: ['cache_id', 'owner'],
    registers: [registry],
    collect() {
      this.reset();
      const owned = new Set(followers.owned());
      for (const [cacheId, state] of followers.states()) {
        this.set(
          { cache_id: cacheId, owner: owned.has(cacheId) ? 'this_node' : 'other_node' },
          state.status === 'following' ? 1 : 0,
        );
      }
    },
  });
  new Gauge({
    name: 'edgegate_replication_lag_seconds',
    help: "Seconds between a write's commit on the origin and its invalidation, as last seen by this node's follower",
    labelNames: ['cache_id'],
    registers: [registry],
    collect() {
      this.reset();
      const owned = new Set(followers.owned());
      for (const [cacheId, state] of followers.states()) {
        if (owned.has(cacheId) && state.lagSeconds !== null) {
          this.set({ cache_id: cacheId }, state.lagSeconds);
        }
      }
    },
  });
  new Gauge({
    name: 'edgegate_replication_lag_bytes',
    help: "Bytes of the origin's log this node's follower has not applied yet (Postgres), as last seen",
    labelNames: ['cache_id'],
    registers: [registry],
    collect() {
      this.reset();
      const owned = new Set(followers.owned());
      for (const [cacheId, state] of followers.states()) {
        if (owned.has(cacheId) && state.lagBytes !== undefined && state.lagBytes !== null) {
          this.set({ cache_id: cacheId }, state.lagBytes);
        }
      }
    },
  });
}
