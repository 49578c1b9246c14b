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
const probe = compiledOnce((db, p: Param<{ a: number; b: string; c: string | null }>) =>
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

const token = (idHash: string, payload: Record<string, unknown> = { n: 1 }) => ({
  idHash,
  kind: 'RefreshToken',
  grantId: null,
  payload,
  expiresAt: new Date(Date.now() + 60_000),
});

describe.each(storeKinds)('statements compiled once, on %s', (kind) => {
  let store: Store;

  beforeAll(async () => {
    store = await openTestStore(kind);
  });

  afterAll(async () => {
    await store?.close();
  });

  it('puts each value where its marker went, keeps constants, and passes a missing one as null', async () => {
    const first = await probe(store.db, { a: 41, b: 'x', c: 'y' });
    expect(first.rows).toEqual([{ a: 41, b: 'x', again: 42, fixed: 'constant', c: 'y' }]);
    const second = await probe(store.pipelined, { a: 7, b: "it's", c: null });
    expect(second.rows).toEqual([{ a: 7, b: "it's", again: 8, fixed: 'constant', c: null }]);
  });

  it('runs inside a transaction', async () => {
    const rows = await store.db
      .transaction()
      .execute(async (trx) => (await probe(trx, { a: 1, b: 'in', c: null })).rows);
    expect(rows).toEqual([{ a: 1, b: 'in', again: 2, fixed: 'constant', c: null }]);
  });

  it('stores one or several new tokens, each found again by its digest', async () => {
    expect(await redeemAndInsertTokens(store.pipelined, undefined, [token(`${kind}-a`)])).toBe(
      true,
    );
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
});

describe('a statement compiled once', () => {
  it('refuses a parameter that was not passed whole', async () => {
    const store = await openTestStore('pglite');
    try {
      const broken = compiledOnce((db, p: Param<{ name: string }>) =>
        sql`SELECT ${`hello ${p('name')}`}::text AS greeting`.compile(db),
      );
      await expect(broken(store.db, { name: 'x' })).rejects.toThrow('was not passed whole');
    } finally {
      await store.close();
    }
  });
});
