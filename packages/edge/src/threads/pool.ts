// Runs the Postgres edge on several threads sharing one port, so that one core is not the limit.
// The host thread keeps what must be one for all of them: the config source (each change notice is
// passed to every thread), the cancel-key directory, the logger, and the totals of their stats.
// A thread that dies is replaced; its sessions end with it, the others go on.
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { EpochTable } from '../cache/epochs.ts';
import { defaultMaxEntryBytes } from '../cache/result-cache.ts';
import type { EdgeConfigSource } from '../control/config.ts';
import { StatsByCache, type CacheStats, type StatsDelta } from '../metrics/cache-stats.ts';
import { LocalCancelDirectory, type EdgeLogger } from '../runtime.ts';
import type { OriginTarget } from '../upstream/origin.ts';
import { Channel } from './channel.ts';
import type { GuardSpec } from './guard.ts';

export interface EdgeThreadsOptions {
  threads: number;
  host: string;
  /** 0 picks a free port (the first thread's), which the others then share. */
  port: number;
  /** PEM text (it crosses to the threads as a string). */
  tls: { cert: string; key: string } | null;
  /** The whole budget, split evenly between the threads. */
  cacheMaxBytes: number;
  guard: GuardSpec | null;
  source: EdgeConfigSource;
  logger: EdgeLogger;
}

export interface EdgeWorkerData {
  index: number;
  host: string;
  port: number;
  tls: EdgeThreadsOptions['tls'];
  cacheMaxBytes: number;
  cacheMaxEntryBytes: number;
  epochs: SharedArrayBuffer;
  guard: GuardSpec | null;
}

/** What one thread holds. */
export interface ThreadReport {
  cacheBytes: number;
  entries: number;
  sessions: number;
}

/** What a thread sends the host: what it holds, and what it counted since its last report. */
export interface WorkerReport extends ThreadReport {
  deltas: StatsDelta[];
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

function withTimeout<T>(promise: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ANSWER_TIMEOUT_MS);
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
  readonly #epochs = new EpochTable();
  readonly #cancelKeys = new LocalCancelDirectory();
  readonly #stats = new StatsByCache();
  readonly #threads: (Thread | null)[];
  // Every worker started and not yet exited, listening or not: close() stops them all.
  readonly #workers = new Set<Worker>();
  readonly #restarts: number[];
  readonly #unsubscribe: () => void;
  #port: number;
  #closing = false;
  #collecting: Promise<ThreadReport[]> | null = null;

  private constructor(options: EdgeThreadsOptions) {
    this.#options = options;
    this.#port = options.port;
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
    const pool = new EdgeThreads(options);
    try {
      // The first thread binds (maybe a free port); the others then join that port.
      pool.#port = await pool.#spawn(0);
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
        const { deltas, ...held } = report;
        thread.report = held;
        for (const delta of deltas) this.stats(delta.cacheId).absorb(delta);
        return held;
      }),
    );
    return reports.filter((report) => report !== null);
  }

  // Starts thread `index` and resolves with the port it listens on.
  #spawn(index: number): Promise<number> {
    const options = this.#options;
    const workerData: EdgeWorkerData = {
      index,
      host: options.host,
      port: this.#port,
      tls: options.tls,
      cacheMaxBytes: Math.floor(options.cacheMaxBytes / options.threads),
      // The largest result one thread keeps is what one edge would keep (of the whole budget).
      cacheMaxEntryBytes: defaultMaxEntryBytes(options.cacheMaxBytes),
      epochs: this.#epochs.buffer,
      guard: options.guard,
    };
    const worker = new Worker(WORKER_URL, { workerData, name: `edge-${index}` });
    this.#workers.add(worker);
    return new Promise<number>((resolve, reject) => {
      let listening = false;
      const thread: Thread = {
        index,
        worker,
        report: { cacheBytes: 0, entries: 0, sessions: 0 },
        cancelKeys: new Set(),
        listeningSince: 0,
        channel: new Channel(worker, {
          listening: (port: number) => {
            listening = true;
            if (this.#closing) {
              reject(new Error('the edge is closing'));
              return;
            }
            this.#threads[index] = thread;
            thread.listeningSince = Date.now();
            resolve(port);
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
