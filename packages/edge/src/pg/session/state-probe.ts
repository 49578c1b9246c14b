// The query the edge runs on a session, right behind a statement that may have changed the
// session's state unseen, to learn that state: roles, the settings it changed, and the custom
// settings (app.tenant…) the database's code reads, which Postgres lists nowhere.
import type { ObservedState } from '../../core/session-key.ts';
import type { DataRowMessage } from '../protocol/messages.ts';
import type { CatalogFunction } from '../sql/function-effects.ts';
import { dataRowText } from '../protocol/decode-backend.ts';
import * as serialize from '../protocol/serializer.ts';

// Custom settings are placeholders that pg_settings does not show, so their names are taken from
// the code that can run inside a cached read: user functions, row-level security policies and
// views. Code that reads a setting by any other name (computed: 'app.' || k) makes the session
// private, as does a temporary schema (a temporary table can hide a table of the same name).
// Every function, operator and type is qualified: a session must not be able to shape its own
// reading through search_path.

// Everything initdb creates (pg_catalog, information_schema) has an oid below FirstNormalObjectId,
// and nothing created later gets one (the oid counter wraps around to it): an index range scan
// finds the user's functions and views without reading every built-in's row.
const FIRST_NORMAL_OID = `16384::pg_catalog.oid`;

// current_setting('name'[::text] followed by , or ): the name is the expression's one group.
const LITERAL_NAME = `'current_setting\\s*\\(\\s*''([^'']+)''(?:::text)?\\s*[,)]'`;

// The code's rows, each as kind, oid and xmin: any change to a function, policy or view (or its
// rule) gives its row a new xmin, and any row created or dropped changes the list. The probe
// compares this fingerprint, in its own snapshot, with the one the edge read the names under.
const FUNCTION_ROWS = `oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID} AND NOT (prolang OPERATOR(pg_catalog.=) ANY ('{12,13}'::pg_catalog.oid[])
    OR pronamespace OPERATOR(pg_catalog.=) ANY ('{pg_catalog,information_schema}'::pg_catalog.regnamespace[]))`;
const VIEW_ROWS = `oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID} AND relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog."char"[])
    AND NOT relnamespace OPERATOR(pg_catalog.=) ANY ('{pg_catalog,information_schema}'::pg_catalog.regnamespace[])`;
const rowId = (kind: string) =>
  `'${kind}' OPERATOR(pg_catalog.||) oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) xmin::pg_catalog.text`;

/** What the edge read of a database's code: the names its code reads settings by. */
export interface CodeHint {
  fingerprint: string;
  names: readonly string[];
  /** Code reads a setting by a computed name. */
  private: boolean;
}

const MAX_SCOPES = 10_000;

/** The last CodeHint read, per origin database; a stale one only costs the probe a full reading. */
export class CodeHints {
  readonly #byScope = new Map<string, CodeHint>();

  get(scope: string): CodeHint | null {
    return this.#byScope.get(scope) ?? null;
  }

  set(scope: string, hint: CodeHint): void {
    if (this.#byScope.size >= MAX_SCOPES) this.#byScope.clear();
    this.#byScope.set(scope, hint);
  }
}

// The names are taken from the code only when the fingerprint differs from the hint's.
const probeSql = (hint: CodeHint | null) => `/* edgegate: session state probe */ WITH code AS (
  SELECT prosrc AS src FROM pg_catalog.pg_proc WHERE ${FUNCTION_ROWS}
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', pg_catalog.pg_get_expr(polqual, polrelid), pg_catalog.pg_get_expr(polwithcheck, polrelid))
  FROM pg_catalog.pg_policy
  UNION ALL
  SELECT pg_catalog.pg_get_viewdef(oid) FROM pg_catalog.pg_class WHERE ${VIEW_ROWS}
),
fingerprint AS (
  SELECT COALESCE(pg_catalog.md5(pg_catalog.string_agg(id, ',' ORDER BY id)), 'none') AS value
  FROM (SELECT ${rowId('f')} AS id FROM pg_catalog.pg_proc WHERE ${FUNCTION_ROWS}
        UNION ALL SELECT ${rowId('p')} FROM pg_catalog.pg_policy
        UNION ALL SELECT ${rowId('v')} FROM pg_catalog.pg_class WHERE ${VIEW_ROWS}
        UNION ALL SELECT ${rowId('r')} FROM pg_catalog.pg_rewrite WHERE oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}) code_rows
),
learned AS (
  SELECT EXISTS (SELECT FROM code
      WHERE (SELECT pg_catalog.count(*) FROM pg_catalog.regexp_matches(src, 'current_setting\\s*\\(', 'gi'))
        OPERATOR(pg_catalog.<>)
        (SELECT pg_catalog.count(*) FROM pg_catalog.regexp_matches(src, ${LITERAL_NAME}, 'gi'))) AS private,
    (SELECT COALESCE(pg_catalog.array_agg(DISTINCT pg_catalog.lower(m[1])), '{}'::pg_catalog.text[])
     FROM code, pg_catalog.regexp_matches(src, ${LITERAL_NAME}, 'gi') AS m) AS names
  WHERE (SELECT value FROM fingerprint) OPERATOR(pg_catalog.<>) ${literal(hint?.fingerprint ?? '')}
),
names AS (
  SELECT pg_catalog.unnest(names) AS name FROM learned
  UNION
  SELECT pg_catalog.unnest(${textArray(hint?.names ?? [])}) WHERE NOT EXISTS (SELECT FROM learned)
)
SELECT current_user, session_user,
  pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0
    OR COALESCE((SELECT private FROM learned), ${hint?.private === true ? 'true' : 'false'}),
  (SELECT pg_catalog.jsonb_object_agg(name, setting) FROM pg_catalog.pg_settings
   WHERE source OPERATOR(pg_catalog.=) 'session'),
  (SELECT pg_catalog.jsonb_object_agg(name, pg_catalog.current_setting(name, true)) FROM names
   WHERE pg_catalog.current_setting(name, true) IS NOT NULL),
  (SELECT value FROM fingerprint),
  (SELECT pg_catalog.to_jsonb(names) FROM learned),
  (SELECT private FROM learned)`;

// E'' strings read backslashes the same whatever standard_conforming_strings says.
function literal(text: string): string {
  return `E'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function textArray(texts: readonly string[]): string {
  return `ARRAY[${texts.map(literal).join(', ')}]::pg_catalog.text[]`;
}

// The functions a statement called that the edge does not know, read when asked for: every
// function of those names in any schema, with the version of its catalog row (xmin) and its
// definition. Definitions longer than this are not shipped (the function may then write anything);
// the row limit keeps the answer far below what the edge inspects whole (MAX_INSPECTED_BYTES).
export const MAX_DEFINITION_BYTES = 8192;
export const MAX_FUNCTIONS = 64;

const functionsSql = (names: string) => `,
  (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(f.proname, f.oid, f.xmin, f.lanname,
     CASE WHEN pg_catalog.octet_length(f.def) OPERATOR(pg_catalog.<=) ${MAX_DEFINITION_BYTES} THEN f.def END))
   FROM (SELECT p.proname, p.oid, p.xmin::pg_catalog.text AS xmin, l.lanname,
           CASE WHEN p.prokind OPERATOR(pg_catalog.=) ANY ('{f,p}'::pg_catalog."char"[])
             THEN pg_catalog.pg_get_functiondef(p.oid) END AS def
         FROM pg_catalog.pg_proc p
         JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE p.proname OPERATOR(pg_catalog.=) ANY (${names}::pg_catalog.name[])
         LIMIT ${MAX_FUNCTIONS}) f),
  pg_catalog.current_setting('transaction_isolation')`;

/** The probe as a simple Query frame, sent after a Sync or Query so it runs on its own. */
export const STATE_PROBE = serialize.query(probeSql(null));

/**
 * The probe, with what the edge last read of the database's code (`hint`), also reading the
 * functions named `names` (see readProbeFunctions).
 */
export function stateProbe(names: readonly string[], hint: CodeHint | null = null): Buffer {
  if (names.length === 0 && hint === null) return STATE_PROBE;
  const sql = probeSql(hint);
  return serialize.query(names.length === 0 ? sql : sql + functionsSql(textArray(names)));
}

/** What the probe read of the code when it read it again (the fingerprint differed); else null. */
export function readCodeHint(frame: Buffer): CodeHint | null {
  const values = dataRowText({ kind: 'dataRow', frame, columnCount: 8 });
  const [fingerprint, names, isPrivate] = values.slice(5, 8);
  if (fingerprint == null || names == null || isPrivate == null) return null;
  return { fingerprint, names: JSON.parse(names) as string[], private: isPrivate === 't' };
}

/** What the probe read about functions; null when it was not asked or the row is not its own. */
export interface ProbedFunctions {
  /** Every function with one of the names asked, or null when there may be more than were read. */
  functions: CatalogFunction[] | null;
  isolation: string;
}

export function readProbeFunctions(frame: Buffer): ProbedFunctions | null {
  const row: DataRowMessage = { kind: 'dataRow', frame, columnCount: 10 };
  const values = dataRowText(row);
  const isolation = values[9];
  if (values.length !== 10 || isolation == null) return null;
  const list = JSON.parse(values[8] ?? '[]') as [string, number, string, string, string | null][];
  return {
    functions:
      list.length >= MAX_FUNCTIONS
        ? null
        : list.map(([name, oid, xmin, language, definition]) => ({
            name,
            oid,
            xmin,
            language,
            definition,
          })),
    isolation,
  };
}

/** The state in the probe's one DataRow frame; null if the row is not what the probe returns. */
export function readStateProbe(frame: Buffer): ObservedState | null {
  const row: DataRowMessage = { kind: 'dataRow', frame, columnCount: 5 };
  const [currentUser, sessionUser, isPrivate, changed, custom] = dataRowText(row);
  if (currentUser == null || sessionUser == null || isPrivate == null) return null;
  const settings = new Map<string, string>();
  // A name in both lists has the same value in both: the one in force now.
  for (const text of [changed, custom]) {
    if (text == null) continue;
    for (const [name, value] of Object.entries(JSON.parse(text) as Record<string, string>)) {
      settings.set(name, value);
    }
  }
  return { currentUser, sessionUser, settings, private: isPrivate === 't' };
}
