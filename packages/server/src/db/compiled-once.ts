// Statements on the hottest paths, built and compiled by Kysely once instead of on every call.
// Building a query and compiling it to SQL cost more of the server's CPU than Postgres spent
// answering a primary-key read: about a tenth of the token endpoint's time. A statement here is
// built once with marker values in place of its parameters; each call then only puts the caller's
// values where the markers ended up. Every store speaks the Postgres dialect, so one compiled
// text serves them all.
import { CompiledQuery, type QueryResult } from 'kysely';
import type { Db } from './store.ts';

const MARKER = 'edgegate-parameter:';
const MARKER_PREFIX = `\u0000${MARKER}`;

/**
 * Stands in for a parameter while the statement is built. Typed as the value for the query
 * builder's sake, it is really a marker string: pass it whole, as a value (not inside a string,
 * an array, JSON or an identifier), or the statement is refused when it is compiled.
 */
export type Param<P> = <K extends keyof P & string>(name: K) => P[K];

interface Compiled {
  sql: string;
  /** For each placeholder, the name of a parameter, or a constant the statement fixed. */
  slots: ({ name: string } | { constant: unknown })[];
}

/**
 * `build(db, param)` returns the compiled statement, with `param('name')` wherever a value of the
 * caller's goes. The result runs the statement on any store with the values in `params`; every
 * name the statement uses must be in `params` (`undefined` and `null` both bind NULL: a column is
 * never left to its DEFAULT the way Kysely's `values()` does for `undefined`).
 */
export function compiledOnce<P extends Record<string, unknown>, R>(
  build: (db: Db, param: Param<P>) => CompiledQuery<R>,
): (db: Db, params: P) => Promise<QueryResult<R>> {
  let compiled: Compiled | undefined;
  return async (db, params) => {
    compiled ??= compile(db, build);
    const values = compiled.slots.map((slot) => {
      if (!('name' in slot)) return slot.constant;
      if (!Object.hasOwn(params, slot.name)) {
        throw new Error(`a compiled-once statement was run without its parameter "${slot.name}"`);
      }
      return params[slot.name] ?? null;
    });
    return (await db.executeQuery(CompiledQuery.raw(compiled.sql, values))) as QueryResult<R>;
  };
}

function compile<P, R>(db: Db, build: (db: Db, param: Param<P>) => CompiledQuery<R>): Compiled {
  const issued = new Map<string, string>();
  const param = ((name: string) => {
    const marker = MARKER_PREFIX + name;
    issued.set(marker, name);
    return marker;
  }) as Param<P>;
  const query = build(db, param);
  const misplaced = (where: string) =>
    new Error(`a parameter of a compiled-once statement was not passed whole (${where})`);
  if (query.sql.includes(MARKER)) throw misplaced('it is in the SQL text');
  const slots = query.parameters.map((value) => {
    const name = typeof value === 'string' ? issued.get(value) : undefined;
    if (name !== undefined) return { name };
    // Catches a marker in a longer string, an array, an object, and JSON text (which escapes NUL).
    if ((JSON.stringify(value) ?? '').includes(MARKER)) throw misplaced(`in ${String(value)}`);
    return { constant: value };
  });
  return { sql: query.sql, slots };
}
