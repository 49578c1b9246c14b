// What a MySQL/MariaDB text does, from a real grammar (node-sql-parser, MariaDB dialect, then MySQL's):
// may its result be cached, which tables does it read and write, and does it change the session.
// The answer has the Postgres edge's `Analysis` shape, plus what only MySQL needs (see MysqlAnalysis).
import nodeSqlParser from 'node-sql-parser';
import type { Analysis, TableRef } from '../../pg/sql/analyze.ts';
import {
  isCacheableFunction,
  isKnownNonWritingFunction,
  isNiladicFunction,
  isSequenceWriter,
} from './functions.ts';
import { templateOf } from './template.ts';
import type { LexOptions } from './template.ts';

export type { TableRef };

// `effects` (user functions' writes learned from the catalog) is the Postgres edge's alone for now.
export interface MysqlAnalysis extends Omit<Analysis, 'session' | 'writes' | 'effects'> {
  /**
   * Tables written, as `database.table` when the text qualifies them and `table` when it does not
   * (those resolve against the current database later); 'all' when we cannot see what is written.
   */
  writes: string[] | 'all';
  /**
   * 'set': the statement changes session state that can change later results (SET, SET NAMES, USE,
   * an assigned user variable). 'unknown': it calls code we cannot see (a stored function or
   * procedure) that may change the session unseen. MySQL has no statement that resets it all.
   */
  session: 'none' | 'set' | 'unknown';
  /**
   * The statement creates a temporary table, which hides any table of its name from this session
   * alone and which no probe can read: the session may share no result from then on.
   */
  temporaryTable?: true;
  /** The text with constants replaced by `?` (see template.ts); `fingerprint` is its hash. */
  template: string;
}

export type AnalyzeOptions = LexOptions;

/** The databases whose tables describe the server itself: never cached. */
export const SYSTEM_SCHEMAS = new Set(['mysql', 'information_schema', 'performance_schema', 'sys']);

export function isSystemSchema(schema: string): boolean {
  return SYSTEM_SCHEMAS.has(schema.toLowerCase());
}

const parser = new nodeSqlParser.Parser();
// MariaDB's grammar first; MySQL's knows some syntax MariaDB shares but its grammar lacks
// (LOCK IN SHARE MODE, CREATE TABLE … AS SELECT).
const DIALECTS = [{ database: 'MariaDB' }, { database: 'MySQL' }];

type Node = Record<string, unknown>;

interface Walk {
  reads: TableRef[];
  writes: Set<string>;
  writesAll: boolean;
  uncacheable: string | null;
  session: MysqlAnalysis['session'];
  temporaryTable?: true;
}

// Statements the grammar lacks whose whole syntax is small enough to recognise exactly.
const SET_CHARSET =
  /^SET\s+(?:NAMES|CHARACTER\s+SET|CHARSET)\s+(?:'[\w-]+'|"[\w-]+"|`?[\w-]+`?)(?:\s+COLLATE\s+(?:'\w+'|"\w+"|`?\w+`?))?\s*;?$/i;
const SET_TRANSACTION = /^SET\s+(?:(?:SESSION|GLOBAL|LOCAL)\s+)?TRANSACTION\s+[\w\s,]+;?$/i;
const SAVEPOINTS =
  /^(?:SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK\s+(?:WORK\s+)?TO\s+(?:SAVEPOINT\s+)?)\s*`?\w+`?\s*;?$/i;

// The grammar costs tens of µs per token here, more on long lists: a template past
// MAX_TEMPLATE_CHARS (constants already replaced, so long values are no cost) would hold the edge's
// thread for seconds, so it is not parsed.
export const TOO_LONG_TO_PARSE = 'the text is too long to parse';

export function analyzeMysql(sql: string, options: AnalyzeOptions = {}): MysqlAnalysis {
  const lexed = templateOf(sql, options);
  const base = { template: lexed.template, fingerprint: lexed.fingerprint };
  if (lexed.template === '' || lexed.template === ';') {
    return {
      ...base,
      cacheable: false,
      reason: 'empty query',
      reads: [],
      writes: [],
      session: 'none',
    };
  }
  const text = lexed.executableText.trim();
  if (lexed.truncated) {
    return {
      ...base,
      cacheable: false,
      reason: TOO_LONG_TO_PARSE,
      reads: [],
      writes: 'all',
      session: 'unknown',
    };
  }
  let asts: Node[] | null = null;
  if (!lexed.unterminated) {
    for (const dialect of DIALECTS) {
      try {
        const ast = parser.astify(text, dialect) as unknown as Node | Node[];
        asts = Array.isArray(ast) ? ast : [ast];
        break;
      } catch {
        // Try the next grammar.
      }
    }
  }
  if (asts === null) return recognise(text, base);
  const walk: Walk = {
    reads: [],
    writes: new Set(),
    writesAll: false,
    uncacheable: asts.length > 1 ? 'several statements' : null,
    session: 'none',
  };
  for (const ast of asts) statement(ast, walk);
  if (lexed.hasExecutableComment) walk.uncacheable ??= 'executable comment';
  if (options.noBackslashEscapes === true && text.includes('\\')) {
    // The grammar always reads backslash escapes; under NO_BACKSLASH_ESCAPES the server may not
    // see the same tables, so what we saw decides nothing.
    walk.uncacheable ??= 'backslash under NO_BACKSLASH_ESCAPES';
    walk.writesAll = true;
  }
  const seen = new Set<string>();
  const reads = walk.reads.filter((t) => {
    const key = `${t.schema ?? ''}.${t.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return {
    ...base,
    cacheable: walk.uncacheable === null,
    reason: walk.uncacheable,
    reads,
    writes: walk.writesAll ? 'all' : [...walk.writes],
    session: walk.session,
    ...(walk.temporaryTable === true ? { temporaryTable: true as const } : {}),
  };
}

// A text both grammars refuse: a few statements are known exactly, the rest may do anything.
function recognise(text: string, base: { template: string; fingerprint: string }): MysqlAnalysis {
  const none = { ...base, cacheable: false, reads: [], writes: [] };
  if (SET_CHARSET.test(text)) return { ...none, reason: 'SET NAMES', session: 'set' };
  if (SET_TRANSACTION.test(text)) return { ...none, reason: 'SET TRANSACTION', session: 'none' };
  if (SAVEPOINTS.test(text)) return { ...none, reason: 'transaction control', session: 'none' };
  // CREATE OR REPLACE TEMPORARY TABLE, PREPARE … FROM '… TEMPORARY …': the word is enough.
  const temporary = /\bTEMPORARY\b/i.test(text) ? { temporaryTable: true as const } : {};
  return {
    ...none,
    ...temporary,
    reason: 'the text does not parse',
    writes: 'all',
    session: 'unknown',
  };
}

function statement(ast: Node, walk: Walk): void {
  const type = String(ast.type);
  switch (type) {
    case 'select':
      select(ast, walk);
      return;
    case 'insert':
    case 'replace':
      writeTables(ast.table, walk);
      visit(ast, walk);
      return;
    case 'update':
    case 'delete':
      // Multi-table forms may write any table they name; aliases resolve to their table.
      writeTables(ast.table, walk, aliasesOf([ast.table, ast.from]));
      visit(ast, walk);
      return;
    case 'truncate':
      writeTables(ast.name, walk);
      walk.uncacheable ??= 'writes';
      return;
    case 'load_data':
      writeTables([ast.table], walk);
      return;
    case 'create':
    case 'alter':
    case 'drop':
    case 'rename':
      ddl(type, ast, walk);
      return;
    case 'set':
      walk.uncacheable ??= 'SET';
      walk.session = mergeSession(walk.session, 'set');
      visit(ast.expr, walk);
      return;
    case 'use':
      walk.uncacheable ??= 'USE';
      walk.session = mergeSession(walk.session, 'set');
      return;
    case 'call':
      walk.uncacheable ??= 'CALL';
      walk.writesAll = true;
      walk.session = 'unknown';
      return;
    case 'transaction':
    case 'show':
    case 'desc':
    case 'lock':
    case 'unlock':
      walk.uncacheable ??= type === 'transaction' ? 'transaction control' : type.toUpperCase();
      return;
    case 'explain':
      // EXPLAIN does not run its statement; MariaDB's ANALYZE, which does, is not parsed here.
      walk.uncacheable ??= 'EXPLAIN';
      return;
    default:
      // GRANT, REVOKE, and every statement we do not model may change what anyone reads.
      walk.uncacheable ??= type.toUpperCase();
      walk.writesAll = true;
      walk.session = mergeSession(walk.session, 'unknown');
  }
}

function select(ast: Node, walk: Walk): void {
  for (
    let part: Node | null = ast;
    part !== null;
    part = (part._next as Node | undefined) ?? null
  ) {
    const into = part.into as Node | null | undefined;
    if (into?.position != null) {
      walk.uncacheable ??= 'SELECT … INTO';
      if (into.keyword === 'var') walk.session = mergeSession(walk.session, 'set');
    }
    const options = (part.options as unknown[] | null) ?? [];
    if (options.some((o) => String(o).toUpperCase() === 'SQL_CALC_FOUND_ROWS')) {
      walk.uncacheable ??= 'SQL_CALC_FOUND_ROWS sets FOUND_ROWS()';
    }
  }
  visit(ast, walk);
}

function ddl(type: string, ast: Node, walk: Walk): void {
  walk.uncacheable ??= 'DDL';
  if (type === 'create' && ast.temporary != null) {
    walk.temporaryTable = true;
    walk.session = mergeSession(walk.session, 'set');
  }
  const keyword = String(ast.keyword ?? '').toLowerCase();
  if (type === 'rename') {
    for (const pair of (ast.table as Node[][] | undefined) ?? []) writeTables(pair, walk);
  } else if (keyword === 'table' || keyword === 'view' || keyword === 'index' || type === 'alter') {
    const named = ast.table ?? ast.name ?? ast.view;
    if (named == null) walk.writesAll = true;
    else writeTables(Array.isArray(named) ? named : [named], walk);
  } else {
    walk.writesAll = true;
  }
  // CREATE TABLE … AS SELECT and CREATE VIEW … AS SELECT run or store a query: what it calls counts.
  visit(ast.query_expr, walk);
  visit(ast.select, walk);
}

function writeTables(value: unknown, walk: Walk, aliases = new Map<string, Node>()): void {
  const list = Array.isArray(value) ? value : [value];
  for (const item of list) {
    if (item === null || typeof item !== 'object') continue;
    let node = item as Node;
    if (typeof node.table !== 'string') {
      // `CREATE VIEW v` names the view as { db, view }.
      if (typeof node.view === 'string') node = { db: node.db, table: node.view };
      else {
        walk.writesAll = true;
        continue;
      }
    }
    const target = node.db == null ? (aliases.get(String(node.table)) ?? node) : node;
    const name = String(target.table);
    walk.writes.add(target.db == null ? name : `${String(target.db)}.${name}`);
  }
  walk.uncacheable ??= 'writes';
}

function aliasesOf(lists: unknown[]): Map<string, Node> {
  const aliases = new Map<string, Node>();
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const item of list as Node[]) {
      if (typeof item?.as === 'string' && typeof item.table === 'string')
        aliases.set(item.as, item);
    }
  }
  return aliases;
}

function mergeSession(
  current: MysqlAnalysis['session'],
  next: MysqlAnalysis['session'],
): MysqlAnalysis['session'] {
  if (current === 'unknown' || next === 'unknown') return 'unknown';
  return current === 'set' || next === 'set' ? 'set' : 'none';
}

// Walks any node: tables read, functions called, variables read or assigned.
function visit(value: unknown, walk: Walk): void {
  if (Array.isArray(value)) {
    for (const item of value) visit(item, walk);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const node = value as Node;
  if (typeof node.table === 'string' && 'db' in node && node.type !== 'column_ref') {
    const schema = typeof node.db === 'string' ? node.db : null;
    walk.reads.push({ schema, name: node.table });
    if (schema !== null && isSystemSchema(schema)) walk.uncacheable ??= 'reads a system schema';
  }
  switch (node.type) {
    case 'function':
      callFunction(node, walk);
      break;
    case 'aggr_func':
      if (!isCacheableFunction(String(node.name))) unknownFunction(String(node.name), walk);
      break;
    case 'column_ref':
      if (node.table == null && typeof node.column === 'string' && isNiladicFunction(node.column)) {
        walk.uncacheable ??= `calls ${node.column}`;
      }
      break;
    case 'var':
      walk.uncacheable ??=
        node.prefix === '@' ? 'reads a user variable' : 'reads a system variable';
      break;
    case 'assign':
      if ((node.left as Node | undefined)?.prefix === '@') {
        walk.uncacheable ??= 'assigns a user variable';
        walk.session = mergeSession(walk.session, 'set');
      }
      break;
  }
  if (node.locking_read != null && node.type === 'select')
    walk.uncacheable ??= 'has a locking clause';
  for (const child of Object.values(node)) {
    if (child !== null && typeof child === 'object') visit(child, walk);
  }
}

function callFunction(node: Node, walk: Walk): void {
  const name = node.name as Node | undefined;
  const parts = ((name?.name as Node[] | undefined) ?? []).map((part) => String(part.value));
  const schema = (name?.schema as Node | undefined)?.value;
  const fn = parts.join('.');
  if (schema == null && isCacheableFunction(fn)) return;
  if (schema == null && isSequenceWriter(fn)) {
    walk.uncacheable ??= `calls ${fn}()`;
    const sequence = ((node.args as Node | undefined)?.value as Node[] | undefined)?.[0];
    if (sequence?.type === 'column_ref' && typeof sequence.column === 'string') {
      walk.writes.add(
        sequence.table == null ? sequence.column : `${String(sequence.table)}.${sequence.column}`,
      );
    } else walk.writesAll = true;
    return;
  }
  if (schema == null && isKnownNonWritingFunction(fn)) {
    walk.uncacheable ??= `calls ${fn}()`;
    return;
  }
  unknownFunction(schema == null ? fn : `${String(schema)}.${fn}`, walk);
}

// A stored function (or a built-in we do not know) may read, write or set anything.
function unknownFunction(name: string, walk: Walk): void {
  walk.uncacheable ??= `calls ${name}()`;
  walk.writesAll = true;
  walk.session = 'unknown';
}
