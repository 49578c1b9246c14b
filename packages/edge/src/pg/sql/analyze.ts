// What a SQL text does, from the real Postgres parser (libpg-query): may its result be cached,
// which tables does it read, which does it write, and does it change session settings.
import { fingerprintSync, loadModule, parseSync } from 'libpg-query';
import type { SessionEffect } from '../../core/session-key.ts';
import { isCacheableFunction, isKnownNonWritingFunction } from './functions.ts';

export interface TableRef {
  schema: string | null;
  name: string;
}

export interface Analysis {
  /** A plain read whose result may be served again (rules still decide). */
  cacheable: boolean;
  /** Why not, for logs and metrics; null when cacheable. */
  reason: string | null;
  /** Relations read, CTE names excluded. */
  reads: TableRef[];
  /** Bare names of relations written, 'all' when we cannot see what is written. */
  writes: string[] | 'all';
  /**
   * What it writes once the functions it calls that the edge does not know (`calls`, exact names)
   * are known to write nothing: `writes` is 'all' when `calls` is not empty, `effects.writes` holds
   * only what the statement writes itself. Null for a text of several statements (a COMMIT among
   * them would make its writes count before the functions are known).
   */
  effects: StatementEffects | null;
  /** What it may do to session state that can change later results (see SessionEffect). */
  session: SessionEffect;
  /** The template fingerprint (same for texts that differ only in constants). */
  fingerprint: string;
}

/** What statements write, and the functions they call that the edge does not know. */
export interface StatementEffects {
  writes: string[] | 'all';
  calls: string[];
}

// When a text holds several statements, the strongest effect counts.
const EFFECT_RANK: Record<SessionEffect, number> = {
  none: 0,
  transaction: 1,
  taints: 2,
  discards: 3,
  copies: 4,
};

let loading: Promise<void> | undefined;

/** Loads the parser's WASM module; await once before `analyzeSql`. */
export function loadSqlParser(): Promise<void> {
  loading ??= loadModule();
  return loading;
}

type Node = Record<string, unknown>;

interface Walk {
  reads: TableRef[];
  writes: Set<string>;
  writesAll: boolean;
  // Functions not on the allow-lists, by exact name: they may write anything until learned.
  calls: Set<string>;
  uncacheable: string | null;
  session: SessionEffect;
}

const WRITE_STATEMENTS: Record<string, string> = {
  InsertStmt: 'relation',
  UpdateStmt: 'relation',
  DeleteStmt: 'relation',
  MergeStmt: 'relation',
};

// What SET TRANSACTION (and SET of the transaction_* settings) changes: this transaction only.
const TRANSACTION_SETTINGS = new Set([
  'TRANSACTION',
  'TRANSACTION SNAPSHOT',
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
]);

// Session-level statements that neither read nor write tables nor change settings (LOAD can).
const HARMLESS_STATEMENTS = new Set([
  'VariableShowStmt',
  'ListenStmt',
  'UnlistenStmt',
  'NotifyStmt',
  'LockStmt',
  'DeallocateStmt',
  'CheckPointStmt',
  'ClosePortalStmt',
  'FetchStmt',
  'ConstraintsSetStmt',
  'VacuumStmt',
]);

/** Analyses `sql`; a text the parser refuses is uncacheable and assumed to write everything. */
export function analyzeSql(sql: string): Analysis {
  let stmts: { stmt?: Node }[];
  let fingerprint: string;
  // Postgres answers an empty text with EmptyQueryResponse; the parser would throw on it.
  if (sql.trim() === '') {
    return {
      cacheable: false,
      reason: 'empty query',
      reads: [],
      writes: [],
      effects: { writes: [], calls: [] },
      session: 'none',
      fingerprint: '',
    };
  }
  try {
    stmts = (parseSync(sql) as { stmts?: { stmt?: Node }[] }).stmts ?? [];
    fingerprint = fingerprintSync(sql);
  } catch {
    // Postgres will refuse it too; nothing is cached or invalidated wrongly by assuming the worst.
    return unknown('the text does not parse', '');
  }
  if (stmts.length === 0)
    return {
      ...unknown('empty query', fingerprint),
      writes: [],
      effects: { writes: [], calls: [] },
      session: 'none',
    };
  const walk = walkStatements(stmts);
  // CTE names stay among the reads: a CTE may shadow a real table in one scope and not in another,
  // and counting a name too many only means an extra invalidation, never a stale hit.
  const seen = new Set<string>();
  const reads = walk.reads.filter((t) => {
    const key = `${t.schema ?? ''}.${t.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const effects = effectsOf(walk);
  return {
    cacheable: walk.uncacheable === null,
    reason: walk.uncacheable,
    reads,
    writes: walk.calls.size > 0 ? 'all' : effects.writes,
    effects: stmts.length > 1 ? null : effects,
    session: walk.session,
    fingerprint,
  };
}

/**
 * What the statements of a function body write and which functions they call (any number of
 * statements); a body the parser refuses may write anything.
 */
export function analyzeBodyEffects(sql: string): StatementEffects {
  try {
    const stmts = (parseSync(sql) as { stmts?: { stmt?: Node }[] }).stmts ?? [];
    return effectsOf(walkStatements(stmts));
  } catch {
    return { writes: 'all', calls: [] };
  }
}

/** The effects of statements already parsed (a BEGIN ATOMIC body, say). */
export function parsedEffects(stmts: unknown[]): StatementEffects {
  const walk = newWalk(stmts.length);
  for (const stmt of stmts) {
    if (stmt !== null && typeof stmt === 'object') statement(stmt as Node, walk);
  }
  return effectsOf(walk);
}

function newWalk(statements: number): Walk {
  return {
    reads: [],
    writes: new Set(),
    writesAll: false,
    calls: new Set(),
    uncacheable: statements > 1 ? 'several statements' : null,
    session: 'none',
  };
}

function walkStatements(stmts: { stmt?: Node }[]): Walk {
  const walk = newWalk(stmts.length);
  for (const { stmt } of stmts) {
    if (stmt !== undefined) statement(stmt, walk);
  }
  if (walk.writesAll || walk.writes.size > 0 || walk.calls.size > 0) affects(walk, 'taints');
  return walk;
}

function effectsOf(walk: Walk): StatementEffects {
  return { writes: walk.writesAll ? 'all' : [...walk.writes], calls: [...walk.calls] };
}

function unknown(reason: string, fingerprint: string): Analysis {
  return {
    cacheable: false,
    reason,
    reads: [],
    writes: 'all',
    effects: null,
    session: 'taints',
    fingerprint,
  };
}

function affects(walk: Walk, effect: SessionEffect): void {
  if (EFFECT_RANK[effect] > EFFECT_RANK[walk.session]) walk.session = effect;
}

function statement(stmt: Node, walk: Walk): void {
  const [type, body] = Object.entries(stmt)[0] as [string, Node];
  switch (type) {
    case 'SelectStmt':
      if (body.intoClause !== undefined) {
        walk.uncacheable ??= 'SELECT INTO creates a table';
        const into = (body.intoClause as Node).rel as Node;
        walk.writes.add(String(into.relname));
      }
      visit(body, walk);
      return;
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
    case 'TruncateStmt':
    case 'CopyStmt':
      visit(stmt, walk);
      if (type === 'CopyStmt' && body.is_from !== true) walk.uncacheable ??= 'COPY TO';
      if (type === 'CopyStmt' && body.is_from === true) affects(walk, 'copies');
      return;
    case 'VariableSetStmt':
      walk.uncacheable ??= 'SET';
      // SET TRANSACTION lasts one transaction and must precede its first query (a probe is one).
      if (!TRANSACTION_SETTINGS.has(String(body.name))) affects(walk, 'taints');
      return;
    case 'DiscardStmt':
      walk.uncacheable ??= 'DISCARD';
      affects(walk, body.target === 'DISCARD_ALL' ? 'discards' : 'taints');
      return;
    case 'TransactionStmt':
      walk.uncacheable ??= 'Transaction';
      affects(walk, 'transaction');
      return;
    case 'ExplainStmt': {
      walk.uncacheable ??= 'EXPLAIN';
      const options = JSON.stringify(body.options ?? []);
      // EXPLAIN ANALYZE runs the statement.
      if (/"analyze"/i.test(options)) statement(body.query as Node, walk);
      return;
    }
    case 'AlterTableStmt':
    case 'RefreshMatViewStmt':
    case 'CreateStmt':
    case 'CreateTableAsStmt':
    case 'IndexStmt':
    case 'ViewStmt': {
      walk.uncacheable ??= 'DDL';
      // CREATE TABLE … AS runs its query: a function in it may write.
      if (type === 'CreateTableAsStmt') visit(body.query, walk);
      const relation = (body.relation ?? (body.into as Node | undefined)?.rel ?? body.view) as
        Node | undefined;
      if (relation?.relname !== undefined) walk.writes.add(String(relation.relname));
      else walk.writesAll = true;
      return;
    }
    case 'ReturnStmt':
      // RETURN expr: the body of a SQL function written in the standard form.
      visit(body, walk);
      return;
    case 'DeclareCursorStmt':
      // The cursor's query runs at FETCH; what it calls counts now.
      walk.uncacheable ??= 'DeclareCursor';
      visit(body.query, walk);
      return;
    default:
      walk.uncacheable ??= type.replace(/Stmt$/, '');
      // CALL, DO, DROP, GRANT, EXECUTE and every statement we do not model may change anything.
      if (!HARMLESS_STATEMENTS.has(type)) walk.writesAll = true;
      return;
  }
}

// Walks any node: collects relations, writing statements (also inside CTEs), functions and locks.
function visit(value: unknown, walk: Walk): void {
  if (Array.isArray(value)) {
    for (const item of value) visit(item, walk);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(value as Node)) {
    if (child === null || typeof child !== 'object') continue;
    const node = child as Node;
    switch (key) {
      case 'RangeVar':
        walk.reads.push({
          schema: typeof node.schemaname === 'string' ? node.schemaname : null,
          name: String(node.relname),
        });
        if (isSystemRelation(node))
          walk.uncacheable ??= 'reads a system catalog or statistics view';
        break;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt': {
        const relation = node[WRITE_STATEMENTS[key] as string] as Node;
        walk.writes.add(String(relation.relname));
        walk.uncacheable ??= 'writes';
        break;
      }
      case 'TruncateStmt':
        for (const item of (node.relations as Node[]) ?? []) {
          walk.writes.add(String((item.RangeVar as Node).relname));
        }
        walk.uncacheable ??= 'writes';
        continue;
      case 'CopyStmt':
        if (node.is_from === true && node.relation !== undefined) {
          walk.writes.add(String((node.relation as Node).relname));
          walk.uncacheable ??= 'writes';
          continue;
        }
        break;
      case 'RangeTableSample':
        walk.uncacheable ??= 'TABLESAMPLE returns different rows each time';
        break;
      case 'lockingClause':
        walk.uncacheable ??= 'has a locking clause';
        break;
      case 'FuncCall':
        funcCall(node, walk);
        break;
      case 'SQLValueFunction':
        if (/DATE|TIME/.test(String(node.op))) walk.uncacheable ??= 'reads the clock';
        break;
      case 'A_Const': {
        const text = (node.sval as Node | undefined)?.sval;
        if (typeof text === 'string' && /\b(now|today|tomorrow|yesterday)\b/i.test(text)) {
          walk.uncacheable ??= 'reads the clock';
        }
        break;
      }
    }
    visit(node, walk);
  }
}

function funcCall(node: Node, walk: Walk): void {
  const parts = ((node.funcname as Node[]) ?? []).map((p) => String((p.String as Node).sval));
  const schema = parts.length > 1 ? parts[parts.length - 2] : null;
  const exact = parts[parts.length - 1] ?? '';
  const name = exact.toLowerCase();
  const builtin = schema === null || schema === 'pg_catalog';
  if (builtin && name === 'set_config') affects(walk, 'taints');
  if (builtin && isCacheableFunction(name)) return;
  walk.uncacheable ??= `calls ${parts.join('.')}()`;
  // A function we do not know may write (a PL/pgSQL function can do anything) until the origin's
  // catalog says what it does (see function-effects.ts). Every schema's function of that name counts.
  if (!builtin || !isKnownNonWritingFunction(name)) walk.calls.add(exact);
}

function isSystemRelation(node: Node): boolean {
  const schema = node.schemaname;
  if (schema === 'pg_catalog' || schema === 'information_schema') return true;
  return schema === undefined && String(node.relname).startsWith('pg_');
}
