// Opens the control-plane store: embedded PGlite in DATA_DIR, or Postgres at DATABASE_URL.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import { Migrator, type MigrationResultSet } from 'kysely/migration';
import type { Database } from './schema.ts';
import { migrationProvider } from './migrations/index.ts';

export type Db = Kysely<Database>;

export interface Store {
  db: Db;
  kind: 'pglite' | 'postgres';
  close(): Promise<void>;
}

export interface StoreOptions {
  /** `postgres://…` for a pg pool; otherwise the embedded store. */
  databaseUrl?: string | undefined;
  /** Where the embedded store lives; `memory://` keeps it in memory (tests). */
  dataDir: string;
  /**
   * Told when an idle pooled connection fails (Postgres restarted, connection killed). The pool
   * drops that connection and opens another on demand; without a listener the error would end
   * the process.
   */
  onIdleError?: (error: Error) => void;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const { default: pg } = await import('pg');
    // A small pool: on a few cores more Postgres backends mean more context switches, not more work.
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
    pool.on('error', (error) => options.onIdleError?.(error));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, kind: 'postgres', close: () => db.destroy() };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  let location = options.dataDir;
  if (location !== 'memory://') {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    location = join(options.dataDir, 'pglite');
  }
  const pglite = await PGlite.create(location === 'memory://' ? undefined : location);
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
  return {
    db,
    kind: 'pglite',
    async close() {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Brings the schema up to date; safe to run on every start and from several nodes. */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(`migration ${failed} failed: ${String(result.error)}`, {
      cause: result.error,
    });
  }
  return result;
}
