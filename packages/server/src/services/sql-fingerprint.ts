// Keys for Postgres cache rules: template fingerprints from the real Postgres parser, exact query hashes.
import { createHash } from 'node:crypto';
import { fingerprintSync, hasSqlDetails, loadModule, normalizeSync, parseSync } from 'libpg-query';
import { Problem } from '../problem.ts';

let loading: Promise<void> | undefined;

/** Loads the parser's WASM module; call (and await) once at boot before `fingerprintPostgres`. */
export function loadSqlParser(): Promise<void> {
  loading ??= loadModule();
  return loading;
}

function invalidSql(parserMessage: string): Problem {
  const message = `Could not parse the query: ${parserMessage}`;
  return new Problem('rule.invalid_sql', 422, message, { errors: [{ path: 'key', message }] });
}

/**
 * The template of a query: `fingerprint` is the same for every query that differs only in constants,
 * `$n` parameters, spacing or keyword case; `normalized` is the text with constants replaced by `$n`.
 */
export function fingerprintPostgres(sql: string): { fingerprint: string; normalized: string } {
  // Parsing first gives the parser's own error; fingerprintSync would return "" for empty text,
  // and a fingerprint of "no statement" for a comment, without complaint.
  if (sql.trim() === '') throw invalidSql('the query is empty');
  try {
    const statements =
      (parseSync(sql) as { stmts?: { stmt?: Record<string, unknown> }[] }).stmts ?? [];
    if (statements.length === 0) throw invalidSql('the query contains no statement');
    assertOneRead(statements);
    return { fingerprint: fingerprintSync(sql), normalized: normalizeSync(sql) };
  } catch (error) {
    if (error instanceof Problem) throw error;
    if (hasSqlDetails(error)) throw invalidSql(error.message);
    // The WASM parser recurses: absurdly deep nesting exhausts its stack, which is bad input.
    if (error instanceof RangeError) throw invalidSql('the query is nested too deeply');
    throw error;
  }
}

// Rules decide how reads are cached; a rule for a write, or for several statements, could never
// match anything the edge caches, so it is refused instead of silently doing nothing.
function assertOneRead(statements: { stmt?: Record<string, unknown> }[]): void {
  if (statements.length > 1) {
    throw notARead('the text holds several statements; a rule matches one SELECT');
  }
  const [type, body] = Object.entries(statements[0]?.stmt ?? {})[0] ?? ['nothing', {}];
  if (type !== 'SelectStmt') {
    throw notARead(
      `it is a ${type.replace(/Stmt$/, '')} statement, and only reads (SELECT) are cached`,
    );
  }
  if ((body as Record<string, unknown>).intoClause !== undefined) {
    throw notARead('SELECT … INTO creates a table, so it is a write and never cached');
  }
}

function notARead(reason: string): Problem {
  const message = `A rule matches a read: ${reason}.`;
  return new Problem('rule.not_a_read', 422, message, { errors: [{ path: 'key', message }] });
}

/**
 * The key of a `kind: query` rule: SHA-256 (hex) of the exact text, not normalised in any way.
 * The edge hashes the bytes the client sends; any normalisation here would have to be repeated
 * bit for bit there, and two texts that differ only in spacing already share a template rule.
 */
export function queryHash(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}
