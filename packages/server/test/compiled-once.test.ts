// Statements compiled once (db/compiled-once.ts) and the token statements built on them: values go
// where their markers ended up, constants stay, one compiled text serves every store and a
// transaction, and the token redemption still writes all of its rows or none.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compiledOnce, type Param } from '../src/db/compiled-once.ts';
import { findTokenWithGrant, redeemAndInsertTokens } from '../src/db/queries/oauth-store.ts';
import type { Store } from '../src/db/store.ts';
import { openTestStore, storeKinds } from './helpers/stores.ts';

// One statement shared by both stores below, as in the server: compiled on first use by whichever.
const probe = compiledOnce((db, p: Param<{ a: number; b: string; c: string | null | undefined }>) =>
  sql<{
    a: number;
    b: string;
    again: number;
    fixed: string;
    c: string | null;
  }>`SELECT ${p('a')}::int AS a, ${p('b')}::text AS b, ${p('a')}::int + 1 AS again, ${'constant'}::text AS fixed, ${p('c')}::text AS c`.compile(
    db,
  ),
);

const token = (
  idHash: string,
  payload: Record<string, unknown> = { n: 1 },
  grantId: string | null = null,
) => ({
  idHash,
  kind: 'RefreshToken',
  grantId,
  payload,
  expiresAt: new Date(Date.now() + 60_000),
});

const tokenRow = (store: Store, idHash: string) =>
  store.db
    .selectFrom('oauth_tokens')
    .select(['grant_id', 'expires_at', 'consumed_at'])
    .where('id_hash', '=', idHash)
    .executeTakeFirst();

describe.each(storeKinds)('statements compiled once, on %s', (kind) => {
  let store: Store;

  beforeAll(async () => {
    store = await openTestStore(kind);
  });

  afterAll(async () => {
    await store?.close();
  });

  it('puts each value where its marker went, keeps constants, and binds undefined as null', async () => {
    const first = await probe(store.db, { a: 41, b: 'x', c: 'y' });
    expect(first.rows).toEqual([{ a: 41, b: 'x', again: 42, fixed: 'constant', c: 'y' }]);
    const second = await probe(store.pipelined, { a: 7, b: "it's", c: undefined });
    expect(second.rows).toEqual([{ a: 7, b: "it's", again: 8, fixed: 'constant', c: null }]);
  });

  it('refuses to run without one of its parameters', async () => {
    await expect(probe(store.db, { a: 1, b: 'x' } as never)).rejects.toThrow(
      'without its parameter "c"',
    );
  });

  it('runs inside a transaction', async () => {
    const rows = await store.db
      .transaction()
      .execute(async (trx) => (await probe(trx, { a: 1, b: 'in', c: null })).rows);
    expect(rows).toEqual([{ a: 1, b: 'in', again: 2, fixed: 'constant', c: null }]);
  });

  it('stores one or several new tokens, each found again by its digest', async () => {
    // oauth_tokens.grant_id has no foreign key, so any grant id will do here.
    const grantId = `grant-${kind}`;
    const withGrant = token(`${kind}-a`, { n: 1 }, grantId);
    expect(await redeemAndInsertTokens(store.pipelined, undefined, [withGrant])).toBe(true);
    const stored = await tokenRow(store, `${kind}-a`);
    expect(stored?.grant_id).toBe(grantId);
    expect(new Date(stored!.expires_at).getTime()).toBe(withGrant.expiresAt.getTime());
    expect(
      await redeemAndInsertTokens(store.pipelined, undefined, [
        token(`${kind}-b`, { n: 2 }),
        token(`${kind}-c`, { n: 3 }),
      ]),
    ).toBe(true);
    for (const [id, n] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ] as const) {
      const row = await findTokenWithGrant(store.pipelined, `${kind}-${id}`, 'RefreshToken');
      expect(row?.payload).toEqual({ n });
      expect(row?.consumedMsAgo).toBeNull();
    }
    expect(await findTokenWithGrant(store.pipelined, `${kind}-a`, 'AccessToken')).toBeUndefined();
  });

  it('redeems a token once: the second redemption writes none of its rows', async () => {
    await redeemAndInsertTokens(store.pipelined, undefined, [token(`${kind}-old`)]);
    const first = await redeemAndInsertTokens(store.pipelined, `${kind}-old`, [
      token(`${kind}-new-1`),
      token(`${kind}-new-2`),
    ]);
    const second = await redeemAndInsertTokens(store.pipelined, `${kind}-old`, [
      token(`${kind}-new-3`),
    ]);
    expect([first, second]).toEqual([true, false]);
    expect(
      await findTokenWithGrant(store.pipelined, `${kind}-new-2`, 'RefreshToken'),
    ).toBeDefined();
    expect(
      await findTokenWithGrant(store.pipelined, `${kind}-new-3`, 'RefreshToken'),
    ).toBeUndefined();
    const old = await findTokenWithGrant(store.pipelined, `${kind}-old`, 'RefreshToken');
    expect(old?.consumedMsAgo).not.toBeNull();
  });

  it('a redemption whose insert fails writes nothing and leaves the old token unused', async () => {
    await redeemAndInsertTokens(store.pipelined, undefined, [
      token(`${kind}-kept`),
      token(`${kind}-taken`),
    ]);
    // The second new token collides with an existing one: the whole statement fails.
    await expect(
      redeemAndInsertTokens(store.pipelined, `${kind}-kept`, [
        token(`${kind}-fresh`),
        token(`${kind}-taken`),
      ]),
    ).rejects.toMatchObject({ code: '23505' });
    expect((await tokenRow(store, `${kind}-kept`))?.consumed_at).toBeNull();
    expect(await tokenRow(store, `${kind}-fresh`)).toBeUndefined();
  });
});

describe('a statement compiled once', () => {
  let store: Store;

  beforeAll(async () => {
    store = await openTestStore('pglite');
  });

  afterAll(async () => {
    await store?.close();
  });

  type Name = Param<{ name: string }>;
  it.each([
    ['inside a longer string', (p: Name) => sql`SELECT ${`hello ${p('name')}`}::text`],
    ['with text after it', (p: Name) => sql`SELECT ${p('name') + '%'}::text`],
    ['in an array', (p: Name) => sql`SELECT ${[p('name')]}::text[]`],
    ['in JSON text', (p: Name) => sql`SELECT ${JSON.stringify({ n: p('name') })}::jsonb`],
    ['in the SQL text', (p: Name) => sql`SELECT ${sql.lit(p('name'))}::text`],
  ])('refuses a parameter %s', async (_, select) => {
    const broken = compiledOnce((db, p: Name) => select(p).compile(db));
    await expect(broken(store.db, { name: 'x' })).rejects.toThrow('was not passed whole');
  });
});
