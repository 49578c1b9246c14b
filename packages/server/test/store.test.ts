// The store on both backends: migrations, constraints that protect data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { migrateToLatest, openStore, type Store } from '../src/db/store.ts';
import { listAppliedMigrations } from '../src/db/migrations/status.ts';
import { insertUser, findUserByEmail } from '../src/db/queries/users.ts';
import { ADMIN_DATABASE_URL, openTestStore, storeKinds } from './helpers/stores.ts';

describe.each(storeKinds)('store on %s', (kind) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(kind);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('reports itself as the right backend', () => {
    expect(store.kind).toBe(kind);
  });

  it('applies every migration, and running them again changes nothing', async () => {
    expect(await listAppliedMigrations(store.db)).toEqual([
      '0001-foundation',
      '0002-oauth',
      '0003-api',
      '0004-edge-metrics',
      '0005-connect',
      '0006-grant-caches',
      '0007-webhook-owners',
      '0008-cache-creators',
      '0009-password-verified',
      '0010-connect-end-user',
      '0011-user-disabled',
      '0012-cache-invalidation',
      '0013-replication-lease',
      '0014-shared-results',
    ]);
    const again = await migrateToLatest(store.db);
    expect(again.results).toEqual([]);
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = 'public' order by table_name`.execute(
      store.db,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining([
        'audit_events',
        'connect_sessions',
        'connections',
        'data_keys',
        'invitations',
        'memberships',
        'sessions',
        'users',
        'webhook_deliveries',
        'webhooks',
        'workspace_events',
        'workspaces',
      ]),
    );
  });

  it('keeps emails unique regardless of case', async () => {
    await insertUser(store.db, {
      id: 'usr_a',
      email: 'Case@Example.com',
      name: '',
      password_hash: 'x',
    });
    await expect(
      insertUser(store.db, {
        id: 'usr_b',
        email: 'case@example.com',
        name: '',
        password_hash: 'x',
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect((await findUserByEmail(store.db, 'CASE@example.COM'))?.id).toBe('usr_a');
  });

  it('rolls a failed transaction back completely', async () => {
    await expect(
      store.db.transaction().execute(async (tx) => {
        await insertUser(tx, {
          id: 'usr_tx',
          email: 'tx@example.com',
          name: '',
          password_hash: 'x',
        });
        await tx
          .insertInto('memberships')
          .values({ workspace_id: 'ws_missing', user_id: 'usr_tx', role: 'admin' })
          .execute();
      }),
    ).rejects.toMatchObject({ code: '23503' });
    expect(await findUserByEmail(store.db, 'tx@example.com')).toBeUndefined();
  });

  it('refuses a role that is neither admin nor member', async () => {
    await expect(
      sql`insert into memberships (workspace_id, user_id, role) values ('a', 'b', 'owner')`.execute(
        store.db,
      ),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^23/) });
  });
});

describe('the Postgres store', () => {
  let admin: Store;
  beforeAll(async () => {
    admin = await openTestStore('postgres');
  });
  afterAll(async () => {
    await admin?.close();
  });

  it('survives Postgres ending an idle connection, and reconnects', async () => {
    const errors: Error[] = [];
    const own = await openStore({
      databaseUrl: ADMIN_DATABASE_URL,
      dataDir: 'unused',
      onIdleError: (e) => errors.push(e),
    });
    try {
      const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(own.db))
        .rows[0]!.pid;
      await sql`select pg_terminate_backend(${pid})`.execute(admin.db);
      await new Promise((r) => setTimeout(r, 200));
      expect(errors.map((e) => (e as { code?: string }).code)).toContain('57P01');
      expect((await sql<{ one: number }>`select 1 as one`.execute(own.db)).rows[0]!.one).toBe(1);
    } finally {
      await own.close();
    }
  });
});
