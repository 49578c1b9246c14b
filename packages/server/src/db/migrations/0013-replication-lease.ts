// One change-stream follower per cache across every edge node: the node holding the lease follows
// (and reports); the others stand by and take over when the lease runs out. The lease is timed by
// the store's clock, so the nodes' clocks need not agree. The owner also reports how far behind it
// is in bytes and how much WAL its Postgres slot keeps; a control plane warns (a workspace event)
// once when that passes REPLICATION_SLOT_WARN_MB, and again only after it fell back below.
import type { MigrationStatements } from './index.ts';

export const replicationLease: MigrationStatements = [
  `ALTER TABLE cache_replication_status ADD COLUMN owner text`,
  `ALTER TABLE cache_replication_status ADD COLUMN lease_until timestamptz`,
  `ALTER TABLE cache_replication_status ADD COLUMN lag_bytes bigint`,
  `ALTER TABLE cache_replication_status ADD COLUMN retained_bytes bigint`,
  `ALTER TABLE cache_replication_status ADD COLUMN slot_warned_at timestamptz`,
];
