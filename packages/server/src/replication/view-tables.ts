// The tables under each view of an origin, read from its catalog with the replication credential,
// so the edge can tag a read through a view with them: a write to any table under a view (seen on
// the change stream or carried by the edge) then makes the view's cached reads stale. Names are the
// edge's: bare on Postgres, lower-case `database.table` on MySQL and MariaDB. A view over a view
// counts every table below it. Over-counting (two schemas' tables of one bare name, a column that
// looks like a table in a MariaDB definition) only costs misses; under-counting would be a stale
// hit, so what cannot be read is left to the TTL and said in the docs.
import type pg from 'pg';
import type mysql from 'mysql2/promise';

export type ViewTables = Record<string, string[]>;

/** Each view (by name) with the relations it reads directly: tables, and views to expand. */
export type DirectReads = Map<string, Set<string>>;

/** Every view's tables, views under views expanded; sorted, so equal catalogs compare equal. */
export function closeOverViews(direct: DirectReads): ViewTables {
  const out: ViewTables = {};
  for (const view of [...direct.keys()].sort()) {
    // Depth first from each view on its own (a cycle, from two schemas' views of one bare name,
    // ends where it started; views number in the hundreds at most).
    const seen = new Set<string>([view]);
    const stack = [view];
    while (stack.length > 0) {
      for (const read of direct.get(stack.pop()!) ?? []) {
        if (seen.has(read)) continue;
        seen.add(read);
        // A view under this one counts by name too (a write through it names it).
        if (direct.has(read)) stack.push(read);
      }
    }
    seen.delete(view);
    if (seen.size > 0) out[view] = [...seen].sort();
  }
  return out;
}

/** Postgres: a view's rewrite rule depends on every relation its query reads (pg_depend). */
export async function readPostgresViewTables(client: pg.Client): Promise<ViewTables> {
  const { rows } = await client.query<{ view: string; read: string }>(
    `SELECT DISTINCT v.relname AS view, r.relname AS read
       FROM pg_catalog.pg_class v
       JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
       JOIN pg_catalog.pg_rewrite w ON w.ev_class = v.oid
       JOIN pg_catalog.pg_depend d
         ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = w.oid
        AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> v.oid
       JOIN pg_catalog.pg_class r ON r.oid = d.refobjid
      WHERE v.relkind = 'v'
        AND r.relkind IN ('r', 'p', 'v', 'f', 'm')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%'`,
  );
  const direct: DirectReads = new Map();
  for (const row of rows) {
    let reads = direct.get(row.view);
    if (reads === undefined) direct.set(row.view, (reads = new Set()));
    reads.add(row.read);
  }
  return closeOverViews(direct);
}

const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];
// A qualified name in a stored definition: `schema`.`name` (backquotes doubled inside).
const QUALIFIED = /`((?:[^`]|``)+)`\s*\.\s*`((?:[^`]|``)+)`/g;

/**
 * MySQL and MariaDB store a view's definition with every table qualified (`db`.`t`); each
 * qualified name that is a table or view of the server counts (MariaDB has no VIEW_TABLE_USAGE).
 * The user needs SHOW VIEW (or to be the view's definer) to see a definition: a view whose
 * definition comes back empty is reported in `unreadable`.
 */
export async function readMysqlViewTables(
  connection: mysql.Connection,
): Promise<{ viewTables: ViewTables; unreadable: string[] }> {
  const placeholders = SYSTEM_SCHEMAS.map(() => '?').join(', ');
  const [relations] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES
      WHERE TABLE_SCHEMA NOT IN (${placeholders})`,
    SYSTEM_SCHEMAS,
  );
  const known = new Set(relations.map((row) => `${String(row.s)}.${String(row.t)}`.toLowerCase()));
  const [views] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, VIEW_DEFINITION AS d FROM information_schema.VIEWS
      WHERE TABLE_SCHEMA NOT IN (${placeholders})`,
    SYSTEM_SCHEMAS,
  );
  const direct: DirectReads = new Map();
  const unreadable: string[] = [];
  for (const row of views) {
    const view = `${String(row.s)}.${String(row.t)}`.toLowerCase();
    const definition = String(row.d ?? '');
    if (definition === '') {
      unreadable.push(view);
      continue;
    }
    const reads = new Set<string>();
    for (const match of definition.matchAll(QUALIFIED)) {
      const name = `${match[1]!.replaceAll('``', '`')}.${match[2]!.replaceAll('``', '`')}`;
      if (known.has(name.toLowerCase())) reads.add(name.toLowerCase());
    }
    direct.set(view, reads);
  }
  return { viewTables: closeOverViews(direct), unreadable: unreadable.sort() };
}
