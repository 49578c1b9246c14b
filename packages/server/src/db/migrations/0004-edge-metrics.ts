// What edges report about each cache: one row per edge per flush, summed when read.
import type { MigrationStatements } from './index.ts';

export const edgeMetrics: MigrationStatements = [
  `CREATE TABLE cache_metric_samples (
    id bigserial PRIMARY KEY,
    cache_id text NOT NULL REFERENCES caches (id) ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    queries integer NOT NULL,
    hits integer NOT NULL,
    misses integer NOT NULL,
    uncacheable integer NOT NULL,
    bytes_served bigint NOT NULL,
    hit_latency integer[] NOT NULL,
    miss_latency integer[] NOT NULL,
    templates jsonb NOT NULL
  )`,
  `CREATE INDEX cache_metric_samples_cache_at_idx ON cache_metric_samples (cache_id, at)`,
];
