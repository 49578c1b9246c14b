// Counts the edge's client connections, in all and per client address, in shared memory, so that
// a cap holds for the whole process however many threads (EDGE_THREADS) accept connections.
//
// Each thread counts its own connections in its own slice of the buffer (the host clears the slice
// of a thread that died with its connections), and admits one by first adding it to its slice, then
// summing every slice: two threads admitting at once may both refuse, never both exceed a cap.
//
// Per address, the counts are a count-min sketch: each address adds to one counter in each of two
// rows, picked by two hashes of it, and its count is the smaller of the two. The sketch never
// under-counts, so the per-address cap always holds; it over-counts an address only when both of
// its counters are shared with other addresses that hold connections (then that address may be
// refused early). An exact table would have to allocate and free entries across threads.

export interface ConnectionCaps {
  /** Client connections of the whole edge. */
  maxConnections: number;
  /** Client connections from one address. */
  maxPerAddress: number;
}

/** Why a connection was refused, or null when it was admitted. */
export type Refusal = 'total' | 'address' | null;

const COUNTERS_PER_ROW = 16384;
// One slice: the thread's total, then two rows of per-address counters.
const SLICE_LENGTH = 1 + 2 * COUNTERS_PER_ROW;

export class ConnectionCounts {
  /** Shared memory for the counts of `threads` threads (128 KiB each). */
  static buffer(threads: number): SharedArrayBuffer {
    return new SharedArrayBuffer(threads * SLICE_LENGTH * Int32Array.BYTES_PER_ELEMENT);
  }

  /** Forgets what thread `slice` counted: it stopped, and its connections ended with it. */
  static clear(buffer: SharedArrayBuffer, slice: number): void {
    const counts = new Int32Array(buffer);
    for (let i = slice * SLICE_LENGTH; i < (slice + 1) * SLICE_LENGTH; i++) {
      Atomics.store(counts, i, 0);
    }
  }

  readonly #counts: Int32Array;
  readonly #slices: number;
  readonly #own: number;
  readonly caps: ConnectionCaps;

  constructor(buffer: SharedArrayBuffer, slice: number, caps: ConnectionCaps) {
    this.#counts = new Int32Array(buffer);
    this.#slices = this.#counts.length / SLICE_LENGTH;
    if (!Number.isInteger(this.#slices) || slice < 0 || slice >= this.#slices) {
      throw new RangeError(`no slice ${slice} in a buffer for ${this.#slices} threads`);
    }
    this.#own = slice * SLICE_LENGTH;
    this.caps = caps;
  }

  /** Counts a new connection from `address` if both caps allow it; `release` it when it ends. */
  admit(address: string): Refusal {
    const [first, second] = counterOffsets(address);
    this.#add(first, second, 1);
    let total = 0;
    let fromFirst = 0;
    let fromSecond = 0;
    for (let slice = 0; slice < this.#slices; slice++) {
      const base = slice * SLICE_LENGTH;
      total += Atomics.load(this.#counts, base);
      fromFirst += Atomics.load(this.#counts, base + first);
      fromSecond += Atomics.load(this.#counts, base + second);
    }
    const refusal: Refusal =
      total > this.caps.maxConnections
        ? 'total'
        : Math.min(fromFirst, fromSecond) > this.caps.maxPerAddress
          ? 'address'
          : null;
    if (refusal !== null) this.#add(first, second, -1);
    return refusal;
  }

  release(address: string): void {
    const [first, second] = counterOffsets(address);
    this.#add(first, second, -1);
  }

  /** Connections counted by every thread. */
  get total(): number {
    let total = 0;
    for (let slice = 0; slice < this.#slices; slice++) {
      total += Atomics.load(this.#counts, slice * SLICE_LENGTH);
    }
    return total;
  }

  #add(first: number, second: number, delta: number): void {
    Atomics.add(this.#counts, this.#own, delta);
    Atomics.add(this.#counts, this.#own + first, delta);
    Atomics.add(this.#counts, this.#own + second, delta);
  }
}

// Offsets (within a slice) of an address's counter in each row: FNV-1a from two starting points,
// each finished with MurmurHash3's mixer so the two rows pick independently.
function counterOffsets(address: string): [number, number] {
  let first = 0x811c9dc5;
  let second = 0x2f0f3a9d;
  for (let i = 0; i < address.length; i++) {
    const code = address.charCodeAt(i);
    first = Math.imul(first ^ code, 0x01000193);
    second = Math.imul(second ^ code, 0x01000193);
  }
  return [
    1 + (mix(first) % COUNTERS_PER_ROW),
    1 + COUNTERS_PER_ROW + (mix(second ^ 0x9e3779b9) % COUNTERS_PER_ROW),
  ];
}

function mix(hash: number): number {
  let h = hash ^ (hash >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
