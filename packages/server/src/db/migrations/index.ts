// The ordered list of schema migrations; a name, once released, never changes meaning.
import { sql, type Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import { foundation } from './0001-foundation.ts';
import { oauth } from './0002-oauth.ts';
import { api } from './0003-api.ts';
import { edgeMetrics } from './0004-edge-metrics.ts';
import { connect } from './0005-connect.ts';
import { grantCaches } from './0006-grant-caches.ts';
import { webhookOwners } from './0007-webhook-owners.ts';
import { cacheCreators } from './0008-cache-creators.ts';
import { passwordVerified } from './0009-password-verified.ts';
import { connectEndUser } from './0010-connect-end-user.ts';
import { userDisabled } from './0011-user-disabled.ts';
import { cacheInvalidation } from './0012-cache-invalidation.ts';
import { replicationLease } from './0013-replication-lease.ts';
import { sharedResults } from './0014-shared-results.ts';

/** Plain SQL statements run in order, one at a time (PGlite's query path takes one). */
export type MigrationStatements = readonly string[];

const migrations: Record<string, MigrationStatements> = {
  '0001-foundation': foundation,
  '0002-oauth': oauth,
  '0003-api': api,
  '0004-edge-metrics': edgeMetrics,
  '0005-connect': connect,
  '0006-grant-caches': grantCaches,
  '0007-webhook-owners': webhookOwners,
  '0008-cache-creators': cacheCreators,
  '0009-password-verified': passwordVerified,
  '0010-connect-end-user': connectEndUser,
  '0011-user-disabled': userDisabled,
  '0012-cache-invalidation': cacheInvalidation,
  '0013-replication-lease': replicationLease,
  '0014-shared-results': sharedResults,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    const entries = Object.entries(migrations).map(([name, statements]): [string, Migration] => [
      name,
      {
        async up(db: Kysely<unknown>) {
          for (const statement of statements) await sql.raw(statement).execute(db);
        },
      },
    ]);
    return Object.fromEntries(entries);
  },
};
