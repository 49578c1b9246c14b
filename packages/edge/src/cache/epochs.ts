// Write epochs in shared memory, so that every thread of an edge sees a write the moment it commits:
// a write bumps one global counter and stamps its tables' slots with the new value; a result is
// stale when any of its slots carries an epoch newer than the one it was asked at.
//
// A slot is picked by hashing (cache id, table), so two tables can share a slot: a write to one
// then also drops reads of the other (a needless miss, never a stale hit). BigInt64 slots never
// wrap, and every access is an Atomics operation, so no thread reads a torn or reordered value.

const SLOTS = 1 << 16;
const COUNTER = 0;
const ALL_TABLES = '\0*';
// After the epoch slots: how many holders each cache slot has. A held cache neither serves nor
// stores results (its change-stream follower is down or behind). Two caches sharing a hold slot
// hold each other: needless misses, never a stale hit.
const HOLD_SLOTS = 1 << 12;
const FIRST_HOLD = SLOTS + 1;
// After the hold slots, for a cluster of edge nodes (REDIS_URL): one slot every stored result
// names, stamped when the node resynchronises with the others (it may have missed their writes, so
// it drops everything it held), and the time until which this node may serve from its cache (ms
// since the Unix epoch, on a monotonic clock; 0: not serving). A node alone never writes either.
const GLOBAL_SLOT = FIRST_HOLD + HOLD_SLOTS;
const SERVING_UNTIL = GLOBAL_SLOT + 1;
const TABLE_SIZE = SERVING_UNTIL + 1;

/** Now in ms since the Unix epoch, never moving back within a thread (unlike `Date.now`). */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

export class EpochTable {
  /** Hand this to another thread (workerData) to share the table. */
  readonly buffer: SharedArrayBuffer;
  readonly #slots: BigInt64Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(8 * TABLE_SIZE)) {
    this.buffer = buffer;
    this.#slots = new BigInt64Array(buffer);
  }

  /** The current epoch: a miss records it before asking the origin, and stores with it. */
  get current(): bigint {
    return Atomics.load(this.#slots, COUNTER);
  }

  /** The epoch of the last write stamped on `slot`. */
  written(slot: number): bigint {
    return Atomics.load(this.#slots, slot);
  }

  /** Marks `slots` as written now. A slot never moves back, even when two writers race. */
  stamp(slots: readonly number[]): void {
    const epoch = Atomics.add(this.#slots, COUNTER, 1n) + 1n;
    for (let i = 0; i < slots.length; i += 1) {
      const slot = slots[i] as number;
      let seen = Atomics.load(this.#slots, slot);
      // Stryker disable next-line EqualityOperator: at seen === epoch one more exchange stores the same value
      while (seen < epoch) {
        const previous = Atomics.compareExchange(this.#slots, slot, seen, epoch);
        // Stryker disable next-line all: only a writer racing in another thread makes an exchange fail; threads.test.ts races them
        if (previous === seen) break;
        seen = previous;
      }
    }
  }

  /** The slot every stored result names: stamped, it drops every result of every cache. */
  get globalSlot(): number {
    return GLOBAL_SLOT;
  }

  /** Drops every result of every cache, and every miss in flight (see `globalSlot`). */
  stampAll(): void {
    this.stamp([GLOBAL_SLOT]);
  }

  /**
   * Whether this node may serve from (and store in) its cache now: the cluster bus renews this
   * lease while it is sure to hear every other node's writes. Always true without a bus.
   */
  servingNow(): boolean {
    return Number(Atomics.load(this.#slots, SERVING_UNTIL)) > monotonicNow();
  }

  /** Lets every thread serve until `until` (see `monotonicNow`); 0 stops them at once. */
  serveUntil(until: number): void {
    Atomics.store(this.#slots, SERVING_UNTIL, BigInt(Math.floor(until)));
  }

  /** Adds (1) or removes (-1) a holder of the cache's hold slot. */
  hold(cacheId: string, delta: 1 | -1): void {
    Atomics.add(this.#slots, this.holdSlotOf(cacheId), BigInt(delta));
  }

  held(holdSlot: number): boolean {
    return Atomics.load(this.#slots, holdSlot) > 0n;
  }

  holdSlotOf(cacheId: string): number {
    return FIRST_HOLD + (this.slotOf(cacheId, ALL_TABLES) % HOLD_SLOTS);
  }

  slotOf(cacheId: string, table: string): number {
    // FNV-1a over the UTF-16 code units; slot 0 is the counter.
    let hash = 0x811c9dc5;
    for (const part of [cacheId, '\0', table]) {
      for (let i = 0; i < part.length; i++) {
        hash ^= part.charCodeAt(i);
        hash = Math.imul(hash, 0x01000193);
      }
    }
    return 1 + ((hash >>> 0) % SLOTS);
  }
}

/** One cache id's view of the table: its "every table" slot and a memo of its tables' slots. */
export class CacheEpochs {
  readonly table: EpochTable;
  readonly cacheId: string;
  /** Stamped by writes whose tables are unknown (CALL, DO, …) and by config changes. */
  readonly allSlot: number;
  readonly #holdSlot: number;
  readonly #tableSlots = new Map<string, number>();

  constructor(table: EpochTable, cacheId: string) {
    this.table = table;
    this.cacheId = cacheId;
    this.allSlot = table.slotOf(cacheId, ALL_TABLES);
    this.#holdSlot = table.holdSlotOf(cacheId);
  }

  /** Whether the cache may not serve or store results now (see `EpochTable.hold`). */
  get held(): boolean {
    return this.table.held(this.#holdSlot);
  }

  /** The slot of a table (bare name). */
  slot(table: string): number {
    let slot = this.#tableSlots.get(table);
    // Stryker disable next-line ConditionalExpression: the memo saves hashing, the slot is the same
    if (slot === undefined) {
      slot = this.table.slotOf(this.cacheId, table);
      // Stryker disable next-line all: the memo's bound limits memory, never which slot is answered
      if (this.#tableSlots.size < 10_000) this.#tableSlots.set(table, slot);
    }
    return slot;
  }
}
