// A store connection cut while a statement runs on it (the network drops, Postgres restarts or its
// backend is killed) fails that statement and nothing else: the process stays up, and the next
// statement gets a new connection. A pooled connection is lent without the pool's error listener, so
// without one of the store's own the cut would be an unhandled 'error' event and end the process.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/db/store.ts';
import { postgresRelay } from './helpers/postgres-relay.ts';
import { createTestDatabase } from './helpers/stores.ts';

describe('a store connection cut mid-statement', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let relay: ReturnType<typeof postgresRelay>;
  let store: Store;
  const idleErrors: Error[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    relay = postgresRelay(new URL(database.url));
    const viaRelay = new URL(database.url);
    viaRelay.host = `127.0.0.1:${await relay.up()}`;
    store = await openStore({
      databaseUrl: viaRelay.toString(),
      dataDir: 'memory://',
      onIdleError: (error) => idleErrors.push(error),
    });
  });

  afterAll(async () => {
    await store?.close();
    await relay?.down();
    await database?.drop();
  });

  it('fails that statement, keeps the process up, and the next one reconnects', async () => {
    for (const round of [1, 2]) {
      // A statement in a transaction, and one alone: both hold a connection lent by the pool.
      const inTransaction = store.db
        .transaction()
        .execute((trx) => sql`select pg_sleep(5)`.execute(trx));
      const alone = sql`select pg_sleep(5)`.execute(store.db);
      const outcomes = Promise.allSettled([inTransaction, alone]);
      // Both are running on the server before the cut.
      await waitFor(async () => (await sleepers()) >= 2);
      await relay.down();
      const [first, second] = await outcomes;
      expect(first.status, `round ${round}: the statement in the transaction`).toBe('rejected');
      expect(second.status, `round ${round}: the statement alone`).toBe('rejected');
      await relay.up();
      const { rows } = await sql<{ ok: number }>`select 1 as ok`.execute(store.db);
      expect(rows).toEqual([{ ok: 1 }]);
    }
  });

  // Sessions of the test database sleeping in pg_sleep, seen from a connection of its own.
  async function sleepers(): Promise<number> {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = current_database() and query like 'select pg_sleep%' and state = 'active'",
      );
      return rows[0]?.n ?? 0;
    } finally {
      await client.end();
    }
  }
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
