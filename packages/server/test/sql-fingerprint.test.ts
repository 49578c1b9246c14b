// Postgres rule keys: which queries share a template fingerprint, exact query hashes, and bad SQL.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { Problem } from '../src/problem.ts';
import { fingerprintPostgres, loadSqlParser, queryHash } from '../src/services/sql-fingerprint.ts';

beforeAll(async () => {
  await loadSqlParser();
});

function parseProblem(sql: string): Problem {
  try {
    fingerprintPostgres(sql);
  } catch (error) {
    if (error instanceof Problem) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(sql)} not to parse`);
}

describe('template fingerprints', () => {
  it('a literal, a $1 parameter, keyword case and spacing share one fingerprint', () => {
    const variants = [
      'select * from t where id = 1',
      'SELECT * FROM t WHERE id = $1',
      'SELECT  *\n  FROM t\n WHERE id=42',
      "select * from t where id = '7'",
    ];
    const [first, ...rest] = variants.map((sql) => fingerprintPostgres(sql).fingerprint);
    expect(first).toMatch(/^[0-9a-f]{16}$/);
    for (const fingerprint of rest) expect(fingerprint).toBe(first);
  });

  it('different tables, columns or shapes differ', () => {
    const fingerprints = [
      'select * from t where id = 1',
      'select * from u where id = 1',
      'select * from t where name = 1',
      'select id from t where id = 1',
      'select * from t where id = 1 limit 10',
    ].map((sql) => fingerprintPostgres(sql).fingerprint);
    expect(new Set(fingerprints).size).toBe(fingerprints.length);
  });

  it('the normalized text replaces constants with $n and keeps the rest as written', () => {
    expect(fingerprintPostgres("select * from t where id = 1 and name = 'x'").normalized).toBe(
      'select * from t where id = $1 and name = $2',
    );
  });

  it('loading the parser twice is harmless', async () => {
    await loadSqlParser();
    expect(fingerprintPostgres('select 1').fingerprint).toBe(
      fingerprintPostgres('select 2').fingerprint,
    );
  });
});

describe('SQL that does not parse', () => {
  it.each([
    ['selec * frm t', 'syntax error at or near "selec"'],
    ['select * from', 'syntax error at end of input'],
    ["select 'abc", 'unterminated quoted string at or near "\'abc"'],
  ])('%j is a 422 with the parser message', (sql, parserMessage) => {
    const problem = parseProblem(sql);
    const message = `Could not parse the query: ${parserMessage}`;
    expect(problem).toMatchObject({ code: 'rule.invalid_sql', status: 422, message });
    expect(problem.errors).toEqual([{ path: 'key', message }]);
  });

  it.each(['', '   ', '-- only a comment', ';'])('%j has no statement to fingerprint', (sql) => {
    expect(parseProblem(sql)).toMatchObject({ code: 'rule.invalid_sql', status: 422 });
  });
});

describe('SQL that is not one read', () => {
  it.each([
    ['insert into t values (1)', 'Insert'],
    ['update t set a = 1', 'Update'],
    ['delete from t', 'Delete'],
    ['truncate t', 'Truncate'],
    ['select 1 into x', 'INTO'],
    ['select 1; select 2', 'several statements'],
  ])('%j is a 422 naming why', (sql, reason) => {
    const problem = parseProblem(sql);
    expect(problem).toMatchObject({ code: 'rule.not_a_read', status: 422 });
    expect(problem.message).toContain(reason);
    expect(problem.errors).toEqual([{ path: 'key', message: problem.message }]);
  });
});

describe('exact query hashes', () => {
  it('is the SHA-256 of the exact text', () => {
    const sql = 'select * from t where id = 1';
    expect(queryHash(sql)).toBe(createHash('sha256').update(sql).digest('hex'));
    expect(queryHash(sql)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('does not normalise: spacing, case and constants all change the hash', () => {
    const hashes = [
      'select * from t where id = 1',
      'select * from t where id = 1 ',
      'SELECT * FROM t WHERE id = 1',
      'select * from t where id = 2',
    ].map(queryHash);
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('hashes non-ASCII text as UTF-8', () => {
    expect(queryHash("select 'é'")).toBe(
      createHash('sha256').update(Buffer.from("select 'é'", 'utf8')).digest('hex'),
    );
  });
});

describe('absurd nesting', () => {
  it('refuses a query nested too deeply for the parser with a 422, not a crash', async () => {
    await loadSqlParser();
    const deep = `SELECT ${'NOT '.repeat(5000)}true`;
    expect(() => fingerprintPostgres(deep)).toThrow(expect.objectContaining({ status: 422 }));
  });
});
