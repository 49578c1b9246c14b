// Runs the Postgres edge on several threads sharing one port, so that one core is not the limit.
// The host thread keeps what must be one for all of them: the config source (each change notice is
// passed to every thread), the cancel-key directory, the logger, and the totals of their stats.
// A thread that dies is replaced; its sessions end with it, the others go on.
import {
  addCounts,
  emptyCounts,
  type SharedResultsCounts,
  type SharedResultsSettings,
} from '../cluster/shared-results.ts';
import net from 'node:net';
import tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import { CacheEpochs, EpochTable } from '../cache/epochs.ts';
import { defaultMaxEntryBytes } from '../cache/result-cache.ts';
import { ConnectionCounts, type ConnectionCaps } from '../limits/connection-counts.ts';
import { defaultConnectionCaps, readFileLimit } from '../limits/file-limit.ts';
import { DEFAULT_LOGIN_TIMEOUT_MS, type RefusalCounts } from '../pg/server.ts';
import type { EdgeConfigSource } from '../control/config.ts';
import { StatsByCache, type CacheStats, type StatsDelta } from '../metrics/cache-stats.ts';
import { LocalCancelDirectory, type CancelDirectory, type EdgeLogger } from '../runtime.ts';
import type { NodeBus } from '../cluster/bus.ts';
import type { OriginTarget } from '../upstream/origin.ts';
import type { SessionInfo } from '../core/session-control.ts';
import { Channel } from './channel.ts';
import type { GuardSpec } from './guard.ts';

export interface EdgeThreadsOptions {
  threads: number;
  host: string;
  /** 0 picks a free port (the first thread's), which the others then share. */
  port: number;
  /** The MySQL/MariaDB listener's port, likewise; null or absent: none. */
  mysqlPort?: number | null;
  /** PEM text (it crosses to the threads as a string). */
  tls: { cert: string; key: string } | null;
  /** The whole budget, split evenly between the threads. */
  cacheMaxBytes: number;
  /** Caps on client connections, for all the threads together (default: from the file limit). */
  connectionCaps?: ConnectionCaps;
  /** Startup and authentication must be over within this (default 15 s). */
  loginTimeoutMs?: number;
  guard: GuardSpec | null;
  /** The shared second level (REDIS_URL): each thread opens its own client. */
  sharedResults?: SharedResultsSettings | null;
  source: EdgeConfigSource;
  logger: EdgeLogger;
  /**
   * Other edge nodes (REDIS_URL): the host thread owns the bus; the threads share its epoch table
   * and lease, and send it their publishes. None: this node alone.
   */
  bus?: NodeBus | null;
  /** Where cancel keys are kept (default: in memory, for this node's threads). */
  cancelKeys?: CancelDirectory;
}

export interface EdgeWorkerData {
  index: number;
  host: string;
  port: number;
  mysqlPort: number | null;
  tls: EdgeThreadsOptions['tls'];
  cacheMaxBytes: number;
  cacheMaxEntryBytes: number;
  epochs: SharedArrayBuffer;
  /** With a cluster bus (which leases serving through `epochs` and takes publishes): its Redis. */
  cluster: { url: string; nodeId: string } | null;
  /** Connection counts of every thread; this one counts in its slice `index`. */
  connections: SharedArrayBuffer;
  connectionCaps: ConnectionCaps;
  loginTimeoutMs: number;
  guard: GuardSpec | null;
  sharedResults: SharedResultsSettings | null;
}

/** What one thread holds. */
export interface ThreadReport {
  cacheBytes: number;
  entries: number;
  sessions: number;
}

/** Events an edge counts for Prometheus besides its per-cache stats. */
export interface EdgeEventCounts {
  /** Results dropped to make room (EDGE_CACHE_MAX_MB). */
  evictions: number;
  /** Logins the origin refused, by protocol. */
  authFailures: { postgres: number; mysql: number };
}

/** What a thread sends the host: what it holds, and what it counted since its last report. */
export interface WorkerReport extends ThreadReport {
  deltas: StatsDelta[];
  /** Connections refused since its last report. */
  refused: RefusalCounts;
  /** The second level's counts since its last report. */
  shared: SharedResultsCounts;
  /** Evictions and failed logins since its last report. */
  events: EdgeEventCounts;
}

interface Thread {
  index: number;
  worker: Worker;
  channel: Channel;
  report: ThreadReport;
  /** The cancel keys of this thread's sessions, forgotten with the thread if it dies. */
  cancelKeys: Set<string>;
  listeningSince: number;
}

const WORKER_URL = new URL('./worker.ts', import.meta.url);
// A thread that keeps dying is restarted after 1 s, 2 s, 4 s … up to 30 s.
const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;
// A thread that does not answer within this is left out of a report, or terminated on close.
const ANSWER_TIMEOUT_MS = 5000;

function withTimeout<T>(promise: Promise<T>, fallback: T, ms = ANSWER_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Fails when something already listens on host:port. The threads bind with SO_REUSEPORT, which
 * would let them share the port with another edge's threads (each with its own epochs: a write
 * through one would leave the other's cache stale); a plain bind first refuses that.
 */
function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

export class EdgeThreads {
  readonly #options: EdgeThreadsOptions;
  readonly #epochs: EpochTable;
  readonly #connections: SharedArrayBuffer;
  readonly #cancelKeys: CancelDirectory;
  readonly #stats = new StatsByCache();
  readonly #refused: RefusalCounts = { total: 0, address: 0 };
  readonly #shared: SharedResultsCounts = emptyCounts();
  readonly #events: EdgeEventCounts = { evictions: 0, authFailures: { postgres: 0, mysql: 0 } };
  readonly #threads: (Thread | null)[];
  // Every worker started and not yet exited, listening or not: close() stops them all.
  readonly #workers = new Set<Worker>();
  readonly #restarts: number[];
  readonly #unsubscribe: () => void;
  #port: number;
  #mysqlPort: number | null;
  // What threads started from now on serve; replaced by setTls.
  #tls: EdgeThreadsOptions['tls'];
  #closing = false;
  #collecting: Promise<ThreadReport[]> | null = null;

  private constructor(options: EdgeThreadsOptions) {
    this.#options = options;
    this.#epochs = options.bus?.epochs ?? new EpochTable();
    this.#cancelKeys = options.cancelKeys ?? new LocalCancelDirectory();
    this.#port = options.port;
    this.#mysqlPort = options.mysqlPort ?? null;
    this.#tls = options.tls;
    this.#connections = ConnectionCounts.buffer(options.threads);
    this.#threads = new Array<Thread | null>(options.threads).fill(null);
    this.#restarts = new Array<number>(options.threads).fill(0);
    this.#unsubscribe = options.source.subscribe((cacheId) => {
      for (const thread of this.#threads) thread?.channel.notify('changed', cacheId);
    });
  }

  /** Starts every thread and resolves once all of them listen. */
  static async start(options: EdgeThreadsOptions): Promise<EdgeThreads> {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw new RangeError(`threads must be a positive integer, not ${options.threads}`);
    }
    await checkPortFree(options.host, options.port);
    if (options.mysqlPort != null) await checkPortFree(options.host, options.mysqlPort);
    const pool = new EdgeThreads(options);
    try {
      // The first thread binds (maybe a free port); the others then join that port.
      ({ port: pool.#port, mysqlPort: pool.#mysqlPort } = await pool.#spawn(0));
      const others = await Promise.allSettled(
        pool.#threads.slice(1).map((_, i) => pool.#spawn(i + 1)),
      );
      const failed = others.find((result) => result.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  get port(): number {
    return this.#port;
  }

  get mysqlPort(): number | null {
    return this.#mysqlPort;
  }

  get threads(): number {
    return this.#threads.length;
  }

  /** Totals of every thread, as of the last `collect`. */
  stats(cacheId: string): CacheStats {
    return this.#stats.get(cacheId);
  }

  allStats(): Iterable<CacheStats> {
    return this.#stats.all();
  }

  /** What the threads' second levels counted, as of the last `collect`. */
  sharedResults(): SharedResultsCounts {
    return { ...this.#shared };
  }

  /** Evictions and failed logins of every thread, as of the last `collect`. */
  events(): EdgeEventCounts {
    return { ...this.#events, authFailures: { ...this.#events.authFailures } };
  }

  /** Connections every thread refused over a cap, as of the last `collect`. */
  refused(): RefusalCounts {
    return { ...this.#refused };
  }

  /**
   * Marks tables of a cache as written now (a write the edge did not carry, e.g. read from the
   * origin's replication stream): the epochs are shared memory, so every thread sees it at once.
   */
  invalidate(cacheId: string, tables: readonly string[] | 'all'): void {
    const epochs = new CacheEpochs(this.#epochs, cacheId);
    epochs.table.stamp(
      tables === 'all' ? [epochs.allSlot] : tables.map((table) => epochs.slot(table)),
    );
  }

  /** Holds (or releases) a cache on every thread: see `PgEdge.hold`. */
  hold(cacheId: string, delta: 1 | -1): void {
    this.#epochs.hold(cacheId, delta);
  }

  /** Bytes held by the threads' result stores, as of the last `collect`. */
  cacheBytes(): number {
    return this.#threads.reduce((sum, thread) => sum + (thread?.report.cacheBytes ?? 0), 0);
  }

  /**
   * Asks every thread what it counted since it was last asked and adds it to the totals; returns
   * each thread's report. Concurrent callers share one round.
   */
  collect(): Promise<ThreadReport[]> {
    this.#collecting ??= this.#collectOnce().finally(() => (this.#collecting = null));
    return this.#collecting;
  }

  /**
   * Serves new sessions of every thread (and of threads restarted later) with this certificate and
   * key. Checked here first, so an unusable pair changes nothing anywhere.
   */
  async setTls(pem: { cert: string; key: string }): Promise<void> {
    tls.createSecureContext(pem);
    this.#tls = pem;
    await Promise.all(
      this.#threads.map((thread) =>
        thread === null
          ? undefined
          : withTimeout(
              thread.channel.request('tls', pem).catch(() => undefined),
              undefined,
            ),
      ),
    );
  }

  /** The open sessions of every thread (a thread that does not answer in time is left out). */
  async sessions(): Promise<SessionInfo[]> {
    const lists = await Promise.all(
      this.#threads.map((thread) =>
        thread === null
          ? []
          : withTimeout(
              thread.channel.request<SessionInfo[]>('sessions').catch(() => []),
              [],
            ),
      ),
    );
    return lists.flat();
  }

  /** Ends the session with this id on whichever thread holds it. */
  async kill(id: string): Promise<boolean> {
    const answers = await Promise.all(
      this.#threads.map((thread) =>
        thread === null
          ? false
          : withTimeout(
              thread.channel.request<boolean>('kill', id).catch(() => false),
              false,
            ),
      ),
    );
    return answers.includes(true);
  }

  /** Every thread stops accepting and drains its sessions (see `PgEdge.drain`); none restarts. */
  async drain(ms: number): Promise<void> {
    this.#closing = true;
    await Promise.all(
      this.#threads.map((thread) =>
        thread === null
          ? undefined
          : withTimeout(
              thread.channel.request('drain', ms).catch(() => undefined),
              undefined,
              ms + ANSWER_TIMEOUT_MS,
            ),
      ),
    );
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#unsubscribe();
    await this.collect().catch(() => []);
    await Promise.all(
      [...this.#workers].map(async (worker) => {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        const thread = this.#threads.find((candidate) => candidate?.worker === worker);
        // A listening thread ends its sessions first; one still starting is simply stopped.
        if (thread !== undefined && thread !== null) {
          await withTimeout(
            thread.channel.request('close').catch(() => undefined),
            undefined,
          );
        }
        await worker.terminate();
        await exited;
      }),
    );
  }

  async #collectOnce(): Promise<ThreadReport[]> {
    const reports = await Promise.all(
      this.#threads.map(async (thread) => {
        if (thread === null) return null;
        const report = await withTimeout(
          thread.channel.request<WorkerReport>('report').catch(() => null),
          null,
        );
        if (report === null) return null;
        const { deltas, refused, shared, events, ...held } = report;
        addCounts(this.#shared, shared);
        thread.report = held;
        this.#refused.total += refused.total;
        this.#refused.address += refused.address;
        this.#events.evictions += events.evictions;
        this.#events.authFailures.postgres += events.authFailures.postgres;
        this.#events.authFailures.mysql += events.authFailures.mysql;
        for (const delta of deltas) this.stats(delta.cacheId).absorb(delta);
        return held;
      }),
    );
    return reports.filter((report) => report !== null);
  }

  // Starts thread `index` and resolves with the ports it listens on.
  #spawn(index: number): Promise<{ port: number; mysqlPort: number | null }> {
    const options = this.#options;
    const workerData: EdgeWorkerData = {
      index,
      host: options.host,
      port: this.#port,
      mysqlPort: this.#mysqlPort,
      tls: this.#tls,
      cacheMaxBytes: Math.floor(options.cacheMaxBytes / options.threads),
      // The largest result one thread keeps is what one edge would keep (of the whole budget).
      cacheMaxEntryBytes: defaultMaxEntryBytes(options.cacheMaxBytes),
      epochs: this.#epochs.buffer,
      cluster: options.bus == null ? null : { url: options.bus.url, nodeId: options.bus.nodeId },
      connections: this.#connections,
      connectionCaps: options.connectionCaps ?? defaultConnectionCaps(readFileLimit()),
      loginTimeoutMs: options.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
      guard: options.guard,
      sharedResults: options.sharedResults ?? null,
    };
    const worker = new Worker(WORKER_URL, { workerData, name: `edge-${index}` });
    this.#workers.add(worker);
    return new Promise<{ port: number; mysqlPort: number | null }>((resolve, reject) => {
      let listening = false;
      const thread: Thread = {
        index,
        worker,
        report: { cacheBytes: 0, entries: 0, sessions: 0 },
        cancelKeys: new Set(),
        listeningSince: 0,
        channel: new Channel(worker, {
          listening: (ports: { port: number; mysqlPort: number | null }) => {
            listening = true;
            if (this.#closing) {
              reject(new Error('the edge is closing'));
              return;
            }
            this.#threads[index] = thread;
            thread.listeningSince = Date.now();
            resolve(ports);
          },
          load: (cacheId: string) => options.source.loadCache(cacheId),
          remember: ({ key, target }: { key: string; target: OriginTarget }) => {
            thread.cancelKeys.add(key);
            this.#cancelKeys.remember(key, target);
          },
          forget: (key: string) => {
            thread.cancelKeys.delete(key);
            this.#cancelKeys.forget(key);
          },
          lookup: (key: string) => this.#cancelKeys.lookup(key),
          publish: ({ cacheId, tables }: { cacheId: string; tables: string[] | 'all' }) =>
            options.bus?.publish(cacheId, tables),
          log: ({ level, obj, msg }: { level: keyof EdgeLogger; obj: object; msg?: string }) =>
            options.logger[level](obj, msg),
        }),
      };
      worker.on('error', (error) => {
        if (!listening) reject(error);
        else options.logger.error({ err: error, worker: index }, 'an edge thread failed');
      });
      worker.on('exit', (code) => {
        this.#workers.delete(worker);
        thread.channel.close('the edge thread has stopped');
        for (const key of thread.cancelKeys) this.#cancelKeys.forget(key);
        // Its connections ended with it: they no longer count against the caps.
        ConnectionCounts.clear(this.#connections, index);
        if (!listening) {
          reject(new Error(`edge thread ${index} exited with code ${code} before listening`));
          return;
        }
        if (this.#threads[index] === thread) this.#threads[index] = null;
        if (this.#closing) return;
        // Up for a minute: this failure starts again from the shortest delay.
        if (Date.now() - thread.listeningSince > 60_000) this.#restarts[index] = 0;
        this.#scheduleRestart(index, `edge thread ${index} stopped (exit code ${code})`);
      });
    });
  }

  #scheduleRestart(index: number, why: string): void {
    if (this.#closing) return;
    const attempts = this.#restarts[index] ?? 0;
    const delay = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** attempts);
    this.#restarts[index] = attempts + 1;
    this.#options.logger.error({ worker: index }, `${why}; starting a new one in ${delay} ms`);
    setTimeout(() => {
      if (this.#closing) return;
      this.#spawn(index).catch((error: unknown) =>
        this.#scheduleRestart(index, `could not restart edge thread ${index}: ${String(error)}`),
      );
    }, delay).unref();
  }
}
