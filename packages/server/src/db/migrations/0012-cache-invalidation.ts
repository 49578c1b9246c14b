// A cache's invalidation mode: `edge` (writes through the edge only) or `replication` (the origin's
// own change stream, read with a credential that is a connect-flow connection or one given to the
// API, sealed like connection secrets), and what the edge following that stream last reported.
import type { MigrationStatements } from './index.ts';

export const cacheInvalidation: MigrationStatements = [
  `ALTER TABLE caches ADD COLUMN invalidation_mode text NOT NULL DEFAULT 'edge'
    CHECK (invalidation_mode IN ('edge', 'replication'))`,
  // A deleted connection leaves the cache in replication mode without a credential: its follower
  // then reports itself down, which is louder than silently falling back to TTL-bounded staleness.
  `ALTER TABLE caches ADD COLUMN replication_connection_id text
    REFERENCES connections (id) ON DELETE SET NULL`,
  `ALTER TABLE caches ADD COLUMN replication_username text`,
  `ALTER TABLE caches ADD COLUMN replication_secret text`,
  `ALTER TABLE caches ADD COLUMN replication_key_id text REFERENCES data_keys (id)`,
  `ALTER TABLE caches ADD COLUMN replication_database text`,
  `ALTER TABLE caches ADD COLUMN replication_publication text`,
  `ALTER TABLE caches ADD COLUMN replication_max_lag_seconds integer`,
  `CREATE TABLE cache_replication_status (
    cache_id text PRIMARY KEY REFERENCES caches (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('following', 'catching_up', 'down')),
    reason text,
    lag_seconds double precision,
    position text,
    reported_at timestamptz NOT NULL DEFAULT now()
  )`,
];
