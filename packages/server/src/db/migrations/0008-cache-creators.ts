// Which partner app created a cache, so the workspace can tell ("created by app X"). The id and the
// app's name at that moment are kept without a foreign key: the cache stays with the workspace
// when the app is revoked or deleted, and so does the record of who made it.
import type { MigrationStatements } from './index.ts';

export const cacheCreators: MigrationStatements = [
  `ALTER TABLE caches ADD COLUMN created_by_app_id text`,
  `ALTER TABLE caches ADD COLUMN created_by_app_name text`,
];
