// State shared by every session of one edge process: cache configs from the control plane, the
// result store, statement analyses, per-cache stats and the cancel-key directory. With several
// threads, each has its own runtime; the epoch table and the cancel keys are what they share.
import { ResultCache, type CacheEpochs, type EpochTable } from './cache/result-cache.ts';
import type { InvalidationBus } from './cluster/bus.ts';
import type { SharedResults } from './cluster/shared-results.ts';
import { SessionLog } from './core/session-log.ts';
import { CompiledRules, type EdgeCacheConfig, type EdgeConfigSource } from './control/config.ts';
import { StatsByCache, type CacheStats } from './metrics/cache-stats.ts';
import { CodeHints } from './pg/session/state-probe.ts';
import { MysqlStatementMemo } from './mysql/sql/memo.ts';
import { StatementMemo } from './pg/session/statement-memo.ts';
import { LearnedFunctions } from './pg/sql/function-effects.ts';
import type { AddressGuard, OriginTarget } from './upstream/origin.ts';

export interface CacheState {
  readonly id: string;
  rules: CompiledRules;
  readonly epochs: CacheEpochs;
  readonly stats: CacheStats;
  loadedAt: number;
}

export interface EdgeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** BackendKeyData (hex) → the origin that issued it, for CancelRequest. */
export interface CancelDirectory {
  remember(key: string, target: OriginTarget): void;
  forget(key: string): void;
  lookup(key: string): Promise<OriginTarget | undefined>;
}

export class LocalCancelDirectory implements CancelDirectory {
  readonly #targets = new Map<string, OriginTarget>();

  remember(key: string, target: OriginTarget): void {
    this.#targets.set(key, target);
  }

  forget(key: string): void {
    this.#targets.delete(key);
  }

  lookup(key: string): Promise<OriginTarget | undefined> {
    return Promise.resolve(this.#targets.get(key));
  }
}

export interface RuntimeOptions {
  source: EdgeConfigSource;
  cacheMaxBytes: number;
  /** Largest result kept (default: 1/16 of cacheMaxBytes). */
  cacheMaxEntryBytes?: number;
  /** Shared with the edge's other threads, if any. */
  epochs?: EpochTable;
  cancelKeys?: CancelDirectory;
  /** Shares committed writes with the other edge nodes (REDIS_URL); none: this node alone. */
  bus?: InvalidationBus | null;
  /** The second level of results in Redis, for caches that share them; used only with a bus. */
  sharedResults?: SharedResults | null;
  /** Refuses origin addresses the guard rejects; null allows any (ORIGIN_PRIVATE). */
  guard: AddressGuard | null;
  logger: EdgeLogger;
}

// A config older than this is re-read when a new connection arrives, in case a change
// notification was lost (a dropped LISTEN connection, say).
const CONFIG_MAX_AGE_MS = 30_000;

export class EdgeRuntime {
  readonly results: ResultCache;
  readonly memo = new StatementMemo();
  /** The MySQL edge's analyses, by template. */
  readonly mysqlMemo = new MysqlStatementMemo();
  /** What user functions of each origin database may write, as the state probes read them. */
  readonly functions = new LearnedFunctions();
  /** What the state probes last read of each origin database's code (see state-probe.ts). */
  readonly codeHints = new CodeHints();
  readonly guard: AddressGuard | null;
  readonly logger: EdgeLogger;
  readonly cancelKeys: CancelDirectory;
  readonly bus: InvalidationBus | null;
  readonly sharedResults: SharedResults | null;
  /** Session ends, refusals and failed logins, at info, sampled under floods. */
  readonly sessions: SessionLog;
  readonly #source: EdgeConfigSource;
  readonly #caches = new Map<string, CacheState>();
  readonly #stats = new StatsByCache();
  readonly #unsubscribe: () => void;

  constructor(options: RuntimeOptions) {
    this.results = new ResultCache({
      maxBytes: options.cacheMaxBytes,
      maxEntryBytes: options.cacheMaxEntryBytes,
      epochs: options.epochs,
    });
    this.cancelKeys = options.cancelKeys ?? new LocalCancelDirectory();
    this.bus = options.bus ?? null;
    this.sharedResults = options.sharedResults ?? null;
    this.sessions = new SessionLog(options.logger);
    this.guard = options.guard;
    this.logger = options.logger;
    this.#source = options.source;
    this.#unsubscribe = options.source.subscribe((id) => {
      for (const cacheId of id === null ? [...this.#caches.keys()] : [id]) {
        this.reload(cacheId).catch((error: unknown) =>
          this.logger.error({ err: error, cacheId }, 'could not reload a cache config'),
        );
      }
    });
  }

  /** The live state of a cache, loading it on first use; null when the cache does not exist. */
  async cache(id: string): Promise<{ state: CacheState | null; config: EdgeCacheConfig | null }> {
    const known = this.#caches.get(id);
    if (known !== undefined && Date.now() - known.loadedAt < CONFIG_MAX_AGE_MS) {
      return { state: known, config: known.rules.config };
    }
    await this.reload(id);
    const state = this.#caches.get(id) ?? null;
    return { state, config: state?.rules.config ?? null };
  }

  /** Re-reads a cache; a changed config drops its stored results, a deleted cache is forgotten. */
  async reload(id: string): Promise<void> {
    const config = await this.#source.loadCache(id);
    const known = this.#caches.get(id);
    if (config === null) {
      if (known !== undefined) {
        this.#caches.delete(id);
        this.results.invalidate(known.epochs, 'all');
      }
      return;
    }
    if (known !== undefined) {
      const changed = JSON.stringify(known.rules.config) !== JSON.stringify(config);
      known.rules = new CompiledRules(config);
      known.loadedAt = Date.now();
      if (changed) this.results.invalidate(known.epochs, 'all');
      return;
    }
    this.#caches.set(id, {
      id,
      rules: new CompiledRules(config),
      epochs: this.results.epochsFor(id),
      stats: this.stats(id),
      loadedAt: Date.now(),
    });
  }

  stats(id: string): CacheStats {
    return this.#stats.get(id);
  }

  allStats(): Iterable<CacheStats> {
    return this.#stats.all();
  }

  close(): void {
    this.#unsubscribe();
    this.sharedResults?.close();
  }
}
