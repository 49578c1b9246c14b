// store.pipelined on Postgres: single statements over shared pipelined connections. Many at once come
// back right and in their own order, one failing fails alone, statements that need a session are
// refused, and a shared connection that dies is replaced.
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/db/store.ts';
import { ADMIN_DATABASE_URL, createTestDatabase } from './helpers/stores.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let store: Store;

beforeAll(async () => {
  database = await createTestDatabase();
  store = await openStore({ databaseUrl: database.url, dataDir: 'memory://' });
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

const echo = (n: number) => sql<{ n: number }>`SELECT ${n}::int AS n`.execute(store.pipelined);

describe('store.pipelined on Postgres', () => {
  it('answers hundreds of concurrent statements, each with its own result', async () => {
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => echo(i)));
    expect(results.map((result) => result.rows[0]?.n)).toEqual(
      Array.from({ length: 500 }, (_, i) => i),
    );
  });

  it('prepares each statement once per connection, under a name made from its text', async () => {
    await echo(1);
    await echo(2);
    // One at a time, every statement goes to the first shared connection, this one included.
    const { rows } = await sql<{ name: string; statement: string }>`
      SELECT name, statement FROM pg_prepared_statements`.execute(store.pipelined);
    const echoes = rows.filter((row) => row.statement.includes('AS n'));
    expect(echoes).toHaveLength(1);
    expect(echoes[0]!.name).toMatch(/^k[\w-]{27}$/);
  });

  it('a failing statement fails alone; those sent with it succeed', async () => {
    const outcomes = await Promise.allSettled([
      echo(1),
      sql`SELECT 1 / 0`.execute(store.pipelined),
      echo(3),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: '22012' });
    expect((await echo(4)).rows).toEqual([{ n: 4 }]);
  });

  it('sees what store.db committed just before', async () => {
    await sql`CREATE TABLE pipelined_probe (v int)`.execute(store.db);
    await store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO pipelined_probe VALUES (7)`.execute(trx);
    });
    expect((await sql`SELECT v FROM pipelined_probe`.execute(store.pipelined)).rows).toEqual([
      { v: 7 },
    ]);
  });

  it('refuses what needs a session, saying to use store.db', async () => {
    await expect(store.pipelined.transaction().execute(async () => undefined)).rejects.toThrow(
      'use store.db',
    );
    await expect(sql`SELECT pg_advisory_lock(42)`.execute(store.pipelined)).rejects.toThrow(
      'use store.db',
    );
    await expect(sql`SET search_path TO nowhere`.execute(store.pipelined)).rejects.toThrow(
      'use store.db',
    );
    expect((await echo(5)).rows).toEqual([{ n: 5 }]);
  });

  it('replaces a shared connection that the server ended', async () => {
    await Promise.all([echo(1), echo(2), echo(3)]);
    const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
    const name = new URL(database.url).pathname.slice(1);
    await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    await admin.end();
    // Statements sent on a dying connection may fail; the next ones get a new connection.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await Promise.allSettled([echo(1), echo(2)]);
    expect((await echo(6)).rows).toEqual([{ n: 6 }]);
  });
});
