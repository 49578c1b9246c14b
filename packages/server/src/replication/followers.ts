// Runs one change-stream follower per cache in replication mode, in the process that runs the
// edge: started, restarted and stopped as the store's cache config changes (the same notifications
// the edge reloads on), dropping a cache's slot when it is deleted or set back to `edge`. Their
// state is written to the store, where the API reads it, whichever process serves the API. With
// several edge nodes on one store, one follows each cache (a lease in the store) and the others
// stand by, ready to take over.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { EdgeLogger } from '@edgegate/edge';
import type { Keyring } from '../connect/keyring.ts';
import { findCacheById, listReplicationCacheIds } from '../db/queries/caches.ts';
import {
  acquireReplicationLease,
  findReplicationOwner,
  recordRetainedBytes,
  releaseReplicationLease,
  upsertReplicationStatus,
} from '../db/queries/replication-status.ts';
import type { CacheRow } from '../db/schema.ts';
import type { Store } from '../db/store.ts';
import {
  DEFAULT_MAX_LAG_SECONDS,
  openReplicationCredential,
} from '../services/cache-invalidation.ts';
import type { Follower, FollowerOptions, FollowerState } from './follower.ts';
import { PostgresFollower } from './postgres-follower.ts';
import { BinlogFollower } from './binlog-follower.ts';
import { connectMysql, connectPostgres, slotNameOf } from './origin-link.ts';
import { readMysqlViewTables, readPostgresViewTables, type ViewTables } from './view-tables.ts';

export interface FollowersOptions {
  store: Store;
  keyring: Keyring;
  /** Cache config changes: a cache id, or null for "anything may have changed". */
  subscribe(listener: (cacheId: string | null) => void): () => void;
  invalidate(cacheId: string, tables: readonly string[] | 'all'): void | Promise<void>;
  /** Stops (1) or lets again (-1) the edge serve a cache's results: see `PgEdge.hold`. */
  hold(cacheId: string, delta: 1 | -1): void;
  /** The tables under each view of a cache's origin (null: forget them): see `view-tables.ts`. */
  setViewTables(cacheId: string, viewTables: ViewTables | null): void;
  privateRanges: 'allow' | 'deny';
  logger: EdgeLogger;
  /**
   * Whether the invalidations of a follower on another node reach this node's edge (the cluster's
   * Redis bus). Without it, a node that does not hold a cache's lease serves that cache from the
   * origin only.
   */
  clustered?: () => boolean;
  /** This node's name in the store's leases (default: host, process id and a random part). */
  node?: string;
  /** How often the owner of a Postgres cache measures the WAL its slot keeps (default 30 s). */
  slotCheckMs?: number;
  /** How often the origin's views are read again without a DDL to prompt it (default 60 s). */
  viewsEveryMs?: number;
}

export interface Followers {
  /** The state each running follower last reported, by cache id. */
  states(): Map<string, FollowerState>;
  /** The caches whose lease this node holds (it follows them; the others stand by). */
  owned(): string[];
  readonly node: string;
  stop(): Promise<void>;
}

const RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
/** A follower's state is written at least this often while it runs (the API's freshness test). */
const REPORT_EVERY_MS = 2000;
/**
 * One follower per cache across the nodes: its lease lasts LEASE_SECONDS (store clock) and is
 * renewed every LEASE_RENEW_MS; a node standing by tries to take it every LEASE_POLL_MS, so a
 * dead owner is replaced within LEASE_SECONDS + LEASE_POLL_MS.
 */
const LEASE_SECONDS = 8;
const LEASE_RENEW_MS = 2000;
const LEASE_POLL_MS = 1000;
/** A standing-by node serves the cache (clustered) only while its owner reported this recently. */
const OWNER_FRESH_SECONDS = 5;
/** The origin's views are read again this often (and after every DDL the stream shows). */
const VIEWS_EVERY_MS = 60_000;

interface Running {
  /** What the follower was made from: a change to it restarts the follower. */
  identity: string;
  /** The origin and database: a change to it drops the old slot. */
  origin: string;
  follower: Follower;
  state: FollowerState;
  /** Whether this follower holds its cache (it is not following): no result is served. */
  holding: boolean;
  /** Stopped: it holds the cache no more, whatever its state. */
  released: boolean;
  written: number;
  /** This node holds the cache's lease: it follows, reports and may drop the slot. */
  owner: boolean;
  stopped: boolean;
  done: Promise<void>;
  views: { refresh(): void; stop(): void };
}

const originOf = (row: CacheRow) =>
  JSON.stringify([row.type, row.hostname, row.port, row.replication_database]);

const identityOf = (row: CacheRow) =>
  JSON.stringify([
    originOf(row),
    row.origin_tls,
    row.replication_connection_id,
    row.replication_username,
    row.replication_secret,
    row.replication_publication,
    row.replication_max_lag_seconds,
  ]);

export async function startReplicationFollowers(options: FollowersOptions): Promise<Followers> {
  const { store, logger } = options;
  const node = options.node ?? `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  const running = new Map<string, Running>();
  const queues = new Map<string, Promise<void>>();
  let closing = false;

  const write = (cacheId: string, entry: Running): Promise<void> => {
    entry.written = Date.now();
    return upsertReplicationStatus(store.db, {
      cacheId,
      owner: node,
      ...entry.state,
      ...(entry.follower.position !== null ? { position: entry.follower.position } : {}),
    }).catch((error: unknown) =>
      logger.warn({ err: error, cacheId }, 'could not write a replication status to the store'),
    );
  };

  /**
   * Fail safe: a cache whose follower is not `following` (starting, down, or more than
   * maxLagSeconds behind) may have missed writes, so the edge neither serves nor stores its
   * results until the follower has caught up.
   */
  const setState = (cacheId: string, entry: Running, state: FollowerState) => {
    entry.state = state;
    const holding = state.status !== 'following' && !entry.released;
    if (holding !== entry.holding) {
      entry.holding = holding;
      options.hold(cacheId, holding ? 1 : -1);
    }
  };

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

  /**
   * Not this node's to follow: another holds the lease. Clustered, the owner's invalidations reach
   * this node's edge, so it serves the cache while the owner reports `following`; else it holds it.
   */
  const standBy = async (cacheId: string, entry: Running) => {
    let found: Awaited<ReturnType<typeof findReplicationOwner>>;
    try {
      found = await findReplicationOwner(store.db, cacheId, OWNER_FRESH_SECONDS);
    } catch {
      found = undefined;
    }
    const clustered = options.clustered?.() === true;
    setState(
      cacheId,
      entry,
      clustered && found?.following === true
        ? { status: 'following', reason: null, lagSeconds: null }
        : {
            status: 'catching_up',
            reason: clustered
              ? 'another edge node follows it and has not reported following lately'
              : 'another edge node follows it; without REDIS_URL its invalidations do not reach this node',
            lagSeconds: null,
          },
    );
  };

  const loop = async (
    cacheId: string,
    entry: Running,
    make: (position: string | null) => Follower,
    measureSlot: (() => Promise<number | null>) | null,
  ) => {
    let delay = RETRY_MS;
    while (!entry.stopped) {
      let owned = false;
      // A monotonic clock: a wall clock stepped back would stretch the lease past the store's.
      const asked = performance.now();
      try {
        owned = await acquireReplicationLease(store.db, cacheId, node, LEASE_SECONDS);
      } catch (error) {
        logger.warn({ cacheId, err: error }, 'could not take or renew a replication lease');
      }
      if (entry.stopped) break;
      if (!owned) {
        if (entry.owner) logger.info({ cacheId }, 'another edge node follows this cache now');
        entry.owner = false;
        await standBy(cacheId, entry);
        await sleep(LEASE_POLL_MS);
        continue;
      }
      if (!entry.owner) {
        entry.owner = true;
        setState(cacheId, entry, { status: 'catching_up', reason: 'starting', lagSeconds: null });
      }
      // Where the last owner (this node or another) stopped: a binary-log position.
      const saved = await store.db
        .selectFrom('cache_replication_status')
        .select('position')
        .where('cache_id', '=', cacheId)
        .executeTakeFirst()
        .catch(() => undefined);
      const follower = make(saved?.position ?? null);
      entry.follower = follower;
      // Unsure it still holds the lease: it stops before another node may start. A renewal refused
      // or failed says so at once; one the store never answers (unreachable, not refusing) says
      // nothing, so the lease is taken to end LEASE_SECONDS after the last renewal granted was
      // asked for, and the follower stops LEASE_RENEW_MS before that.
      let lost = false;
      // Set once the run is over: a renewal answered after it arms nothing.
      let done = false;
      const lose = () => {
        if (lost) return;
        lost = true;
        void follower.stop();
      };
      let granted = asked;
      let expiry: NodeJS.Timeout | undefined;
      const expireFrom = (askedAt: number) => {
        if (lost || done || askedAt < granted) return;
        granted = askedAt;
        clearTimeout(expiry);
        const left = askedAt + LEASE_SECONDS * 1000 - LEASE_RENEW_MS - performance.now();
        expiry = setTimeout(lose, Math.max(0, left));
        expiry.unref();
      };
      expireFrom(asked);
      const renew = setInterval(() => {
        const askedAt = performance.now();
        acquireReplicationLease(store.db, cacheId, node, LEASE_SECONDS)
          .catch(() => false)
          .then(
            (kept) => {
              if (kept) expireFrom(askedAt);
              else if (!done) lose();
            },
            () => undefined,
          );
      }, LEASE_RENEW_MS);
      renew.unref();
      // The WAL the slot keeps, for the API and the control plane's warning.
      const measure = () =>
        measureSlot?.()
          .then((bytes) => recordRetainedBytes(store.db, cacheId, node, bytes))
          .catch((error: unknown) =>
            logger.debug({ cacheId, err: error }, 'could not measure a replication slot'),
          );
      const slotTimer =
        measureSlot === null ? null : setInterval(measure, options.slotCheckMs ?? 30_000);
      slotTimer?.unref();
      // A first measure once the run has made or opened the slot.
      const firstMeasure = measureSlot === null ? null : setTimeout(measure, 2000);
      firstMeasure?.unref();
      try {
        await follower.run();
      } catch (error) {
        if (!entry.stopped && !lost) {
          const reason = (error as Error).message;
          logger.warn({ cacheId, err: error }, 'a replication follower stopped; retrying');
          if (entry.state.status === 'following') delay = RETRY_MS;
          setState(cacheId, entry, { status: 'down', reason, lagSeconds: entry.state.lagSeconds });
          void write(cacheId, entry);
        }
      } finally {
        done = true;
        clearInterval(renew);
        clearTimeout(expiry);
        if (slotTimer !== null) clearInterval(slotTimer);
        if (firstMeasure !== null) clearTimeout(firstMeasure);
      }
      if (entry.stopped) break;
      if (lost) {
        setState(cacheId, entry, {
          status: 'catching_up',
          reason: 'its replication lease could not be renewed',
          lagSeconds: null,
        });
        delay = RETRY_MS;
        continue;
      }
      await sleep(delay);
      delay = Math.min(MAX_RETRY_MS, delay * 2);
    }
  };

  const start = async (row: CacheRow): Promise<Running | null> => {
    const credential = await openReplicationCredential(store.db, options.keyring, row);
    const entry = {
      identity: identityOf(row),
      origin: originOf(row),
      state: { status: 'catching_up', reason: 'starting', lagSeconds: null },
      holding: false,
      released: false,
      written: 0,
      owner: false,
      stopped: false,
    } as Running;
    setState(row.id, entry, entry.state);
    if (credential === null) {
      setState(row.id, entry, {
        status: 'down',
        reason: 'the replication credential is gone (its connection was deleted): set it again',
        lagSeconds: null,
      });
      entry.follower = idleFollower;
      entry.views = idleViews;
      entry.done = Promise.resolve();
      void write(row.id, entry);
      return entry;
    }
    const followerOptions: FollowerOptions = {
      origin: {
        cacheId: row.id,
        type: row.type,
        hostname: row.hostname,
        port: row.port,
        originTls: row.origin_tls,
        privateRanges: options.privateRanges,
      },
      credential,
      publication: row.replication_publication,
      position: null,
      maxLagSeconds: row.replication_max_lag_seconds ?? DEFAULT_MAX_LAG_SECONDS,
      invalidate: (tables) => options.invalidate(row.id, tables),
      report: (state) => {
        const changed = state.status !== entry.state.status || state.reason !== entry.state.reason;
        setState(row.id, entry, state);
        if (changed || Date.now() - entry.written >= REPORT_EVERY_MS) void write(row.id, entry);
      },
      logger,
    };
    entry.views = new ViewReader(row.id, followerOptions, options);
    // DDL (the whole cache invalidated) may have made or changed a view: read them again.
    followerOptions.invalidate = (tables) => {
      const told = options.invalidate(row.id, tables);
      if (tables === 'all') entry.views.refresh();
      return told;
    };
    // A new follower for each term of the lease, resuming where the last owner stopped.
    const make = (position: string | null): Follower =>
      row.type === 'postgres'
        ? new PostgresFollower({ ...followerOptions, position })
        : new BinlogFollower({ ...followerOptions, position });
    entry.follower = make(null);
    const measureSlot =
      row.type === 'postgres'
        ? async (): Promise<number | null> => {
            const client = await connectPostgres(followerOptions.origin, credential, {
              replication: false,
            });
            try {
              const { rows } = await client.query<{ bytes: string | null }>(
                `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS bytes
                   FROM pg_replication_slots WHERE slot_name = $1`,
                [slotNameOf(row.id)],
              );
              const bytes = rows[0]?.bytes;
              return bytes === undefined || bytes === null ? null : Number(bytes);
            } finally {
              await client.end().catch(() => undefined);
            }
          }
        : null;
    entry.done = loop(row.id, entry, make, measureSlot);
    return entry;
  };

  const stopEntry = async (cacheId: string, entry: Running) => {
    entry.stopped = true;
    entry.views.stop();
    await entry.follower.stop();
    await entry.done;
    // No longer this follower's to hold: the cache is gone, back to `edge`, or followed anew.
    entry.released = true;
    setState(cacheId, entry, {
      status: 'down',
      reason: 'the edge following it stopped',
      lagSeconds: null,
    });
    if (!entry.owner) return;
    // Where it stopped, so the next owner resumes there (a binary-log position); then the lease
    // goes at once, so a node standing by takes over without waiting for it to run out.
    await write(cacheId, entry);
    await releaseReplicationLease(store.db, cacheId, node).catch((error: unknown) =>
      logger.warn({ err: error, cacheId }, 'could not release a replication lease'),
    );
  };

  const sync = async (cacheId: string): Promise<void> => {
    const row = closing ? undefined : await findCacheById(store.db, cacheId);
    const wanted = row !== undefined && row.invalidation_mode === 'replication' ? row : null;
    const current = running.get(cacheId);
    if (current !== undefined && wanted !== null && current.identity === identityOf(wanted)) return;
    if (current !== undefined) {
      running.delete(cacheId);
      await stopEntry(cacheId, current);
      // Deleted, back to `edge`, or another origin: the origin must not keep WAL for nothing (the
      // slot is the owner's to drop: another node's follower may still be reading it).
      if (current.owner && !closing && (wanted === null || current.origin !== originOf(wanted))) {
        await current.follower
          .drop()
          .catch((error: unknown) =>
            logger.warn({ err: error, cacheId }, 'could not drop a replication slot'),
          );
      }
    }
    if (wanted !== null && !closing) {
      const entry = await start(wanted);
      if (entry !== null) running.set(cacheId, entry);
    }
  };

  // One change at a time per cache, in the order they were announced.
  const enqueue = (cacheId: string) => {
    const next = (queues.get(cacheId) ?? Promise.resolve())
      .then(() => sync(cacheId))
      .catch((error: unknown) =>
        logger.error({ err: error, cacheId }, 'could not start or stop a replication follower'),
      );
    queues.set(cacheId, next);
    return next;
  };

  const syncAll = async () => {
    const ids = new Set([...(await listReplicationCacheIds(store.db)), ...running.keys()]);
    await Promise.all([...ids].map(enqueue));
  };

  const unsubscribe = options.subscribe((cacheId) => {
    if (cacheId === null) {
      syncAll().catch((error: unknown) =>
        logger.error({ err: error }, 'could not list the caches that follow replication'),
      );
    } else {
      void enqueue(cacheId);
    }
  });
  // Reports keep flowing while nothing changes, so the API can tell a live follower from a dead one.
  const ticker = setInterval(() => {
    for (const [cacheId, entry] of running) {
      if (entry.owner && Date.now() - entry.written >= REPORT_EVERY_MS) void write(cacheId, entry);
    }
  }, REPORT_EVERY_MS);
  ticker.unref();
  await syncAll();

  return {
    states: () => new Map([...running].map(([id, entry]) => [id, entry.state])),
    owned: () => [...running].filter(([, entry]) => entry.owner).map(([id]) => id),
    node,
    async stop() {
      closing = true;
      unsubscribe();
      clearInterval(ticker);
      await Promise.all(queues.values());
      await Promise.all([...running].map(([cacheId, entry]) => stopEntry(cacheId, entry)));
      running.clear();
    },
  };
}

/** Stands in for a follower that cannot run (no credential) until the cache changes. */
const idleFollower: Follower = {
  run: () => Promise.resolve(),
  stop: () => Promise.resolve(),
  drop: () => Promise.resolve(),
  position: null,
};

/**
 * Reads the origin's views at start, after each DDL and every minute, and hands the edge the
 * tables under each. Until the first read succeeds the cache is held (a read through a view could
 * otherwise be stored tagged with the view's name alone); a failed read later keeps the last map.
 */
class ViewReader {
  readonly #cacheId: string;
  readonly #follower: FollowerOptions;
  readonly #options: FollowersOptions;
  #holding = true;
  #running = false;
  #again = false;
  #stopped = false;
  #failures = 0;
  #lastWarning = '';
  readonly #timer: NodeJS.Timeout;

  constructor(cacheId: string, follower: FollowerOptions, options: FollowersOptions) {
    this.#cacheId = cacheId;
    this.#follower = follower;
    this.#options = options;
    options.hold(cacheId, 1);
    this.#timer = setInterval(() => this.refresh(), options.viewsEveryMs ?? VIEWS_EVERY_MS);
    this.#timer.unref();
    this.refresh();
  }

  refresh(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void this.#read().finally(() => {
      this.#running = false;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.refresh();
      }
    });
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#release();
    this.#options.setViewTables(this.#cacheId, null);
  }

  #release(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.#options.hold(this.#cacheId, -1);
  }

  async #read(): Promise<void> {
    const { origin, credential, logger } = this.#follower;
    try {
      let viewTables: ViewTables;
      if (origin.type === 'postgres') {
        const client = await connectPostgres(origin, credential, { replication: false });
        try {
          viewTables = await readPostgresViewTables(client);
        } finally {
          await client.end().catch(() => undefined);
        }
      } else {
        const connection = await connectMysql(origin, credential);
        try {
          const read = await readMysqlViewTables(connection);
          viewTables = read.viewTables;
          const warning = read.unreadable.join(', ');
          if (warning !== '' && warning !== this.#lastWarning) {
            logger.warn(
              { cacheId: this.#cacheId, views: read.unreadable },
              "the replication user cannot read these views' definitions (it needs SHOW VIEW): writes under them reach their cached reads only through the TTL",
            );
          }
          this.#lastWarning = warning;
        } finally {
          await connection.end().catch(() => undefined);
        }
      }
      if (this.#stopped) return;
      this.#failures = 0;
      this.#options.setViewTables(this.#cacheId, viewTables);
      this.#release();
    } catch (error) {
      if (this.#stopped) return;
      this.#failures += 1;
      logger.warn(
        { cacheId: this.#cacheId, err: error },
        this.#holding
          ? "could not read the origin's views; the cache serves nothing from memory until they are read"
          : "could not read the origin's views again; the last ones read stay in use",
      );
      // Retried sooner than the minute while the cache is held for want of them.
      if (this.#holding) {
        const delay = Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** Math.min(this.#failures, 5));
        setTimeout(() => this.refresh(), delay).unref();
      }
    }
  }
}

const idleViews = { refresh: () => undefined, stop: () => undefined };
