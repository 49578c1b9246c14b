// What a SQL text does, from the real Postgres parser (libpg-query): may its result be cached,
// which tables does it read, which does it write, and does it change session settings.
import { fingerprintSync, loadModule, parseSync } from 'libpg-query';
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
  /** The statement changes session state that can change later results (SET, set_config, DISCARD). */
  session: 'none' | 'set' | 'reset';
  /** The template fingerprint (same for texts that differ only in constants). */
  fingerprint: string;
}

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
  uncacheable: string | null;
  setsSession: boolean;
}

const WRITE_STATEMENTS: Record<string, string> = {
  InsertStmt: 'relation',
  UpdateStmt: 'relation',
  DeleteStmt: 'relation',
  MergeStmt: 'relation',
};

// Session-level statements that neither read nor write tables.
const HARMLESS_STATEMENTS = new Set([
  'TransactionStmt',
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
  'LoadStmt',
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
  if (stmts.length === 0) return { ...unknown('empty query', fingerprint), writes: [] };
  const walk: Walk = {
    reads: [],
    writes: new Set(),
    writesAll: false,
    uncacheable: stmts.length > 1 ? 'several statements' : null,
    setsSession: false,
  };
  let session: Analysis['session'] = 'none';
  for (const { stmt } of stmts) {
    if (stmt === undefined) continue;
    const effect = statement(stmt, walk);
    if (effect === 'reset') session = 'reset';
    else if (effect === 'set' && session === 'none') session = 'set';
  }
  if (walk.setsSession && session === 'none') session = 'set';
  // CTE names stay among the reads: a CTE may shadow a real table in one scope and not in another,
  // and counting a name too many only means an extra invalidation, never a stale hit.
  const seen = new Set<string>();
  const reads = walk.reads.filter((t) => {
    const key = `${t.schema ?? ''}.${t.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return {
    cacheable: walk.uncacheable === null,
    reason: walk.uncacheable,
    reads,
    writes: walk.writesAll ? 'all' : [...walk.writes],
    session,
    fingerprint,
  };
}

function unknown(reason: string, fingerprint: string): Analysis {
  return { cacheable: false, reason, reads: [], writes: 'all', session: 'none', fingerprint };
}

function statement(stmt: Node, walk: Walk): 'none' | 'set' | 'reset' {
  const [type, body] = Object.entries(stmt)[0] as [string, Node];
  switch (type) {
    case 'SelectStmt':
      if (body.intoClause !== undefined) {
        walk.uncacheable ??= 'SELECT INTO creates a table';
        const into = (body.intoClause as Node).rel as Node;
        walk.writes.add(String(into.relname));
      }
      visit(body, walk);
      return 'none';
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
    case 'TruncateStmt':
    case 'CopyStmt':
      visit(stmt, walk);
      if (type === 'CopyStmt' && body.is_from !== true) walk.uncacheable ??= 'COPY TO';
      return 'none';
    case 'VariableSetStmt':
      walk.uncacheable ??= 'SET';
      return body.kind === 'VAR_RESET_ALL' ? 'reset' : 'set';
    case 'DiscardStmt':
      walk.uncacheable ??= 'DISCARD';
      return 'reset';
    case 'ExplainStmt': {
      walk.uncacheable ??= 'EXPLAIN';
      const options = JSON.stringify(body.options ?? []);
      // EXPLAIN ANALYZE runs the statement.
      if (/"analyze"/i.test(options)) statement(body.query as Node, walk);
      return 'none';
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
      return 'none';
    }
    case 'DeclareCursorStmt':
      // The cursor's query runs at FETCH; what it calls counts now.
      walk.uncacheable ??= 'DeclareCursor';
      visit(body.query, walk);
      return 'none';
    default:
      walk.uncacheable ??= type.replace(/Stmt$/, '');
      // CALL, DO, DROP, GRANT, EXECUTE and every statement we do not model may change anything.
      if (!HARMLESS_STATEMENTS.has(type)) walk.writesAll = true;
      return 'none';
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
  const name = (parts[parts.length - 1] ?? '').toLowerCase();
  const builtin = schema === null || schema === 'pg_catalog';
  if (builtin && name === 'set_config') walk.setsSession = true;
  if (builtin && isCacheableFunction(name)) return;
  walk.uncacheable ??= `calls ${parts.join('.')}()`;
  // A function we do not know may write (a PL/pgSQL function can do anything).
  if (!builtin || !isKnownNonWritingFunction(name)) walk.writesAll = true;
}

function isSystemRelation(node: Node): boolean {
  const schema = node.schemaname;
  if (schema === 'pg_catalog' || schema === 'information_schema') return true;
  return schema === undefined && String(node.relname).startsWith('pg_');
}
