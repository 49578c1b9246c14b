// Which migrations the store has applied (and which are pending), for `edgegate migrate` and the
// admin socket.
import { Migrator } from 'kysely/migration';
import type { Db } from '../store.ts';
import { migrationProvider } from './index.ts';

export async function listAppliedMigrations(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const all = await migrator.getMigrations();
  return all.filter((m) => m.executedAt !== undefined).map((m) => m.name);
}

export interface MigrationStatus {
  applied: { name: string; executedAt: string }[];
  /** Known to this version of Edgegate and not yet applied to the store. */
  pending: string[];
}

/** What is applied and what is pending, without applying anything. */
export async function migrationStatus(db: Db): Promise<MigrationStatus> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const all = await migrator.getMigrations();
  return {
    applied: all.flatMap((m) =>
      m.executedAt ? [{ name: m.name, executedAt: m.executedAt.toISOString() }] : [],
    ),
    pending: all.filter((m) => m.executedAt === undefined).map((m) => m.name),
  };
}
