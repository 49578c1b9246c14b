// The second level of the result cache, shared by every edge node through Redis (REDIS_URL): a
// result read from the origin by one node is stored with the per-table versions it was read under,
// and any node whose local store misses may serve it while those versions are still current.
//
// Keys (one cache's keys share one hash slot, so each script runs on one Redis Cluster node):
//   eg:{<cacheId>}:v            hash: table name → version (missing: 0), `*` for "every table";
//                               bumped (HINCRBY) by the invalidation bus on each committed write
//   eg:{<cacheId>}:r:<sha256>   hash: `v` = the versions it was read under, `d` = the entry
// The entry carries the full result key and the protocol, checked on read, so neither a hash
// collision nor another protocol's entry is ever served.
import { createHash, randomInt } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';

export type SharedProtocol = 'postgres' | 'mysql';

/** A result as a node's local store would keep it: the origin's bytes, and where MySQL patches
 * the session's status on a hit. */
export interface SharedEntry {
  response: Buffer;
  statusOffsets: readonly number[];
  /** How long it may still be served, in ms (the rule's TTL minus its age). */
  ttlMs: number;
}

export type SharedLookup =
  | { kind: 'hit'; entry: SharedEntry }
  /** Not there, or read under older versions: `versions` are the current ones, to store with. */
  | { kind: 'miss'; versions: string }
  /** Redis failed or was too slow, or is being left alone after doing so: ask the origin. */
  | { kind: 'unavailable' };

export interface SharedResultsCounts {
  hits: number;
  misses: number;
  /** Lookups and stores that failed or timed out (the origin answered instead). */
  errors: number;
  /** Lookups not sent: not connected, or just after a failure (the origin answered instead). */
  skipped: number;
  stored: number;
  /** Stores refused because a table was written after the versions were read. */
  raced: number;
  /** Results larger than the entry bound: not shared. */
  oversize: number;
}

export interface SharedResultsOptions {
  /** Largest entry shared, in bytes (default 1 MiB); larger results stay local. */
  maxEntryBytes?: number;
  /** How long a lookup may take before the miss goes to the origin (default 75 ms). */
  timeoutMs?: number;
  /** After a failure, how long lookups skip Redis (default 1 s; a quarter of it after a timeout,
   * which one busy moment of Redis or of this process can cause). */
  pauseMs?: number;
}

/** How an edge (each of its threads) connects to the second level; plain data, for workerData. */
export interface SharedResultsSettings extends SharedResultsOptions {
  redisUrl: string;
}

export function emptyCounts(): SharedResultsCounts {
  return { hits: 0, misses: 0, errors: 0, skipped: 0, stored: 0, raced: 0, oversize: 0 };
}

/** Adds `delta` to `totals`. */
export function addCounts(totals: SharedResultsCounts, delta: SharedResultsCounts): void {
  for (const name of Object.keys(totals) as (keyof SharedResultsCounts)[]) {
    totals[name] += delta[name];
  }
}

export const DEFAULT_SHARED_MAX_ENTRY_BYTES = 1024 * 1024;
export const DEFAULT_SHARED_TIMEOUT_MS = 75;
const DEFAULT_PAUSE_MS = 1_000;
// A read of more tables than this is not shared (the version list travels with every lookup).
const MAX_TABLES = 64;

// The current versions of the entry's tables, as one string: the hash's generation (`#`), `*`,
// then the tables in the order given (sorted by the caller). HMGET answers false for a missing
// field: version 0. The generation is a random number the first store sets in the hash: should the
// hash ever vanish (evicted, deleted) while entries remain, versions counted again from 0 could
// equal those an old entry was stored under; a new generation never does.
const CURRENT_VERSIONS = `
local fields = {'*'}
for i = FIRST, #ARGV do fields[#fields + 1] = ARGV[i] end
local values = redis.call('HMGET', KEYS[1], '#', unpack(fields))
local parts = {}
for i = 1, #fields do parts[i] = fields[i] .. '=' .. (values[i + 1] or '0') end
local rest = table.concat(parts, '\\0')
local current = '#=' .. (values[1] or '0') .. '\\0' .. rest
`;

// ARGV: tables. Answers {1, entry, pttl} when the entry was read under the current versions,
// else {0, current versions}.
const LOOKUP = `${CURRENT_VERSIONS.replace('FIRST', '1')}
local stored = redis.call('HMGET', KEYS[2], 'v', 'd')
if stored[1] == current and stored[2] then
  return {1, stored[2], redis.call('PTTL', KEYS[2])}
end
return {0, current}
`;

// ARGV: the versions the result was read under, expiry (ms), the entry, a generation for a hash
// that has none, then the tables. Stores only while those versions are still current: a write in
// between means the result may predate it. A hash without a generation gets this one; versions
// read before any generation was set (0) count as current if the tables' versions are unchanged.
const STORE = `redis.call('HSETNX', KEYS[1], '#', ARGV[4])
${CURRENT_VERSIONS.replace('FIRST', '5')}
if ARGV[1] ~= current and ARGV[1] ~= '#=0\\0' .. rest then return 0 end
redis.call('HSET', KEYS[2], 'v', current, 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`;

type RedisClient = Redis | Cluster;

class LookupTimeout extends Error {
  override name = 'LookupTimeout';
}

// A miss must not wait for reconnects: a command while Redis is away fails at once.
const CLIENT_OPTIONS = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 2_000,
  commandTimeout: 1_000,
} as const;
const DETECT_TIMEOUT_MS = 2_000;

// Whether the server behind `redis` is a Redis Cluster node (then keys live on several nodes).
async function isClusterNode(redis: Redis): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    if (redis.status !== 'ready') {
      // Ready, or the first connection error (refused: no wait), or the deadline.
      await new Promise((resolve, reject) => {
        redis.once('ready', resolve);
        redis.once('error', reject);
        timer = setTimeout(() => reject(new Error('not reachable')), DETECT_TIMEOUT_MS);
      });
    }
    return /cluster_enabled:1/.test(await redis.info('cluster'));
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
interface SharedCommands {
  egSharedLookupBuffer(
    ...args: (string | Buffer)[]
  ): Promise<[number, Buffer, number] | [number, Buffer]>;
  egSharedStore(...args: (string | Buffer)[]): Promise<number>;
}

// The entry's layout: format, protocol, the full key (u32 length + UTF-8), the status offsets
// (u16 count + u32 each), then the response bytes.
const FORMAT = 1;
const PROTOCOL_CODES: Record<SharedProtocol, number> = {
  postgres: 0x70 /* p */,
  mysql: 0x6d /* m */,
};

export function encodeSharedEntry(
  protocol: SharedProtocol,
  key: string,
  response: Buffer,
  statusOffsets: readonly number[],
): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const head = Buffer.alloc(2 + 4 + keyBytes.length + 2 + 4 * statusOffsets.length);
  let at = head.writeUInt8(FORMAT, 0);
  at = head.writeUInt8(PROTOCOL_CODES[protocol], at);
  at = head.writeUInt32BE(keyBytes.length, at);
  at += keyBytes.copy(head, at);
  at = head.writeUInt16BE(statusOffsets.length, at);
  for (const offset of statusOffsets) at = head.writeUInt32BE(offset, at);
  return Buffer.concat([head, response]);
}

/** The entry's response and offsets, or null unless it is of this format, protocol and key. */
export function decodeSharedEntry(
  data: Buffer,
  protocol: SharedProtocol,
  key: string,
): { response: Buffer; statusOffsets: number[] } | null {
  if (data.length < 8 || data[0] !== FORMAT || data[1] !== PROTOCOL_CODES[protocol]) return null;
  const keyLength = data.readUInt32BE(2);
  let at = 6 + keyLength;
  if (at + 2 > data.length || data.toString('utf8', 6, at) !== key) return null;
  const count = data.readUInt16BE(at);
  at += 2;
  if (at + 4 * count > data.length) return null;
  const statusOffsets: number[] = [];
  for (let i = 0; i < count; i++, at += 4) statusOffsets.push(data.readUInt32BE(at));
  return { response: data.subarray(at), statusOffsets };
}

export function versionsKey(cacheId: string): string {
  return `eg:{${cacheId}}:v`;
}

export function entryKey(cacheId: string, key: string): string {
  return `eg:{${cacheId}}:r:${createHash('sha256').update(key, 'utf8').digest('base64url')}`;
}

// Field names as the bus writes them; sorted so every node lists one key's tables alike.
function tableFields(tables: readonly string[]): string[] | null {
  const fields = [...new Set(tables)]
    .filter((t) => t !== '*' && t !== '#' && !t.includes('\0'))
    .sort();
  return fields.length === tables.length && fields.length <= MAX_TABLES ? fields : null;
}

export class SharedResults {
  readonly maxEntryBytes: number;
  readonly counts: SharedResultsCounts = emptyCounts();
  readonly #redis: RedisClient & SharedCommands;
  readonly #timeoutMs: number;
  readonly #pauseMs: number;
  #pausedUntil = 0;
  #drained: SharedResultsCounts = emptyCounts();

  constructor(redis: RedisClient, options: SharedResultsOptions = {}) {
    this.maxEntryBytes = options.maxEntryBytes ?? DEFAULT_SHARED_MAX_ENTRY_BYTES;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_SHARED_TIMEOUT_MS;
    this.#pauseMs = options.pauseMs ?? DEFAULT_PAUSE_MS;
    redis.defineCommand('egSharedLookup', { numberOfKeys: 2, lua: LOOKUP });
    redis.defineCommand('egSharedStore', { numberOfKeys: 2, lua: STORE });
    this.#redis = redis as RedisClient & SharedCommands;
  }

  /** The second level these settings describe, on a client of its own; null without settings. */
  static async open(settings: SharedResultsSettings | null): Promise<SharedResults | null> {
    if (settings === null) return null;
    const { redisUrl, ...options } = settings;
    return SharedResults.connect(redisUrl, options);
  }

  /**
   * A client for `url` (redis:// or rediss://, a single Redis or a seed node of a Redis Cluster,
   * told apart by `INFO cluster` at start) that fails commands at once while disconnected. A Redis
   * that cannot be reached at start is taken for a single one.
   */
  static async connect(url: string, options: SharedResultsOptions = {}): Promise<SharedResults> {
    const single = new Redis(url, CLIENT_OPTIONS);
    // Errors are counted where commands fail; the connection retries by itself.
    single.on('error', () => undefined);
    if (!(await isClusterNode(single))) return new SharedResults(single, options);
    single.disconnect();
    const parsed = new URL(url);
    const cluster = new Cluster(
      [{ host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 6379) }],
      {
        enableOfflineQueue: false,
        redisOptions: {
          ...CLIENT_OPTIONS,
          ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
          ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
          ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
        },
      },
    );
    cluster.on('error', () => undefined);
    return new SharedResults(cluster, options);
  }

  /**
   * One round trip: the result stored for `key` if every table it read (and `*`) still has the
   * version it was read under; otherwise the current versions, to store with after the origin read.
   */
  async lookup(
    cacheId: string,
    protocol: SharedProtocol,
    key: string,
    tables: readonly string[],
  ): Promise<SharedLookup> {
    const fields = tableFields(tables);
    if (fields === null) return { kind: 'unavailable' };
    // Not connected yet (or reconnecting), or recovering from a failure: straight to the origin.
    if (this.#redis.status !== 'ready' || Date.now() < this.#pausedUntil) {
      this.counts.skipped += 1;
      return { kind: 'unavailable' };
    }
    let answer: [number, Buffer, number] | [number, Buffer];
    try {
      answer = await this.#bounded(
        this.#redis.egSharedLookupBuffer(versionsKey(cacheId), entryKey(cacheId, key), ...fields),
      );
    } catch (error) {
      this.#failed(error);
      return { kind: 'unavailable' };
    }
    if (answer[0] === 1) {
      const decoded = decodeSharedEntry(answer[1], protocol, key);
      const ttlMs = Number(answer[2]);
      if (decoded !== null && ttlMs > 0) {
        this.counts.hits += 1;
        return { kind: 'hit', entry: { ...decoded, ttlMs } };
      }
      // Another key with the same hash, or another protocol's: never served; a store may replace it.
      this.counts.misses += 1;
      return { kind: 'unavailable' };
    }
    this.counts.misses += 1;
    return { kind: 'miss', versions: answer[1].toString('utf8') };
  }

  /**
   * Stores a result read from the origin after `lookup` gave `versions`, unless one of its tables
   * was written since. Never throws; resolves whether it was stored.
   */
  async store(
    cacheId: string,
    protocol: SharedProtocol,
    key: string,
    tables: readonly string[],
    versions: string,
    entry: SharedEntry,
  ): Promise<boolean> {
    const fields = tableFields(tables);
    if (fields === null) return false;
    const data = encodeSharedEntry(protocol, key, entry.response, entry.statusOffsets);
    if (data.length > this.maxEntryBytes) {
      this.counts.oversize += 1;
      return false;
    }
    const ttlMs = Math.floor(entry.ttlMs);
    if (ttlMs <= 0) return false;
    try {
      const stored = await this.#redis.egSharedStore(
        versionsKey(cacheId),
        entryKey(cacheId, key),
        versions,
        String(ttlMs),
        data,
        String(randomInt(1, 2 ** 48)),
        ...fields,
      );
      if (stored === 1) this.counts.stored += 1;
      else this.counts.raced += 1;
      return stored === 1;
    } catch (error) {
      this.#failed(error);
      return false;
    }
  }

  /** Resolves once the client is connected (lookups before that go to the origin). */
  async ready(): Promise<void> {
    if (this.#redis.status === 'ready') return;
    await new Promise((resolve) => this.#redis.once('ready', resolve));
  }

  /** What was counted since the previous drain (a thread reports these to the host). */
  drainCounts(): SharedResultsCounts {
    const delta = { ...this.counts };
    for (const name of Object.keys(this.#drained) as (keyof SharedResultsCounts)[]) {
      delta[name] -= this.#drained[name];
    }
    this.#drained = { ...this.counts };
    return delta;
  }

  close(): void {
    this.#redis.disconnect();
  }

  #failed(error: unknown): void {
    this.counts.errors += 1;
    const pause = error instanceof LookupTimeout ? this.#pauseMs / 4 : this.#pauseMs;
    this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + pause);
  }

  #bounded<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new LookupTimeout('shared results: Redis timed out')),
        this.#timeoutMs,
      );
    });
    // The late answer (or failure) of a lookup that timed out is dropped.
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }
}
