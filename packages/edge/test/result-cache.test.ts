// The result store (LRU bytes, TTL, epochs, coalescing) and how a cache's rules pick a policy.
import { describe, expect, it } from 'vitest';
import {
  EpochTable,
  ResultCache,
  type CacheEntry,
  type CacheEpochs,
} from '../src/cache/result-cache.ts';
import {
  CompiledRules,
  queryHash,
  type CacheMode,
  type EdgeCacheConfig,
  type EdgeRule,
} from '../src/control/config.ts';
import type { TableRef } from '../src/pg/sql/analyze.ts';

// What the store charges for an entry beyond its response and key (ENTRY_OVERHEAD_BYTES).
const OVERHEAD = 160;

function store(
  cache: ResultCache,
  epochs: CacheEpochs,
  key: string,
  options: { tables?: string[]; bytes?: number; ttlMs?: number; askedEpoch?: bigint } = {},
): CacheEntry | null {
  return cache.set({
    key,
    epochs,
    tables: options.tables ?? ['t'],
    response: Buffer.alloc(options.bytes ?? 100, 0x61),
    fingerprint: 'f',
    transactionPolicy: 'untilWrite',
    ttlMs: options.ttlMs ?? 60_000,
    askedEpoch: options.askedEpoch ?? cache.epoch,
  });
}

const keys = (cache: ResultCache, candidates: string[]) =>
  candidates.filter((key) => cache.get(key) !== undefined);

describe('ResultCache size bound', () => {
  // Entries of one-letter keys and 100 bytes cost 262 bytes: three fit in 800, four do not.
  const ENTRY = 100 + 2 + OVERHEAD;

  it('counts an entry as its response, its key and a fixed overhead', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    store(cache, cache.epochsFor('cch_a'), 'a', { bytes: 100 });
    expect(cache.bytes).toBe(ENTRY);
    store(cache, cache.epochsFor('cch_a'), 'key', { bytes: 50 });
    expect(cache.bytes).toBe(ENTRY + 50 + 6 + OVERHEAD);
  });

  it('evicts the least recently stored entry to stay within maxBytes', () => {
    const cache = new ResultCache({ maxBytes: 800 });
    const epochs = cache.epochsFor('cch_a');
    for (const key of ['a', 'b', 'c', 'd']) store(cache, epochs, key);
    expect(cache.bytes).toBe(3 * ENTRY);
    expect(cache.evictions).toBe(1);
    expect(keys(cache, ['a', 'b', 'c', 'd'])).toEqual(['b', 'c', 'd']);
  });

  it('a get makes an entry recently used, so another one is evicted', () => {
    const cache = new ResultCache({ maxBytes: 800 });
    const epochs = cache.epochsFor('cch_a');
    for (const key of ['a', 'b', 'c']) store(cache, epochs, key);
    expect(cache.get('a')).toBeDefined();
    store(cache, epochs, 'd');
    expect(cache.get('b')).toBeUndefined();
    expect(keys(cache, ['a', 'c', 'd'])).toEqual(['a', 'c', 'd']);
  });

  it('storing a key again replaces the entry without counting it twice', () => {
    const cache = new ResultCache({ maxBytes: 800 });
    const epochs = cache.epochsFor('cch_a');
    store(cache, epochs, 'a', { bytes: 100 });
    store(cache, epochs, 'b');
    store(cache, epochs, 'a', { bytes: 10 });
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBe(ENTRY + 10 + 2 + OVERHEAD);
    expect(cache.get('a')?.response.length).toBe(10);
  });

  it('never holds more than maxBytes, whatever is stored and read', () => {
    const cache = new ResultCache({ maxBytes: 5_000, maxEntryBytes: 2_000 });
    const epochs = cache.epochsFor('cch_a');
    let seed = 7;
    const next = (limit: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % limit;
    };
    for (let i = 0; i < 2_000; i++) {
      const key = `k${next(60)}`;
      if (next(3) === 0) cache.get(key);
      else store(cache, epochs, key, { bytes: next(1_800) });
      expect(cache.bytes).toBeLessThanOrEqual(5_000);
    }
    expect(cache.evictions).toBeGreaterThan(0);
  });

  it('refuses an entry bigger than maxEntryBytes', () => {
    const cache = new ResultCache({ maxBytes: 10_000, maxEntryBytes: 500 });
    const epochs = cache.epochsFor('cch_a');
    expect(store(cache, epochs, 'small', { bytes: 500 - 10 - OVERHEAD })).not.toBeNull();
    expect(store(cache, epochs, 'large', { bytes: 500 - 10 - OVERHEAD + 1 })).toBeNull();
    expect(cache.get('large')).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('by default refuses entries over 1/16 of maxBytes, and never bounds them below 1 KiB', () => {
    expect(new ResultCache({ maxBytes: 16 * 1024 * 1024 }).maxEntryBytes).toBe(1024 * 1024);
    expect(new ResultCache({ maxBytes: 4096 }).maxEntryBytes).toBe(1024);
  });
});

describe('ResultCache expiry', () => {
  it('serves an entry until its TTL has passed, then drops it', () => {
    let now = 1_000;
    const cache = new ResultCache({ maxBytes: 10_000, now: () => now });
    store(cache, cache.epochsFor('cch_a'), 'a', { ttlMs: 500 });
    now = 1_499;
    expect(cache.get('a')).toBeDefined();
    now = 1_500;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('does not store a result with no TTL', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    expect(store(cache, cache.epochsFor('cch_a'), 'a', { ttlMs: 0 })).toBeNull();
    expect(cache.size).toBe(0);
  });
});

describe('ResultCache invalidation', () => {
  it('a write to some tables makes their entries stale and leaves the others', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const epochs = cache.epochsFor('cch_a');
    store(cache, epochs, 'reads t', { tables: ['t'] });
    store(cache, epochs, 'reads t and u', { tables: ['t', 'u'] });
    store(cache, epochs, 'reads u', { tables: ['u'] });
    store(cache, epochs, 'reads nothing', { tables: [] });
    cache.invalidate(epochs, ['t']);
    expect(keys(cache, ['reads t', 'reads t and u', 'reads u', 'reads nothing'])).toEqual([
      'reads u',
      'reads nothing',
    ]);
    expect(cache.size).toBe(2);
  });

  it("'all' makes every entry of that cache stale", () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const epochs = cache.epochsFor('cch_a');
    store(cache, epochs, 'reads t', { tables: ['t'] });
    store(cache, epochs, 'reads nothing', { tables: [] });
    cache.invalidate(epochs, 'all');
    expect(keys(cache, ['reads t', 'reads nothing'])).toEqual([]);
  });

  it("a write through one cache leaves another cache's entries alone", () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const mine = cache.epochsFor('cch_a');
    const theirs = cache.epochsFor('cch_b');
    store(cache, mine, 'mine', { tables: ['t'] });
    store(cache, theirs, 'theirs', { tables: ['t'] });
    cache.invalidate(mine, 'all');
    expect(keys(cache, ['mine', 'theirs'])).toEqual(['theirs']);
  });

  it('a result asked for after the write is stored and served', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const epochs = cache.epochsFor('cch_a');
    cache.invalidate(epochs, ['t']);
    expect(store(cache, epochs, 'a', { tables: ['t'], askedEpoch: cache.epoch })).not.toBeNull();
    expect(cache.get('a')).toBeDefined();
  });

  // The read may have run before the write committed: its answer could predate the write.
  it('a result asked for before a write to its tables is not stored', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const epochs = cache.epochsFor('cch_a');
    const asked = cache.epoch;
    cache.invalidate(epochs, ['t']);
    expect(store(cache, epochs, 'a', { tables: ['t'], askedEpoch: asked })).toBeNull();
    expect(cache.get('a')).toBeUndefined();
  });

  it('a result asked for before a write to other tables is stored', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const epochs = cache.epochsFor('cch_a');
    const asked = cache.epoch;
    cache.invalidate(epochs, ['u']);
    expect(store(cache, epochs, 'a', { tables: ['t'], askedEpoch: asked })).not.toBeNull();
    expect(cache.get('a')).toBeDefined();
  });

  it("a result asked for before an 'all' write is not stored", () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    const epochs = cache.epochsFor('cch_a');
    const asked = cache.epoch;
    cache.invalidate(epochs, 'all');
    expect(store(cache, epochs, 'a', { tables: [], askedEpoch: asked })).toBeNull();
  });
});

describe('ResultCache epochs shared between threads', () => {
  // Two stores on one table stand for two threads of an edge: each has its own entries, and a
  // write through either makes both forget.
  it("a write through one store makes the other store's entries of those tables stale", () => {
    const table = new EpochTable();
    const here = new ResultCache({ maxBytes: 10_000, epochs: table });
    const there = new ResultCache({
      maxBytes: 10_000,
      epochs: new EpochTable(table.buffer),
    });
    store(there, there.epochsFor('cch_a'), 'reads t', { tables: ['t'] });
    store(there, there.epochsFor('cch_a'), 'reads u', { tables: ['u'] });
    store(there, there.epochsFor('cch_b'), 'other cache reads t', { tables: ['t'] });
    here.invalidate(here.epochsFor('cch_a'), ['t']);
    expect(keys(there, ['reads t', 'reads u', 'other cache reads t'])).toEqual([
      'reads u',
      'other cache reads t',
    ]);
    expect(here.epoch).toBe(there.epoch);
  });

  it('a result one store asked for before the other store saw a write is not stored', () => {
    const table = new EpochTable();
    const here = new ResultCache({ maxBytes: 10_000, epochs: table });
    const there = new ResultCache({ maxBytes: 10_000, epochs: new EpochTable(table.buffer) });
    const asked = there.epoch;
    here.invalidate(here.epochsFor('cch_a'), 'all');
    expect(store(there, there.epochsFor('cch_a'), 'a', { askedEpoch: asked })).toBeNull();
  });

  it('a slot never moves back when an older stamp lands after a newer one', () => {
    const table = new EpochTable();
    const slot = table.slotOf('cch_a', 't');
    table.stamp([slot]);
    const newer = table.written(slot);
    // A writer that took its epoch earlier but stamps late must not lower the slot.
    const view = new BigInt64Array(table.buffer);
    Atomics.store(view, 0, newer - 2n);
    table.stamp([slot]);
    expect(table.written(slot)).toBe(newer);
  });
});

describe('ResultCache coalescing', () => {
  it('the first caller asks the origin; the others get what it stored', async () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    expect(cache.join('k')).toBeNull();
    const second = cache.join('k');
    const third = cache.join('k');
    expect(second).toBeInstanceOf(Promise);
    const entry = store(cache, cache.epochsFor('cch_a'), 'k');
    cache.settle('k', entry);
    expect(entry).not.toBeNull();
    expect(await second).toBe(entry);
    expect(await third).toBe(entry);
  });

  it('waiters get null when the result could not be stored', async () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    cache.join('k');
    const waiter = cache.join('k');
    cache.settle('k', null);
    expect(await waiter).toBeNull();
  });

  it('after settling, the next caller leads again; other keys are independent', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    expect(cache.join('k')).toBeNull();
    expect(cache.join('other')).toBeNull();
    cache.settle('k', null);
    expect(cache.join('k')).toBeNull();
    expect(cache.join('other')).toBeInstanceOf(Promise);
  });
});

function rules(
  options: { defaultMode?: CacheMode; defaultTtlSeconds?: number; rules?: EdgeRule[] } = {},
): CompiledRules {
  const config: EdgeCacheConfig = {
    id: 'cache-1',
    type: 'postgres',
    hostname: '127.0.0.1',
    port: 5432,
    defaultMode: options.defaultMode ?? 'auto',
    defaultTtlSeconds: options.defaultTtlSeconds ?? 60,
    originTls: 'disable',
    rules: options.rules ?? [],
  };
  return new CompiledRules(config);
}

function rule(
  kind: EdgeRule['kind'],
  key: string,
  mode: CacheMode,
  ttlSeconds: number | null = null,
  transactionPolicy: EdgeRule['transactionPolicy'] = 'untilWrite',
): EdgeRule {
  return { kind, key, mode, ttlSeconds, transactionPolicy };
}

const table = (name: string, schema: string | null = null): TableRef => ({ schema, name });

const SQL = 'SELECT * FROM items WHERE id = 1';
const FINGERPRINT = '0123456789abcdef';

describe('CompiledRules.decide', () => {
  it('without rules uses the cache default', () => {
    expect(rules({ defaultTtlSeconds: 30 }).decide(SQL, FINGERPRINT, [table('items')])).toEqual({
      ttlMs: 30_000,
      transactionPolicy: 'untilWrite',
    });
    expect(rules({ defaultMode: 'off' }).decide(SQL, FINGERPRINT, [table('items')])).toBeNull();
  });

  it('takes a query rule over a template rule over a table rule over the default', () => {
    const compiled = rules({
      defaultTtlSeconds: 60,
      rules: [
        rule('table', 'items', 'manual', 10),
        rule('template', FINGERPRINT, 'manual', 20),
        rule('query', queryHash(SQL), 'manual', 30),
      ],
    });
    const ttl = (sql: string, fingerprint: string, tables: TableRef[]) =>
      compiled.decide(sql, fingerprint, tables)?.ttlMs;
    expect(ttl(SQL, FINGERPRINT, [table('items')])).toBe(30_000);
    expect(ttl('SELECT * FROM items WHERE id = 2', FINGERPRINT, [table('items')])).toBe(20_000);
    const other = 'SELECT name FROM items';
    expect(ttl(other, 'fedcba9876543210', [table('items')])).toBe(10_000);
    expect(ttl(other, 'fedcba9876543210', [table('orders')])).toBe(60_000);
  });

  it('a query rule matches the exact text only', () => {
    const compiled = rules({ rules: [rule('query', queryHash(SQL), 'off')] });
    expect(compiled.decide(SQL, FINGERPRINT, [])).toBeNull();
    expect(compiled.decide(`${SQL} `, FINGERPRINT, [])).not.toBeNull();
  });

  it('an off rule of higher precedence wins over an on rule below it, and the other way round', () => {
    const offAbove = rules({
      rules: [rule('template', FINGERPRINT, 'off'), rule('table', 'items', 'manual', 10)],
    });
    expect(offAbove.decide(SQL, FINGERPRINT, [table('items')])).toBeNull();
    const onAbove = rules({
      rules: [rule('query', queryHash(SQL), 'auto'), rule('table', 'items', 'off')],
    });
    expect(onAbove.decide(SQL, FINGERPRINT, [table('items')])).toEqual({
      ttlMs: 60_000,
      transactionPolicy: 'untilWrite',
    });
  });

  it('auto uses the default TTL even when the rule keeps one; manual uses its own', () => {
    const compiled = rules({
      defaultTtlSeconds: 45,
      rules: [rule('table', 'a', 'auto', 5), rule('table', 'b', 'manual', 5)],
    });
    expect(compiled.decide(SQL, FINGERPRINT, [table('a')])?.ttlMs).toBe(45_000);
    expect(compiled.decide(SQL, FINGERPRINT, [table('b')])?.ttlMs).toBe(5_000);
  });

  it('a read of several tables is not cached when any of them is off', () => {
    const compiled = rules({
      rules: [rule('table', 'items', 'manual', 10), rule('table', 'secrets', 'off')],
    });
    expect(compiled.decide(SQL, FINGERPRINT, [table('items'), table('secrets')])).toBeNull();
    expect(compiled.decide(SQL, FINGERPRINT, [table('secrets'), table('items')])).toBeNull();
  });

  it('a read of several tables is kept for the smallest TTL, default included', () => {
    const compiled = rules({
      defaultTtlSeconds: 5,
      rules: [rule('table', 'items', 'manual', 10), rule('table', 'orders', 'manual', 30)],
    });
    expect(compiled.decide(SQL, FINGERPRINT, [table('orders'), table('items')])?.ttlMs).toBe(
      10_000,
    );
    expect(compiled.decide(SQL, FINGERPRINT, [table('orders'), table('users')])?.ttlMs).toBe(5_000);
  });

  it("a read of several tables is kept only outside transactions when any table says 'never'", () => {
    const compiled = rules({
      rules: [
        rule('table', 'items', 'manual', 10, 'untilWrite'),
        rule('table', 'orders', 'manual', 10, 'never'),
      ],
    });
    expect(compiled.decide(SQL, FINGERPRINT, [table('items')])?.transactionPolicy).toBe(
      'untilWrite',
    );
    expect(
      compiled.decide(SQL, FINGERPRINT, [table('items'), table('orders')])?.transactionPolicy,
    ).toBe('never');
  });

  it('matches schema-qualified and bare table rules as the docs say', () => {
    const compiled = rules({
      defaultMode: 'off',
      rules: [
        rule('table', 'public.items', 'manual', 1),
        rule('table', 'app.orders', 'manual', 2),
        rule('table', 'users', 'manual', 3),
      ],
    });
    const ttl = (ref: TableRef) => compiled.decide(SQL, FINGERPRINT, [ref])?.ttlMs ?? null;
    // An unqualified reference: the bare name, then public.name.
    expect(ttl(table('items'))).toBe(1_000);
    expect(ttl(table('users'))).toBe(3_000);
    // A qualified reference: exactly schema.name, then the bare name.
    expect(ttl(table('items', 'public'))).toBe(1_000);
    expect(ttl(table('orders', 'app'))).toBe(2_000);
    expect(ttl(table('users', 'app'))).toBe(3_000);
    expect(ttl(table('items', 'app'))).toBeNull();
    expect(ttl(table('orders'))).toBeNull();
    expect(ttl(table('orders', 'public'))).toBeNull();
  });

  it('matches a rule for a quoted mixed-case name only to that exact name', () => {
    const compiled = rules({
      defaultMode: 'off',
      rules: [
        rule('table', '"Items"', 'manual', 1),
        rule('table', 'app."Order Lines"', 'manual', 2),
      ],
    });
    expect(compiled.decide(SQL, FINGERPRINT, [table('Items')])?.ttlMs).toBe(1_000);
    expect(compiled.decide(SQL, FINGERPRINT, [table('items')])).toBeNull();
    expect(compiled.decide(SQL, FINGERPRINT, [table('Order Lines', 'app')])?.ttlMs).toBe(2_000);
  });

  it('a read of no table follows the default, whatever the table rules say', () => {
    const compiled = rules({ defaultMode: 'off', rules: [rule('table', 'items', 'manual', 1)] });
    expect(compiled.decide('SELECT 1', FINGERPRINT, [])).toBeNull();
  });
});

describe('CompiledRules.neverCaches', () => {
  it('is true only when the default and every rule are off', () => {
    expect(rules({ defaultMode: 'off' }).neverCaches).toBe(true);
    expect(rules({ defaultMode: 'off', rules: [rule('table', 'items', 'off')] }).neverCaches).toBe(
      true,
    );
    expect(
      rules({ defaultMode: 'off', rules: [rule('table', 'items', 'manual', 10)] }).neverCaches,
    ).toBe(false);
    expect(rules({ defaultMode: 'auto' }).neverCaches).toBe(false);
  });

  it('a default-off cache still caches what a rule turns on', () => {
    const compiled = rules({ defaultMode: 'off', rules: [rule('table', 'items', 'manual', 10)] });
    expect(compiled.decide(SQL, FINGERPRINT, [table('items')])?.ttlMs).toBe(10_000);
    expect(compiled.decide(SQL, FINGERPRINT, [table('orders')])).toBeNull();
  });
});

describe('ResultCache edges', () => {
  const ENTRY = 100 + 2 + OVERHEAD;

  it('holds entries that fill maxBytes exactly, evicting nothing', () => {
    const cache = new ResultCache({ maxBytes: 3 * ENTRY });
    const epochs = cache.epochsFor('cch_a');
    for (const key of ['a', 'b', 'c']) store(cache, epochs, key);
    expect(cache.evictions).toBe(0);
    expect(keys(cache, ['a', 'b', 'c'])).toEqual(['a', 'b', 'c']);
    store(cache, epochs, 'd');
    expect(cache.evictions).toBe(1);
    expect(cache.bytes).toBe(3 * ENTRY);
  });

  it('clear empties the store, which then fills and evicts as before', () => {
    const cache = new ResultCache({ maxBytes: 3 * ENTRY });
    const epochs = cache.epochsFor('cch_a');
    for (const key of ['a', 'b', 'c', 'd']) store(cache, epochs, key);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
    expect(keys(cache, ['a', 'b', 'c', 'd'])).toEqual([]);
    for (const key of ['e', 'f', 'g', 'h', 'i']) store(cache, epochs, key);
    expect(keys(cache, ['e', 'f', 'g', 'h', 'i'])).toEqual(['g', 'h', 'i']);
    expect(cache.bytes).toBe(3 * ENTRY);
    expect(cache.size).toBe(3);
  });

  it('a hit entry gets a second chance once; the next evictions take the oldest of the rest', () => {
    const cache = new ResultCache({ maxBytes: 3 * ENTRY });
    const epochs = cache.epochsFor('cch_a');
    for (const key of ['a', 'b', 'c']) store(cache, epochs, key);
    cache.get('a');
    store(cache, epochs, 'd');
    store(cache, epochs, 'e');
    expect(cache.evictions).toBe(2);
    expect(keys(cache, ['a', 'b', 'c', 'd', 'e'])).toEqual(['a', 'd', 'e']);
  });

  it('settling a key no one is waiting for does nothing', () => {
    const cache = new ResultCache({ maxBytes: 10_000 });
    expect(() => cache.settle('nobody', null)).not.toThrow();
    expect(cache.join('nobody')).toBeNull();
  });
});
