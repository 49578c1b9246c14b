// What a user function may write, from its definition as the origin's catalog holds it
// (pg_get_functiondef): SQL bodies go through the statement analysis, PL/pgSQL bodies through
// libpg-query's PL/pgSQL parser, every SQL text in them analysed likewise. Anything the edge cannot
// read through (another language, dynamic EXECUTE, a body that does not parse) may write anything.
import { createHash } from 'node:crypto';
import { parsePlPgSQLSync, parseSync } from 'libpg-query';
import { analyzeBodyEffects, parsedEffects, type StatementEffects } from './analyze.ts';

/** One function of the origin's catalog, as the state probe reads it. */
export interface CatalogFunction {
  name: string;
  oid: number;
  /** The transaction that wrote this version of its pg_proc row: any change gives a new one. */
  xmin: string;
  language: string;
  /** pg_get_functiondef, or null (an aggregate, or a definition too long to ship). */
  definition: string | null;
}

type Node = Record<string, unknown>;

const ALL: StatementEffects = { writes: 'all', calls: [] };

// PL/pgSQL expressions are stored in the form the parser was asked for (RawParseMode).
const PARSE_DEFAULT = 0;
const PARSE_EXPRESSION = 2;
const PARSE_ASSIGN = [3, 4, 5];

/** What one function's own code writes and which functions it calls; pure. */
export function functionEffects(fn: CatalogFunction): StatementEffects {
  if (fn.definition === null) return ALL;
  switch (fn.language) {
    case 'sql':
      return sqlFunctionEffects(fn.definition);
    case 'plpgsql':
      return plpgsqlEffects(fn.definition);
    default:
      // C, internal, plpython…: the edge cannot see what they do.
      return ALL;
  }
}

function sqlFunctionEffects(definition: string): StatementEffects {
  let create: Node | undefined;
  try {
    const stmts = (parseSync(definition) as { stmts?: { stmt?: Node }[] }).stmts ?? [];
    create = stmts.length === 1 ? (stmts[0]?.stmt?.CreateFunctionStmt as Node) : undefined;
  } catch {
    return ALL;
  }
  if (create === undefined) return ALL;
  // BEGIN ATOMIC … END or RETURN expr: parsed with the definition.
  if (create.sql_body !== undefined) return parsedEffects(flattenLists(create.sql_body));
  for (const option of (create.options as Node[] | undefined) ?? []) {
    const element = option.DefElem as Node;
    if (element.defname !== 'as') continue;
    const parts = ((element.arg as Node).List as Node).items as Node[];
    const body = (parts[0]?.String as Node | undefined)?.sval;
    return typeof body === 'string' ? analyzeBodyEffects(body) : ALL;
  }
  return ALL;
}

function flattenLists(value: unknown): unknown[] {
  if (Array.isArray(value)) return value.flatMap(flattenLists);
  const node = value as Node;
  if (node.List !== undefined) return flattenLists((node.List as Node).items ?? []);
  return [node];
}

function plpgsqlEffects(definition: string): StatementEffects {
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(definition);
  } catch {
    return ALL;
  }
  const writes = new Set<string>();
  const calls = new Set<string>();
  let all = false;
  const add = (effects: StatementEffects): void => {
    if (effects.writes === 'all') all = true;
    else for (const table of effects.writes) writes.add(table);
    for (const name of effects.calls) calls.add(name);
  };
  const walk = (value: unknown): void => {
    if (all || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) walk(item);
      return;
    }
    for (const [key, child] of Object.entries(value as Node)) {
      // EXECUTE, FOR … IN EXECUTE, OPEN … FOR EXECUTE, RETURN QUERY EXECUTE: text built at run time.
      if (key.startsWith('PLpgSQL_stmt_dyn') || key === 'dynquery') {
        all = true;
        return;
      }
      if (key === 'PLpgSQL_expr') add(expressionEffects(child as Node));
      else walk(child);
    }
  };
  walk(tree);
  return all ? ALL : { writes: [...writes], calls: [...calls] };
}

// Each SQL text of a PL/pgSQL body, analysed like a statement of its own: a statement as written,
// an expression as SELECT expr, an assignment `target := expr` as its target and its expression.
function expressionEffects(expr: Node): StatementEffects {
  const query = expr.query;
  const mode = expr.parseMode ?? PARSE_DEFAULT;
  if (typeof query !== 'string') return ALL;
  if (mode === PARSE_DEFAULT) return analyzeBodyEffects(query);
  if (mode === PARSE_EXPRESSION) return analyzeBodyEffects(`SELECT ${query}`);
  if (typeof mode === 'number' && PARSE_ASSIGN.includes(mode)) {
    const at = query.indexOf(':=');
    const split = at >= 0 ? at : query.indexOf('=');
    if (split < 0) return ALL;
    return mergeEffects([
      analyzeBodyEffects(`SELECT ${query.slice(0, split)}`),
      analyzeBodyEffects(`SELECT ${query.slice(split + (at >= 0 ? 2 : 1))}`),
    ]);
  }
  return ALL;
}

function mergeEffects(list: StatementEffects[]): StatementEffects {
  if (list.some((effects) => effects.writes === 'all')) return ALL;
  return {
    writes: [...new Set(list.flatMap((effects) => effects.writes as string[]))],
    calls: [...new Set(list.flatMap((effects) => effects.calls))],
  };
}

const MAX_MEMO = 10_000;

/**
 * Analyses of function definitions, remembered by a hash of the language and definition (the
 * analysis depends on nothing else), and the functions a statement's calls reach.
 */
export class FunctionEffectMemo {
  readonly #byDefinition = new Map<string, StatementEffects>();

  effects(fn: CatalogFunction): StatementEffects {
    if (fn.definition === null) return ALL;
    const hash = createHash('sha256')
      .update(fn.language)
      .update('\0')
      .update(fn.definition)
      .digest('base64');
    let effects = this.#byDefinition.get(hash);
    if (effects === undefined) {
      effects = functionEffects(fn);
      if (this.#byDefinition.size >= MAX_MEMO) this.#byDefinition.clear();
      this.#byDefinition.set(hash, effects);
    }
    return effects;
  }

  /**
   * What calling the functions named `calls` may write, given every function of the catalog with
   * a name they reach (`catalog`): every overload of every schema counts, nested calls included
   * (a cycle adds nothing new). A name with no function in `catalog` may write anything.
   */
  resolve(calls: readonly string[], catalog: readonly CatalogFunction[]): string[] | 'all' {
    const byName = new Map<string, CatalogFunction[]>();
    for (const fn of catalog) {
      const list = byName.get(fn.name) ?? [];
      list.push(fn);
      byName.set(fn.name, list);
    }
    const writes = new Set<string>();
    const seen = new Set<string>();
    const pending = [...calls];
    for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
      if (seen.has(name)) continue;
      seen.add(name);
      const functions = byName.get(name);
      if (functions === undefined) return 'all';
      for (const fn of functions) {
        const effects = this.effects(fn);
        if (effects.writes === 'all') return 'all';
        for (const table of effects.writes) writes.add(table);
        pending.push(...effects.calls);
      }
    }
    return [...writes];
  }

  /** The names `calls` reach through definitions already analysed (what the probe should read). */
  reach(
    calls: readonly string[],
    known: ReadonlyMap<string, readonly CatalogFunction[]>,
  ): string[] {
    const seen = new Set<string>();
    const pending = [...calls];
    for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
      if (seen.has(name)) continue;
      seen.add(name);
      for (const fn of known.get(name) ?? []) {
        const effects = this.effects(fn);
        pending.push(...effects.calls);
      }
    }
    return [...seen];
  }
}

/** What a probe sent behind a statement checks: the names it reads and what was known of them. */
export interface FunctionCheck {
  scope: string;
  calls: readonly string[];
  names: string[];
  /** Each name's catalog rows (oid:xmin) as the last probe answered before the statement saw them. */
  before: Map<string, string | undefined>;
}

const MAX_NAMES_PER_SCOPE = 10_000;

/**
 * What user functions may write, learned from the origin's catalog by the probes that follow
 * statements calling them. A statement may rely on what was learned only when a probe answered
 * before it was sent and the probe sent right behind it saw the same catalog rows (same oid, same
 * xmin) for every function its calls reach: nothing was redefined in between, so the definitions
 * analysed are the ones that ran.
 */
export class LearnedFunctions {
  readonly memo = new FunctionEffectMemo();
  // Per origin database: function name → its catalog rows, as the last probe answered read them.
  readonly #scopes = new Map<string, Map<string, CatalogFunction[]>>();

  /** Before the probe is sent, right behind the statement. */
  plan(scope: string, calls: readonly string[]): FunctionCheck {
    const known = this.#scopes.get(scope) ?? new Map<string, CatalogFunction[]>();
    const names = this.memo.reach(calls, known);
    const before = new Map<string, string | undefined>();
    for (const name of names) {
      const rows = known.get(name);
      before.set(name, rows === undefined ? undefined : signature(rows));
    }
    return { scope, calls, names, before };
  }

  /** Whether the probe may confirm a learned effect (else the statement writes everything). */
  mayRely(check: FunctionCheck): boolean {
    for (const seen of check.before.values()) if (seen === undefined) return false;
    return true;
  }

  /**
   * The probe's answer (null when it failed or could not read every function): what the
   * statement's calls may write. Remembers the rows for the next statements.
   */
  settle(check: FunctionCheck, catalog: readonly CatalogFunction[] | null): string[] | 'all' {
    if (catalog === null) return 'all';
    let scope = this.#scopes.get(check.scope);
    if (scope === undefined || scope.size >= MAX_NAMES_PER_SCOPE) {
      scope = new Map();
      this.#scopes.set(check.scope, scope);
    }
    let unchanged = this.mayRely(check);
    for (const name of check.names) {
      const rows = catalog.filter((fn) => fn.name === name);
      if (signature(rows) !== check.before.get(name)) unchanged = false;
      scope.set(name, rows);
    }
    return unchanged ? this.memo.resolve(check.calls, catalog) : 'all';
  }
}

/**
 * What a probe that ran before a statement (`earlier`, on the same connection, ahead of it) read of
 * the statement's functions counts as seen before it, where nothing was known when it was sent.
 */
export function carryForward(
  earlier: FunctionCheck,
  catalog: readonly CatalogFunction[],
  later: FunctionCheck,
): void {
  for (const name of earlier.names) {
    if (later.before.has(name) && later.before.get(name) === undefined) {
      later.before.set(name, signature(catalog.filter((fn) => fn.name === name)));
    }
  }
}

function signature(rows: readonly CatalogFunction[]): string {
  return rows
    .map((fn) => `${fn.oid}:${fn.xmin}`)
    .sort()
    .join(',');
}
