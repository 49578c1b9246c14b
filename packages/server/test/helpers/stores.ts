// Opens a fresh store of each kind for a test file: PGlite in memory, and a new database on the
// machine's Postgres (127.0.0.1:5432) that is dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateToLatest, openStore, type Store } from '../../src/db/store.ts';

export type StoreKind = 'pglite' | 'postgres';
export const storeKinds: StoreKind[] = ['pglite', 'postgres'];

export const ADMIN_DATABASE_URL =
  process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * A new database on the machine's Postgres. `migrated` applies the schema, as a control plane
 * would: an edge node started alone never migrates the store and waits for it.
 */
export async function createTestDatabase(
  options: { migrated?: boolean } = {},
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `eg_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  if (options.migrated === true) {
    const store = await openStore({ databaseUrl: url.toString(), dataDir: 'memory://' });
    try {
      await migrateToLatest(store.db);
    } finally {
      await store.close();
    }
  }
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await client.connect();
      // Connections that are closing finish first; FORCE only ends ones that never would.
      for (let i = 0; i < 40; i++) {
        const { rows } = await client.query(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
          [name],
        );
        if (rows[0].n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** A migrated store; `close()` also drops the Postgres database it made. */
export async function openTestStore(kind: StoreKind): Promise<Store> {
  if (kind === 'pglite') {
    const store = await openStore({ dataDir: 'memory://' });
    await migrateToLatest(store.db);
    return store;
  }
  const database = await createTestDatabase();
  const store = await openStore({ databaseUrl: database.url, dataDir: 'unused' });
  await migrateToLatest(store.db);
  return {
    ...store,
    async close() {
      await store.close();
      await database.drop();
    },
  };
}
