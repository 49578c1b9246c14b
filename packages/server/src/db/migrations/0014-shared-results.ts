// Whether a cache's results are shared by the edge nodes through Redis (the second level).
import type { MigrationStatements } from './index.ts';

export const sharedResults: MigrationStatements = [
  `ALTER TABLE caches ADD COLUMN shared_results boolean NOT NULL DEFAULT false`,
];
