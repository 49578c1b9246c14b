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

export class EpochTable {
  /** Hand this to another thread (workerData) to share the table. */
  readonly buffer: SharedArrayBuffer;
  readonly #slots: BigInt64Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(8 * (SLOTS + 1))) {
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
  stamp(slots: Iterable<number>): void {
    const epoch = Atomics.add(this.#slots, COUNTER, 1n) + 1n;
    for (const slot of slots) {
      let seen = Atomics.load(this.#slots, slot);
      while (seen < epoch) {
        const previous = Atomics.compareExchange(this.#slots, slot, seen, epoch);
        if (previous === seen) break;
        seen = previous;
      }
    }
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
  readonly #tableSlots = new Map<string, number>();

  constructor(table: EpochTable, cacheId: string) {
    this.table = table;
    this.cacheId = cacheId;
    this.allSlot = table.slotOf(cacheId, ALL_TABLES);
  }

  /** The slot of a table (bare name). */
  slot(table: string): number {
    let slot = this.#tableSlots.get(table);
    if (slot === undefined) {
      slot = this.table.slotOf(this.cacheId, table);
      if (this.#tableSlots.size < 10_000) this.#tableSlots.set(table, slot);
    }
    return slot;
  }
}
