// What the edge needs to know of a cache, and how its rules decide whether and how long a read is kept.
import { createHash } from 'node:crypto';
import type { TableRef } from '../pg/sql/analyze.ts';

export type CacheMode = 'auto' | 'manual' | 'off';
export type TransactionPolicy = 'never' | 'untilWrite';

export interface EdgeRule {
  kind: 'table' | 'template' | 'query';
  key: string;
  mode: CacheMode;
  ttlSeconds: number | null;
  transactionPolicy: TransactionPolicy;
}

export interface EdgeCacheConfig {
  id: string;
  type: 'postgres' | 'mysql' | 'mariadb' | 'mssql';
  hostname: string;
  port: number;
  defaultMode: CacheMode;
  defaultTtlSeconds: number;
  originTls: 'disable' | 'prefer' | 'require';
  rules: EdgeRule[];
  /**
   * The tables under each view, as the origin's catalog says (read by the change-stream follower,
   * named as the edge names tables): a read through a view is also tagged with them, so a write to
   * any of them makes it stale. Absent: views are tagged with their own name only.
   */
  viewTables?: Readonly<Record<string, readonly string[]>>;
  /** Share results with the other edge nodes through Redis (the second level); absent: false. */
  sharedResults?: boolean;
}

/** `tables`, with the tables under any view among them (see `EdgeCacheConfig.viewTables`). */
export function withViewTables(
  tables: readonly string[],
  viewTables: EdgeCacheConfig['viewTables'],
): readonly string[] {
  if (viewTables === undefined) return tables;
  let expanded: Set<string> | null = null;
  for (const table of tables) {
    const under = Object.hasOwn(viewTables, table) ? viewTables[table] : undefined;
    if (under === undefined) continue;
    expanded ??= new Set(tables);
    for (const base of under) expanded.add(base);
  }
  return expanded === null ? tables : [...expanded];
}

/** Where the edge reads caches from; the control plane implements it over its store. */
export interface EdgeConfigSource {
  /** The cache with this id, or null when there is none (deleted, never existed). */
  loadCache(id: string): Promise<EdgeCacheConfig | null>;
  /**
   * Calls `listener` with a cache id whenever that cache or one of its rules changes, and with
   * null when changes may have been missed (every cache should be re-read).
   */
  subscribe(listener: (cacheId: string | null) => void): () => void;
}

/** The decision for one read: how long to keep it, and whether it may be used inside a transaction. */
export interface CachePolicy {
  ttlMs: number;
  transactionPolicy: TransactionPolicy;
}

/** A cache's rules, indexed for the lookups a miss makes. */
export class CompiledRules {
  readonly config: EdgeCacheConfig;
  readonly #queries = new Map<string, EdgeRule>();
  readonly #templates = new Map<string, EdgeRule>();
  readonly #tables = new Map<string, EdgeRule>();

  constructor(config: EdgeCacheConfig) {
    this.config = config;
    for (const rule of config.rules) {
      const index =
        rule.kind === 'query'
          ? this.#queries
          : rule.kind === 'template'
            ? this.#templates
            : this.#tables;
      index.set(rule.key, rule);
    }
  }

  /** True when no read of this cache can ever be cached: the edge then skips analysis entirely. */
  get neverCaches(): boolean {
    return (
      this.config.defaultMode === 'off' && this.config.rules.every((rule) => rule.mode === 'off')
    );
  }

  /**
   * Precedence: query > template > table > cache default. A read of several tables is cached only
   * when every table allows it, for the shortest of their TTLs.
   */
  decide(sql: string, fingerprint: string, tables: readonly TableRef[]): CachePolicy | null {
    if (this.#queries.size > 0) {
      const rule = this.#queries.get(queryHash(sql));
      if (rule !== undefined) return this.#fromRule(rule);
    }
    const template = this.#templates.get(fingerprint);
    if (template !== undefined) return this.#fromRule(template);
    if (tables.length === 0 || this.#tables.size === 0) return this.#fromDefault();
    let ttlMs = Infinity;
    let transactionPolicy: TransactionPolicy = 'untilWrite';
    for (const table of tables) {
      const rule = this.#tableRule(table);
      const policy = rule === undefined ? this.#fromDefault() : this.#fromRule(rule);
      if (policy === null) return null;
      ttlMs = Math.min(ttlMs, policy.ttlMs);
      if (policy.transactionPolicy === 'never') transactionPolicy = 'never';
    }
    return { ttlMs, transactionPolicy };
  }

  // `schema.name` matches a rule for exactly that, else one for the bare name; an unqualified
  // reference matches the bare name, else `public.name`.
  #tableRule(table: TableRef): EdgeRule | undefined {
    const bare = identifier(table.name);
    if (table.schema !== null) {
      return this.#tables.get(`${identifier(table.schema)}.${bare}`) ?? this.#tables.get(bare);
    }
    return this.#tables.get(bare) ?? this.#tables.get(`public.${bare}`);
  }

  #fromRule(rule: EdgeRule): CachePolicy | null {
    if (rule.mode === 'off') return null;
    const seconds =
      rule.mode === 'manual' && rule.ttlSeconds !== null
        ? rule.ttlSeconds
        : this.config.defaultTtlSeconds;
    return { ttlMs: seconds * 1000, transactionPolicy: rule.transactionPolicy };
  }

  #fromDefault(): CachePolicy | null {
    if (this.config.defaultMode === 'off') return null;
    return { ttlMs: this.config.defaultTtlSeconds * 1000, transactionPolicy: 'untilWrite' };
  }
}

/** The key of a `kind: query` rule: SHA-256 (hex) of the exact text, as the control plane computes it. */
export function queryHash(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

// The spelling the control plane gives table names: plain lower-case names bare, others quoted.
function identifier(name: string): string {
  return /^[\p{L}_][\p{L}\p{N}_$]*$/u.test(name) && !/[A-Z]/.test(name)
    ? name
    : `"${name.replaceAll('"', '""')}"`;
}
