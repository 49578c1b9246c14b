// A consent may narrow an app's grant to named caches of its workspace (SPEC §3); null is all.
import type { MigrationStatements } from './index.ts';

export const grantCaches: MigrationStatements = [
  `ALTER TABLE oauth_grants ADD COLUMN cache_ids text[]`,
];
