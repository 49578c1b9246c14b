// Write epochs: a write bumps the counter and stamps its tables' slots; slots are spread by
// FNV-1a over (cache id, table), never land on the counter, and threads share them by buffer.
import { describe, expect, it } from 'vitest';
import { CacheEpochs, EpochTable } from '../src/cache/epochs.ts';

const HOLD_SLOTS = 1 << 12;
const SLOTS = 1 << 16;

// FNV-1a (32 bits) as its authors specify it, over UTF-16 code units.
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

describe('EpochTable', () => {
  it('starts at epoch 0 with every slot unwritten', () => {
    const table = new EpochTable();
    expect(table.current).toBe(0n);
    expect(table.written(1)).toBe(0n);
    expect(table.written(SLOTS)).toBe(0n);
    // The epoch slots, the hold counters, then the cluster's global slot and serving lease.
    expect(table.buffer.byteLength).toBe(8 * (SLOTS + 1 + HOLD_SLOTS + 2));
    expect(table.servingNow()).toBe(false);
  });

  it('a hold is counted, seen through a copy of the table, and never moves an epoch', () => {
    const table = new EpochTable();
    const shared = new CacheEpochs(new EpochTable(table.buffer), 'cch_held');
    const other = new CacheEpochs(table, 'cch_other');
    expect(shared.held).toBe(false);
    table.hold('cch_held', 1);
    table.hold('cch_held', 1);
    expect(shared.held).toBe(true);
    table.hold('cch_held', -1);
    expect(shared.held).toBe(true);
    table.hold('cch_held', -1);
    expect(shared.held).toBe(false);
    table.hold('cch_held', 1);
    expect(table.holdSlotOf('cch_held')).toBeGreaterThan(SLOTS);
    expect(other.held).toBe(table.holdSlotOf('cch_other') === table.holdSlotOf('cch_held'));
    expect(table.current).toBe(0n);
    for (let slot = 1; slot <= SLOTS; slot++) expect(table.written(slot)).toBe(0n);
  });

  it('a write bumps the counter by one and stamps exactly its slots with the new epoch', () => {
    const table = new EpochTable();
    table.stamp([3, 7]);
    expect(table.current).toBe(1n);
    expect([table.written(3), table.written(7), table.written(4)]).toEqual([1n, 1n, 0n]);
    table.stamp([7]);
    expect(table.current).toBe(2n);
    expect([table.written(3), table.written(7)]).toEqual([1n, 2n]);
    table.stamp([]);
    expect(table.current).toBe(3n);
  });

  it('never moves a slot back to an older epoch', () => {
    const table = new EpochTable();
    // A slot a racing writer already stamped with a later epoch than this write's.
    Atomics.store(new BigInt64Array(table.buffer), 5, 9n);
    table.stamp([5, 6]);
    expect(table.written(5)).toBe(9n);
    expect(table.written(6)).toBe(1n);
  });

  it('shares counter and slots with a table opened on the same buffer (another thread)', () => {
    const table = new EpochTable();
    const other = new EpochTable(table.buffer);
    table.stamp([42]);
    expect(other.current).toBe(1n);
    expect(other.written(42)).toBe(1n);
    other.stamp([42]);
    expect(table.written(42)).toBe(2n);
  });

  it('picks a slot by FNV-1a over cache id, NUL and table, from 1 to 65536 (0 is the counter)', () => {
    const table = new EpochTable();
    for (const [cacheId, table_] of [
      ['cch_a', 'items'],
      ['cch_b', 'items'],
      ['cch_a', 'orders'],
      ['', ''],
      ['cch_é', 'ταβλε'],
    ] as const) {
      const slot = table.slotOf(cacheId, table_);
      expect(slot).toBe(1 + (fnv1a(`${cacheId}\0${table_}`) % SLOTS));
      expect(slot).toBeGreaterThanOrEqual(1);
      expect(slot).toBeLessThanOrEqual(SLOTS);
    }
    // The separator matters: ("ab", "c") and ("a", "bc") are different tables.
    expect(table.slotOf('ab', 'c')).not.toBe(table.slotOf('a', 'bc'));
  });
});

describe('EpochTable in a cluster', () => {
  it('a global stamp drops every cache and every miss in flight, seen through a copy of the table', async () => {
    const { ResultCache } = await import('../src/cache/result-cache.ts');
    const table = new EpochTable();
    const results = new ResultCache({ maxBytes: 1 << 20, epochs: new EpochTable(table.buffer) });
    const store = (cacheId: string, askedEpoch: bigint) =>
      results.set({
        key: cacheId,
        epochs: results.epochsFor(cacheId),
        tables: ['t'],
        response: Buffer.from('x'),
        fingerprint: 'f',
        transactionPolicy: 'never',
        ttlMs: 60_000,
        askedEpoch,
      });
    const asked = table.current;
    expect(store('cch_a', asked)).not.toBeNull();
    expect(store('cch_b', asked)).not.toBeNull();
    table.stampAll();
    expect(results.get('cch_a')).toBeUndefined();
    expect(results.get('cch_b')).toBeUndefined();
    expect(store('cch_a', asked)).toBeNull();
    expect(store('cch_a', table.current)).not.toBeNull();
  });

  it('the serving lease holds until its time, in every copy of the table, and 0 ends it at once', () => {
    const table = new EpochTable();
    const copy = new EpochTable(table.buffer);
    expect(copy.servingNow()).toBe(false);
    table.serveUntil(performance.timeOrigin + performance.now() + 60_000);
    expect(copy.servingNow()).toBe(true);
    table.serveUntil(performance.timeOrigin + performance.now() - 1);
    expect(copy.servingNow()).toBe(false);
    table.serveUntil(performance.timeOrigin + performance.now() + 60_000);
    table.serveUntil(0);
    expect(copy.servingNow()).toBe(false);
  });
});

describe('CacheEpochs', () => {
  it("gives each table of a cache its table slot, and the cache one slot for 'every table'", () => {
    const table = new EpochTable();
    const epochs = new CacheEpochs(table, 'cch_a');
    expect(epochs.table).toBe(table);
    expect(epochs.cacheId).toBe('cch_a');
    expect(epochs.slot('items')).toBe(table.slotOf('cch_a', 'items'));
    expect(epochs.slot('items')).toBe(table.slotOf('cch_a', 'items'));
    expect(epochs.slot('orders')).toBe(table.slotOf('cch_a', 'orders'));
    expect(epochs.allSlot).toBe(table.slotOf('cch_a', '\0*'));
    expect(new CacheEpochs(table, 'cch_b').allSlot).not.toBe(epochs.allSlot);
  });

  it('keeps answering the right slot past the memo limit', () => {
    const table = new EpochTable();
    const epochs = new CacheEpochs(table, 'cch_a');
    for (let i = 0; i < 10_050; i++) epochs.slot(`t${i}`);
    expect(epochs.slot('t10049')).toBe(table.slotOf('cch_a', 't10049'));
    expect(epochs.slot('t0')).toBe(table.slotOf('cch_a', 't0'));
  });
});
