// Statements on the hottest paths, built and compiled by Kysely once instead of on every call.
// Building a query and compiling it to SQL cost more of the server's CPU than Postgres spent
// answering a primary-key read: about a tenth of the token endpoint's time. A statement here is
// built once with marker values in place of its parameters; each call then only puts the caller's
// values where the markers ended up. Every store speaks the Postgres dialect, so one compiled
// text serves them all.
import { CompiledQuery, type QueryResult } from 'kysely';
import type { Db } from './store.ts';

const MARKER = '\u0000edgegate-parameter:';

/** Stands in for a parameter while the statement is built. */
export type Param<P> = <K extends keyof P & string>(name: K) => P[K];

interface Compiled {
  sql: string;
  /** For each placeholder, the name of a parameter, or a constant the statement fixed. */
  slots: ({ name: string } | { constant: unknown })[];
}

/**
 * `build(db, param)` returns the compiled statement, with `param('name')` wherever a value of the
 * caller's goes (as a whole value: a marker inside a larger string or JSON is refused). The result
 * runs the statement on any store with the values in `params`.
 */
export function compiledOnce<P extends Record<string, unknown>, R>(
  build: (db: Db, param: Param<P>) => CompiledQuery<R>,
): (db: Db, params: P) => Promise<QueryResult<R>> {
  let compiled: Compiled | undefined;
  return async (db, params) => {
    compiled ??= compile(db, build);
    const values = compiled.slots.map((slot) =>
      'name' in slot ? (params[slot.name] ?? null) : slot.constant,
    );
    return (await db.executeQuery(CompiledQuery.raw(compiled.sql, values))) as QueryResult<R>;
  };
}

function compile<P, R>(db: Db, build: (db: Db, param: Param<P>) => CompiledQuery<R>): Compiled {
  const query = build(db, ((name: string) => MARKER + name) as Param<P>);
  const slots = query.parameters.map((value) => {
    if (typeof value === 'string' && value.startsWith(MARKER)) {
      return { name: value.slice(MARKER.length) };
    }
    if (typeof value === 'string' && value.includes(MARKER)) {
      throw new Error(`a parameter of a compiled-once statement was not passed whole: ${value}`);
    }
    return { constant: value };
  });
  return { sql: query.sql, slots };
}
