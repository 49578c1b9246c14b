// The edge's result store: a size-bounded cache of encoded responses with second-chance (CLOCK)
// eviction, an approximation of LRU that never writes to the Map on a hit (a hit that re-inserted
// its key would churn a million-entry hash table and the garbage collector), invalidated lazily by epochs
// (a write stamps its tables' slots in O(1); an entry older than any of its slots is stale on its
// next lookup, in whichever thread holds it), with request coalescing for identical concurrent misses.
import { CacheEpochs, EpochTable } from './epochs.ts';

export { CacheEpochs, EpochTable } from './epochs.ts';

export interface CacheEntry {
  readonly key: string;
  readonly epochs: CacheEpochs;
  /**
   * The epoch slots that make this entry stale: the node's global slot (a cluster resync), its
   * cache's "every table" slot and its tables'.
   */
  readonly slots: readonly number[];
  /**
   * The whole answer as the origin sent it, ending with ReadyForQuery('I'); an extended-protocol
   * answer starts with ParseComplete and BindComplete (a client that sent no Parse gets it from byte 5).
   */
  readonly response: Buffer;
  /** The template fingerprint, for per-template metrics on hits. */
  readonly fingerprint: string;
  /** 'never': not served inside a transaction block. */
  readonly transactionPolicy: 'never' | 'untilWrite';
  readonly storedEpoch: bigint;
  /** Where the answer carries the session's transaction status, for protocols that patch it on a
   * hit (MySQL: the status flags of its EOF/OK packets); empty for Postgres, whose hits end with
   * their own ReadyForQuery. */
  readonly statusOffsets: readonly number[];
  readonly expiresAt: number;
  readonly size: number;
  /** Set by a hit, cleared when eviction passes over the entry and gives it a second chance. */
  referenced: boolean;
}

// What Map slots, the entry object and the key string cost beyond their bytes; a rough figure that
// keeps a cache of tiny results from holding far more than its bound.
const ENTRY_OVERHEAD_BYTES = 160;

export interface NewEntry {
  key: string;
  epochs: CacheEpochs;
  tables: readonly string[];
  response: Buffer;
  fingerprint: string;
  transactionPolicy: 'never' | 'untilWrite';
  ttlMs: number;
  /** The epoch when the origin was asked (see `epoch`). */
  askedEpoch: bigint;
  statusOffsets?: readonly number[];
}

const NO_OFFSETS: readonly number[] = [];

type Waiter = { resolve: (entry: CacheEntry | null) => void };

export interface ResultCacheOptions {
  maxBytes: number;
  /** Largest single entry; bigger results are served but not stored. */
  maxEntryBytes?: number;
  /** Write epochs, shared with the edge's other threads; a private table by default. */
  epochs?: EpochTable;
  now?: () => number;
}

/** The largest result a store of `maxBytes` keeps, unless told otherwise: 1/16 of it. */
export function defaultMaxEntryBytes(maxBytes: number): number {
  return Math.max(1024, Math.floor(maxBytes / 16));
}

export class ResultCache {
  readonly #entries = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Waiter[]>();
  readonly #maxBytes: number;
  readonly maxEntryBytes: number;
  readonly #now: () => number;
  readonly #epochs: EpochTable;
  #bytes = 0;
  #hand: MapIterator<CacheEntry> | null = null;
  evictions = 0;

  constructor(options: ResultCacheOptions) {
    this.#maxBytes = options.maxBytes;
    this.maxEntryBytes = options.maxEntryBytes ?? defaultMaxEntryBytes(options.maxBytes);
    this.#now = options.now ?? Date.now;
    this.#epochs = options.epochs ?? new EpochTable();
  }

  /** The epochs of one cache id, on this store's table. */
  epochsFor(cacheId: string): CacheEpochs {
    return new CacheEpochs(this.#epochs, cacheId);
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The current epoch: a miss records it before asking the origin, and stores with it. */
  get epoch(): bigint {
    return this.#epochs.current;
  }

  /** A fresh entry for `key`, or undefined. Marks it most recently used. */
  get(key: string): CacheEntry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now() || isStale(entry, entry.storedEpoch)) {
      this.#delete(entry);
      return undefined;
    }
    entry.referenced = true;
    return entry;
  }

  /**
   * Stores a result that was asked for at `askedEpoch`, unless one of its tables was written since
   * (the result may predate that write) or it is too big. Returns the entry, or null.
   */
  set(input: NewEntry): CacheEntry | null {
    const { key, response, ttlMs, askedEpoch } = input;
    const size = response.length + key.length * 2 + ENTRY_OVERHEAD_BYTES;
    if (size > this.maxEntryBytes || ttlMs <= 0) return null;
    const { epochs } = input;
    const entry: CacheEntry = {
      key,
      epochs,
      slots: [
        epochs.table.globalSlot,
        epochs.allSlot,
        ...input.tables.map((table) => epochs.slot(table)),
      ],
      response,
      fingerprint: input.fingerprint,
      transactionPolicy: input.transactionPolicy,
      storedEpoch: askedEpoch,
      statusOffsets: input.statusOffsets ?? NO_OFFSETS,
      expiresAt: this.#now() + ttlMs,
      size,
      referenced: false,
    };
    if (isStale(entry, askedEpoch)) return null;
    const previous = this.#entries.get(key);
    if (previous !== undefined) this.#delete(previous);
    this.#entries.set(key, entry);
    this.#bytes += size;
    this.#evict();
    return entry;
  }

  /** Marks `tables` (bare names, or every table) of one cache id as written, in every thread. */
  invalidate(epochs: CacheEpochs, tables: readonly string[] | 'all'): void {
    epochs.table.stamp(
      tables === 'all' ? [epochs.allSlot] : tables.map((table) => epochs.slot(table)),
    );
  }

  /**
   * Coalescing: the first caller for a key gets null and must ask the origin, then call `settle`;
   * later callers get a promise of that result (null when it could not be stored: ask yourself).
   */
  join(key: string): Promise<CacheEntry | null> | null {
    const waiters = this.#inflight.get(key);
    if (waiters === undefined) {
      this.#inflight.set(key, []);
      return null;
    }
    return new Promise((resolve) => waiters.push({ resolve }));
  }

  settle(key: string, entry: CacheEntry | null): void {
    const waiters = this.#inflight.get(key);
    if (waiters === undefined) return;
    this.#inflight.delete(key);
    for (const waiter of waiters) waiter.resolve(entry);
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(entry: CacheEntry): void {
    if (this.#entries.get(entry.key) !== entry) return;
    this.#entries.delete(entry.key);
    this.#bytes -= entry.size;
  }

  // The clock hand walks the Map in insertion order and keeps its place between calls (Map
  // iterators survive inserts and deletes), so no call rescans the holes deletions leave at the
  // front. An entry hit since the hand last passed gets a second chance (moved to the young end);
  // the first one not hit goes.
  #evict(): void {
    while (this.#bytes > this.#maxBytes) {
      let step = this.#hand?.next();
      if (step === undefined || step.done === true) {
        this.#hand = this.#entries.values();
        step = this.#hand.next();
        if (step.done === true) return;
      }
      const entry = step.value;
      if (entry.referenced) {
        entry.referenced = false;
        this.#entries.delete(entry.key);
        this.#entries.set(entry.key, entry);
        continue;
      }
      this.#delete(entry);
      this.evictions += 1;
    }
  }
}

function isStale(entry: CacheEntry, epoch: bigint): boolean {
  const { table } = entry.epochs;
  for (const slot of entry.slots) {
    if (table.written(slot) > epoch) return true;
  }
  return false;
}
