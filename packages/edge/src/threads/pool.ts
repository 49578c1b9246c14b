// Runs the Postgres edge on several threads sharing one port, so that one core is not the limit.
// The host thread keeps what must be one for all of them: the config source (each change notice is
// passed to every thread), the cancel-key directory, the logger, and the totals of their stats.
// A thread that dies is replaced; its sessions end with it, the others go on.
import { Worker } from 'node:worker_threads';
import { EpochTable } from '../cache/epochs.ts';
import type { EdgeConfigSource } from '../control/config.ts';
import { CacheStats, type StatsDelta } from '../metrics/cache-stats.ts';
import { LocalCancelDirectory, type EdgeLogger } from '../runtime.ts';
import type { OriginTarget } from '../upstream/origin.ts';
import { Channel } from './channel.ts';

/** A module exporting a function that makes the origin address guard (functions cannot be sent). */
export interface GuardSpec {
  /** A file: URL or package specifier the worker can import. */
  module: string;
  name: string;
  argument: unknown;
}

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
  epochs: SharedArrayBuffer;
  guard: GuardSpec | null;
}

/** What one thread holds and did since its last report. */
export interface WorkerReport {
  deltas: StatsDelta[];
  cacheBytes: number;
  entries: number;
  sessions: number;
}

interface Thread {
  index: number;
  worker: Worker;
  channel: Channel;
  report: Omit<WorkerReport, 'deltas'>;
}

const WORKER_URL = new URL('./worker.ts', import.meta.url);
const RESTART_DELAY_MS = 1000;

export class EdgeThreads {
  readonly #options: EdgeThreadsOptions;
  readonly #epochs = new EpochTable();
  readonly #cancelKeys = new LocalCancelDirectory();
  readonly #stats = new Map<string, CacheStats>();
  readonly #threads: (Thread | null)[];
  readonly #unsubscribe: () => void;
  #port: number;
  #closing = false;
  #collecting: Promise<WorkerReport[]> | null = null;

  private constructor(options: EdgeThreadsOptions) {
    this.#options = options;
    this.#port = options.port;
    this.#threads = new Array<Thread | null>(options.threads).fill(null);
    this.#unsubscribe = options.source.subscribe((cacheId) => {
      for (const thread of this.#threads) thread?.channel.notify('changed', cacheId);
    });
  }

  /** Starts every thread and resolves once all of them listen. */
  static async start(options: EdgeThreadsOptions): Promise<EdgeThreads> {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw new RangeError(`threads must be a positive integer, not ${options.threads}`);
    }
    const pool = new EdgeThreads(options);
    try {
      // The first thread binds (maybe a free port); the others then join that port.
      pool.#port = await pool.#spawn(0);
      await Promise.all(pool.#threads.slice(1).map((_, i) => pool.#spawn(i + 1)));
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  get port(): number {
    return this.#port;
  }

  get threadCount(): number {
    return this.#threads.length;
  }

  /** Totals of every thread, as of the last `collect`. */
  stats(cacheId: string): CacheStats {
    let stats = this.#stats.get(cacheId);
    if (stats === undefined) {
      stats = new CacheStats(cacheId);
      this.#stats.set(cacheId, stats);
    }
    return stats;
  }

  allStats(): Iterable<CacheStats> {
    return this.#stats.values();
  }

  /** Bytes held by the threads' result stores, as of the last `collect`. */
  get cacheBytes(): number {
    return this.#threads.reduce((sum, thread) => sum + (thread?.report.cacheBytes ?? 0), 0);
  }

  /**
   * Asks every thread what it counted since it was last asked and adds it to the totals; returns
   * each thread's report. Concurrent callers share one round.
   */
  collect(): Promise<WorkerReport[]> {
    this.#collecting ??= this.#collectOnce().finally(() => (this.#collecting = null));
    return this.#collecting;
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#unsubscribe();
    await this.collect().catch(() => []);
    await Promise.all(
      this.#threads.map(async (thread) => {
        if (thread === null) return;
        const exited = new Promise((resolve) => thread.worker.once('exit', resolve));
        await thread.channel.request('close').catch(() => undefined);
        thread.channel.close('the edge is closing');
        await thread.worker.terminate();
        await exited;
      }),
    );
  }

  async #collectOnce(): Promise<WorkerReport[]> {
    const reports = await Promise.all(
      this.#threads.map(async (thread) => {
        if (thread === null) return null;
        const report = await thread.channel.request<WorkerReport>('report').catch(() => null);
        if (report === null) return null;
        const { deltas, ...held } = report;
        thread.report = held;
        for (const delta of deltas) this.stats(delta.cacheId).absorb(delta);
        return report;
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
      epochs: this.#epochs.buffer,
      guard: options.guard,
    };
    const worker = new Worker(WORKER_URL, { workerData, name: `edge-${index}` });
    return new Promise<number>((resolve, reject) => {
      let listening = false;
      const thread: Thread = {
        index,
        worker,
        report: { cacheBytes: 0, entries: 0, sessions: 0 },
        channel: new Channel(worker, {
          listening: (port: number) => {
            listening = true;
            this.#threads[index] = thread;
            resolve(port);
          },
          load: (cacheId: string) => options.source.loadCache(cacheId),
          remember: ({ key, target }: { key: string; target: OriginTarget }) =>
            this.#cancelKeys.remember(key, target),
          forget: (key: string) => this.#cancelKeys.forget(key),
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
        thread.channel.close('the edge thread has stopped');
        if (!listening) {
          reject(new Error(`edge thread ${index} exited with code ${code} before listening`));
          return;
        }
        if (this.#threads[index] === thread) this.#threads[index] = null;
        if (this.#closing) return;
        options.logger.error(
          { worker: index, code },
          `edge thread ${index} stopped; starting a new one in ${RESTART_DELAY_MS} ms`,
        );
        setTimeout(() => this.#restart(index), RESTART_DELAY_MS).unref();
      });
    });
  }

  #restart(index: number): void {
    if (this.#closing) return;
    this.#spawn(index).catch((error: unknown) => {
      this.#options.logger.error({ err: error, worker: index }, 'could not restart an edge thread');
      setTimeout(() => this.#restart(index), RESTART_DELAY_MS).unref();
    });
  }
}
