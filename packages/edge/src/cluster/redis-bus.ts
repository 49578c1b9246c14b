// The invalidation bus of a cluster of edge nodes, over Redis (REDIS_URL: one Redis or Valkey,
// `rediss://` with TLS, or a Redis Cluster, found by asking the server). A committed write bumps
// its tables' versions in Redis and publishes them, in one script, before the writer's answer goes
// out; every node hears the message and stamps its own epochs. The versions are the truth, the
// messages only hurry it: a node that may have missed a message (connection lost, subscription
// gone, Redis not answering) stops serving from its cache at once and, when back, drops all it held
// before it serves again.
//
// Serving is a lease in the shared epoch table, renewed by a heartbeat that pings the subscription
// (so every message published before the ping has arrived) and every Redis holding versions: a node
// whose Redis stalls stops serving within `leaseMs` without any event, and a writer whose publish
// fails holds its answer until every other node's lease has run out.
import { randomUUID } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { CacheEpochs, monotonicNow, type EpochTable } from '../cache/epochs.ts';
import type { EdgeLogger } from '../runtime.ts';
import type { InvalidationBus } from './bus.ts';

/** The channel every node subscribes to. */
export const INVALIDATION_CHANNEL = 'eg:inval';
/** The field of a cache's version hash that a write of unknown tables bumps. */
export const ALL_TABLES_FIELD = '*';

/** A cache's table versions: one hash, its hash tag the cache id (one slot in a Redis Cluster). */
export function versionsKey(cacheId: string): string {
  return `eg:{${cacheId}}:v`;
}

/** What a node publishes for a committed write. */
export interface InvalidationMessage {
  /** The publishing node (a node skips its own: it stamped its epochs before publishing). */
  node: string;
  cache: string;
  /** Bare table names; `*` for every table. */
  tables: string[];
  /** The versions the write bumped them to, in the same order. */
  versions: number[];
}

// KEYS[1]: the versions hash; ARGV: node, cache id, fields. Bumps every field, publishes what it did
// and returns the new versions: one script, so no node can see the message without the versions.
const BUMP_SCRIPT = `
local versions = {}
local tables = {}
for i = 3, #ARGV do
  tables[#tables + 1] = ARGV[i]
  versions[#versions + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
end
redis.call('PUBLISH', '${INVALIDATION_CHANNEL}',
  cjson.encode({ node = ARGV[1], cache = ARGV[2], tables = tables, versions = versions }))
return versions
`;

export interface RedisBusOptions {
  url: string;
  /** The node's epochs, shared by its threads: stamped by messages, holding the serving lease. */
  epochs: EpochTable;
  logger: EdgeLogger;
  /** How often the heartbeat pings (default 100 ms). */
  heartbeatMs?: number;
  /** How long one answered ping lets the node serve (default 500 ms). */
  leaseMs?: number;
  /** A publish not acknowledged within this fails (default 1 s). */
  publishTimeoutMs?: number;
}

export const DEFAULT_HEARTBEAT_MS = 100;
export const DEFAULT_LEASE_MS = 500;
export const DEFAULT_PUBLISH_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 2000;
// Reconnects after 50 ms, 100 ms … at most this: a node relays to the origin meanwhile.
const MAX_RECONNECT_DELAY_MS = 500;
// Failed publishes kept for replay, per cache, before they become one "every table" bump.
const MAX_PENDING_TABLES = 256;

type Commands = Redis | Cluster;

/** Why a node does not serve from its cache, in a word. */
export type NotServingKind =
  'unreachable' | 'connection_lost' | 'no_answer' | 'publish_failed' | 'resynchronising';
type BumpCommand = (key: string, ...args: string[]) => Promise<number[]>;

export class RedisBus implements InvalidationBus {
  readonly epochs: EpochTable;
  /** This node, in its messages. */
  readonly nodeId = randomUUID();
  readonly url: string;
  readonly #logger: EdgeLogger;
  readonly #heartbeatMs: number;
  readonly #leaseMs: number;
  readonly #publishTimeoutMs: number;
  readonly #timer: NodeJS.Timeout;
  // Writes whose versions this node could not bump: bumped when Redis is back, before serving.
  readonly #pending = new Map<string, Set<string> | 'all'>();
  #commands: Commands | null = null;
  #subscriber: Redis | null = null;
  #cluster: boolean | null = null;
  #connecting = false;
  #resyncing = false;
  #synced = false;
  // Bumped at every loss: a resync or a ping begun before it must not make the node serve.
  #generation = 0;
  #reason: string | null = 'connecting to Redis';
  #reasonKind: NotServingKind = 'unreachable';
  // When the current outage began (the first loss since the node last served).
  #lostAt = monotonicNow();
  #pingSentAt: number | null = null;
  // Whether a heartbeat has let the node serve since it last resynchronised.
  #leasedSinceSync = false;
  #closed = false;
  readonly #onSynced = new Set<() => void>();

  constructor(options: RedisBusOptions) {
    this.epochs = options.epochs;
    this.url = options.url;
    this.#logger = options.logger;
    this.#heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#publishTimeoutMs = options.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS;
    this.epochs.serveUntil(0);
    this.#timer = setInterval(() => this.#tick(), this.#heartbeatMs);
    this.#timer.unref();
    this.#tick();
  }

  get serving(): boolean {
    return this.epochs.servingNow();
  }

  /** Why the node does not serve from its cache now; null while it does. */
  get reason(): string | null {
    if (this.#reason === null && !this.serving) {
      return this.#leasedSinceSync
        ? `Redis did not answer a heartbeat within ${this.#leaseMs} ms`
        : 'Redis has not answered a heartbeat yet';
    }
    return this.#reason;
  }

  /** `reason` in a word, for a metric's label; null while the node serves. */
  get reasonKind(): NotServingKind | null {
    if (this.#reason === null) {
      if (this.serving) return null;
      return this.#leasedSinceSync ? 'no_answer' : 'resynchronising';
    }
    return this.#reasonKind;
  }

  /** Whether REDIS_URL named a Redis Cluster (null until Redis first answered). */
  get cluster(): boolean | null {
    return this.#cluster;
  }

  /** The connection for commands (null until Redis first answered), e.g. for shared results. */
  get redis(): Commands | null {
    return this.#commands;
  }

  async publish(cacheId: string, tables: readonly string[] | 'all'): Promise<void> {
    const fields = tables === 'all' ? [ALL_TABLES_FIELD] : [...new Set(tables)];
    if (fields.length === 0) return;
    const commands = this.#commands;
    try {
      if (commands === null) throw new Error('Redis has not answered yet');
      await withTimeout(
        bump(commands)(versionsKey(cacheId), this.nodeId, cacheId, ...fields),
        this.#publishTimeoutMs,
        `Redis did not acknowledge a write within ${this.#publishTimeoutMs} ms`,
      );
    } catch (error) {
      this.#remember(cacheId, tables);
      this.#lose('publish_failed', `a write could not be published: ${(error as Error).message}`);
      // Every other node stops serving within a lease of the moment Redis failed them; the writer's
      // answer waits that long, so no read after it can be served stale by a node that has not
      // noticed yet (a node cut off from Redis alone is the exception: see docs/operations.md).
      const wait = this.#lostAt + this.#leaseMs - monotonicNow();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      throw error;
    }
  }

  /** Calls `listener` each time the node is back in touch (after a start or an outage). */
  onSynced(listener: () => void): void {
    this.#onSynced.add(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.epochs.serveUntil(0);
    this.#subscriber?.disconnect();
    this.#commands?.disconnect();
  }

  #tick(): void {
    if (this.#closed) return;
    if (this.#commands === null) {
      if (!this.#connecting) void this.#connect();
      return;
    }
    if (!this.#synced) {
      if (!this.#resyncing) void this.#resync();
      return;
    }
    this.#heartbeat();
  }

  // Finds out whether the URL names a Redis Cluster, then opens the command and subscriber
  // connections; retried by the next ticks while Redis does not answer.
  async #connect(): Promise<void> {
    this.#connecting = true;
    const probe = new Redis(this.url, {
      ...this.#redisOptions(),
      lazyConnect: true,
      retryStrategy: () => null,
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      const info = await probe.info('cluster');
      if (this.#closed) return;
      this.#cluster = /cluster_enabled:1/.test(info);
      this.#open();
    } catch (error) {
      this.#lose('unreachable', `Redis is unreachable: ${(error as Error).message}`);
    } finally {
      probe.disconnect();
      this.#connecting = false;
    }
  }

  #open(): void {
    const options = this.#redisOptions();
    const subscriber = new Redis(this.url, options);
    let commands: Commands;
    if (this.#cluster === true) {
      const url = new URL(this.url);
      commands = new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
        enableOfflineQueue: false,
        clusterRetryStrategy: (times) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
        redisOptions: {
          ...options,
          ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
          ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
          ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
        },
      });
    } else {
      commands = new Redis(this.url, options);
    }
    commands.defineCommand('edgegateBump', { numberOfKeys: 1, lua: BUMP_SCRIPT });
    subscriber.on('message', (channel: string, text: string) => this.#onMessage(channel, text));
    const watch = (name: string, client: NodeJS.EventEmitter): void => {
      client.on('error', (error: Error) =>
        this.#lose('connection_lost', `Redis ${name}: ${error.message}`),
      );
      client.on('close', () =>
        this.#lose('connection_lost', `the Redis ${name} connection closed`),
      );
      client.on('reconnecting', () =>
        this.#lose('connection_lost', `reconnecting to Redis (${name})`),
      );
    };
    watch('subscription', subscriber);
    watch('commands', commands);
    this.#subscriber = subscriber;
    this.#commands = commands;
  }

  #redisOptions(): RedisOptions {
    return {
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: this.#publishTimeoutMs,
      // A command while Redis is away fails at once: the node is not serving then anyway.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
    };
  }

  // Back (or first) in touch: listen, bump what could not be bumped, drop everything held (it may
  // predate a write this node did not hear of), then let the heartbeat make the node serve.
  async #resync(): Promise<void> {
    const subscriber = this.#subscriber;
    const commands = this.#commands;
    if (subscriber === null || commands === null) return;
    if (subscriber.status !== 'ready' || commands.status !== 'ready') return;
    this.#resyncing = true;
    const generation = this.#generation;
    try {
      await withTimeout(
        subscriber.subscribe(INVALIDATION_CHANNEL),
        this.#publishTimeoutMs,
        'Redis did not confirm the subscription',
      );
      for (const [cacheId, tables] of [...this.#pending]) {
        const fields = tables === 'all' ? [ALL_TABLES_FIELD] : [...tables];
        await withTimeout(
          bump(commands)(versionsKey(cacheId), this.nodeId, cacheId, ...fields),
          this.#publishTimeoutMs,
          'Redis did not acknowledge a replayed write',
        );
        if (this.#pending.get(cacheId) === tables) this.#pending.delete(cacheId);
      }
      if (generation !== this.#generation || this.#closed) return;
      this.epochs.stampAll();
      this.#leasedSinceSync = false;
      this.#synced = true;
      this.#reason = null;
      for (const listener of this.#onSynced) listener();
      this.#heartbeat();
    } catch (error) {
      this.#lose('no_answer', `resynchronising with Redis: ${(error as Error).message}`);
    } finally {
      this.#resyncing = false;
    }
  }

  #heartbeat(): void {
    const now = monotonicNow();
    if (this.#pingSentAt !== null) {
      if (now - this.#pingSentAt > this.#leaseMs) {
        this.#lose('no_answer', `Redis did not answer a heartbeat within ${this.#leaseMs} ms`);
      }
      return;
    }
    const subscriber = this.#subscriber as Redis;
    const commands = this.#commands as Commands;
    const generation = this.#generation;
    const sentAt = now;
    this.#pingSentAt = sentAt;
    // A Redis Cluster: every master may hold a cache's versions, so each must answer.
    const holders = commands instanceof Cluster ? commands.nodes('master') : [commands];
    Promise.all([subscriber.ping(), ...holders.map((node) => node.ping())])
      .then(() => {
        if (holders.length === 0) throw new Error('no Redis Cluster master is known');
        if (generation !== this.#generation || !this.#synced || this.#closed) return;
        const wasServing = this.serving;
        this.epochs.serveUntil(sentAt + this.#leaseMs);
        this.#leasedSinceSync = true;
        if (!wasServing && this.#reason === null)
          this.#logger.info(
            {},
            'serving from the cache: in touch with the other edge nodes through Redis',
          );
      })
      .catch((error: unknown) => {
        if (generation === this.#generation) {
          this.#lose('no_answer', `Redis heartbeat failed: ${(error as Error).message}`);
        }
      })
      .finally(() => {
        if (this.#pingSentAt === sentAt) this.#pingSentAt = null;
      });
  }

  #onMessage(channel: string, text: string): void {
    if (!applyInvalidation(this.epochs, this.nodeId, channel, text)) {
      this.#logger.warn({ channel }, 'an invalidation message that is not JSON was ignored');
    }
  }

  #remember(cacheId: string, tables: readonly string[] | 'all'): void {
    const known = this.#pending.get(cacheId);
    if (known === 'all') return;
    if (tables === 'all' || (known?.size ?? 0) + tables.length > MAX_PENDING_TABLES) {
      this.#pending.set(cacheId, 'all');
      return;
    }
    const next = new Set(known);
    for (const table of tables) next.add(table);
    this.#pending.set(cacheId, next);
  }

  // Stops serving at once, in every thread; the next ticks resynchronise.
  #lose(kind: NotServingKind, reason: string): void {
    this.epochs.serveUntil(0);
    if (this.#closed) return;
    this.#generation += 1;
    this.#pingSentAt = null;
    if (this.#synced || this.#reason === null) {
      this.#lostAt = monotonicNow();
      this.#logger.warn(
        { reason },
        'not serving from the cache (relaying to the origin) until Redis is back: another edge node may have written',
      );
    }
    this.#synced = false;
    this.#reason = reason;
    this.#reasonKind = kind;
  }
}

/**
 * Stamps the epochs of the tables another node's message names (not this node's own: it stamped
 * them when the write committed). False when the message is not one.
 */
export function applyInvalidation(
  table: EpochTable,
  nodeId: string,
  channel: string,
  text: string,
): boolean {
  if (channel !== INVALIDATION_CHANNEL) return true;
  let message: InvalidationMessage;
  try {
    message = JSON.parse(text) as InvalidationMessage;
  } catch {
    return false;
  }
  if (message.node === nodeId || typeof message.cache !== 'string') return true;
  const tables = Array.isArray(message.tables) ? message.tables : [ALL_TABLES_FIELD];
  const epochs = new CacheEpochs(table, message.cache);
  table.stamp(
    tables.map((name) => (name === ALL_TABLES_FIELD ? epochs.allSlot : epochs.slot(String(name)))),
  );
  return true;
}

/**
 * An edge thread's own subscription, beside the host thread's: only a shortcut. A thread that
 * serves a read wakes for it, and then handles the message that arrived before it first, so a
 * write's invalidation does not wait for the host thread to be scheduled. Whether the node may
 * serve stays the host's lease; this connection failing changes nothing but speed.
 */
export function subscribeInThread(options: { url: string; epochs: EpochTable; nodeId: string }): {
  close(): void;
} {
  const subscriber = new Redis(options.url, {
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
  });
  subscriber.on('error', () => {});
  subscriber.on('message', (channel: string, text: string) =>
    applyInvalidation(options.epochs, options.nodeId, channel, text),
  );
  subscriber.subscribe(INVALIDATION_CHANNEL).catch(() => undefined);
  return { close: () => subscriber.disconnect() };
}

function bump(commands: Commands): BumpCommand {
  return (commands as unknown as { edgegateBump: BumpCommand }).edgegateBump.bind(commands);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
