// Which migrations the store has applied, for `edgegate migrate` and the admin socket.
import { Migrator } from 'kysely/migration';
import type { Db } from '../store.ts';
import { migrationProvider } from './index.ts';

export async function listAppliedMigrations(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const all = await migrator.getMigrations();
  return all.filter((m) => m.executedAt !== undefined).map((m) => m.name);
}
