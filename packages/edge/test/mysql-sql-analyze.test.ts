// analyzeMysql: what a MySQL/MariaDB grammar says a text reads, writes and does to the session.
import { describe, expect, it } from 'vitest';
import { analyzeMysql } from '../src/mysql/sql/analyze.ts';
import { templateOf } from '../src/mysql/sql/template.ts';

// Reads as `schema.name` (or `name`), sorted: the order the walk finds them in does not matter.
function readsOf(sql: string): string[] {
  return analyzeMysql(sql)
    .reads.map((t) => (t.schema === null ? t.name : `${t.schema}.${t.name}`))
    .sort();
}

function writesOf(sql: string): string[] | 'all' {
  const { writes } = analyzeMysql(sql);
  return writes === 'all' ? 'all' : [...writes].sort();
}

describe('cacheable reads', () => {
  it.each([
    ['a plain select', 'SELECT id, name FROM items WHERE id = 1', ['items']],
    ['a qualified table keeps its database', 'SELECT * FROM shop.items', ['shop.items']],
    ['backquoted names', 'SELECT `a` FROM `shop`.`order items`', ['shop.order items']],
    [
      'joins',
      'SELECT a.x, b.y FROM a JOIN b ON a.id = b.id LEFT JOIN s.c ON c.id = a.id',
      ['a', 'b', 's.c'],
    ],
    [
      'subqueries in WHERE and in the select list',
      'SELECT (SELECT COUNT(*) FROM u) AS n FROM t WHERE id IN (SELECT t_id FROM v) AND EXISTS (SELECT 1 FROM w)',
      ['t', 'u', 'v', 'w'],
    ],
    ['a derived table', 'SELECT x.a FROM (SELECT a FROM t) x', ['t']],
    ['UNION branches', 'SELECT a FROM t UNION ALL SELECT b FROM s.u ORDER BY 1', ['s.u', 't']],
    [
      'a CTE: its name counts as a read too (one more name only means one more invalidation)',
      'WITH recent AS (SELECT * FROM orders) SELECT * FROM recent',
      ['orders', 'recent'],
    ],
    ['no table at all', 'SELECT 1 + 1', []],
    ['DUAL', 'SELECT 1 FROM DUAL', []],
    ['placeholders of a prepared statement', 'SELECT * FROM t WHERE a = ? AND b IN (?, ?)', ['t']],
    [
      'allowed built-in functions',
      "SELECT COUNT(*), LOWER(name), COALESCE(a, 0), DATE_FORMAT(d, '%Y'), JSON_EXTRACT(j, '$.a'), GROUP_CONCAT(x) FROM t GROUP BY 2, 3, 4, 5",
      ['t'],
    ],
    [
      'CAST, CASE, IF and INTERVAL',
      'SELECT CAST(a AS CHAR), CASE WHEN a THEN 1 END, IF(a, 1, 2), DATE_ADD(d, INTERVAL 1 DAY) FROM t',
      ['t'],
    ],
    ['window functions', 'SELECT ROW_NUMBER() OVER (ORDER BY a) FROM t', ['t']],
    ['LIMIT and OFFSET', 'SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 5', ['t']],
    ['SQL_NO_CACHE is only a hint', 'SELECT SQL_NO_CACHE a FROM t', ['t']],
    ['a trailing comment', 'SELECT * FROM t WHERE a = 1 -- why\n', ['t']],
    ['an optimizer hint comment', 'SELECT /*+ MAX_EXECUTION_TIME(100) */ a FROM t', ['t']],
  ])('%s', (_label, sql, reads) => {
    expect(analyzeMysql(sql)).toMatchObject({
      cacheable: true,
      reason: null,
      writes: [],
      session: 'none',
    });
    expect(readsOf(sql)).toEqual(reads);
  });
});

describe('reads that are not cacheable', () => {
  it.each([
    ['FOR UPDATE', 'SELECT * FROM t WHERE id = 1 FOR UPDATE', /locking/],
    ['LOCK IN SHARE MODE (MySQL grammar)', 'SELECT * FROM t LOCK IN SHARE MODE', /locking/],
    [
      'FOR UPDATE in a subquery',
      'SELECT * FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)',
      /locking/,
    ],
    ['INTO a user variable', 'SELECT a INTO @v FROM t', /INTO/],
    ['INTO OUTFILE', "SELECT a FROM t INTO OUTFILE '/tmp/x'", /INTO/],
    ['SQL_CALC_FOUND_ROWS', 'SELECT SQL_CALC_FOUND_ROWS a FROM t LIMIT 1', /FOUND_ROWS/],
    ['a user-variable assignment', 'SELECT @x := a FROM t', /assigns a user variable/],
    ['a user variable read', 'SELECT * FROM t WHERE a = @v', /user variable/],
    ['a system variable read', 'SELECT @@version', /system variable/],
    ['the mysql schema', 'SELECT * FROM mysql.user', /system schema/],
    ['information_schema, in any case', 'SELECT * FROM INFORMATION_SCHEMA.TABLES', /system schema/],
    [
      'performance_schema in a join',
      'SELECT * FROM t JOIN performance_schema.threads p ON true',
      /system schema/,
    ],
    ['sys', 'SELECT * FROM sys.host_summary', /system schema/],
    ['several statements', 'SELECT 1; SELECT 2', /several statements/],
    ['an executable comment', 'SELECT /*! STRAIGHT_JOIN */ a FROM t', /executable comment/],
  ])('%s', (_label, sql, reason) => {
    const analysis = analyzeMysql(sql);
    expect(analysis.cacheable).toBe(false);
    expect(analysis.reason).toMatch(reason);
    expect(analysis.writes).toEqual([]);
  });

  it.each([
    'NOW()',
    'CURRENT_TIMESTAMP',
    'CURRENT_TIMESTAMP()',
    'CURRENT_DATE',
    'LOCALTIME',
    'UTC_TIMESTAMP()',
    'SYSDATE()',
    'UNIX_TIMESTAMP()',
    'RAND()',
    'UUID()',
    'CONNECTION_ID()',
    'LAST_INSERT_ID()',
    'FOUND_ROWS()',
    'ROW_COUNT()',
    'SLEEP(1)',
    "GET_LOCK('a', 1)",
    "RELEASE_LOCK('a')",
    'CURRENT_USER()',
    'USER()',
    'DATABASE()',
    'VERSION()',
    'BENCHMARK(10, 1)',
  ])('%s makes a read uncacheable and writes nothing', (call) => {
    const analysis = analyzeMysql(`SELECT ${call} FROM t`);
    expect(analysis).toMatchObject({ cacheable: false, writes: [], session: 'none' });
    expect(analysis.reason).toMatch(/^calls /);
  });

  it('an executable comment is read as the server runs it', () => {
    expect(analyzeMysql('SELECT a FROM t /*!50000 FOR UPDATE */').reason).toMatch(/locking/);
    expect(readsOf('SELECT a FROM t /*M!100500 JOIN u ON true */')).toEqual(['t', 'u']);
    expect(analyzeMysql('SELECT /*! SLEEP(1), */ a FROM t')).toMatchObject({
      cacheable: false,
      writes: [],
    });
    expect(writesOf('SELECT /*!50000 my_func(), */ a FROM t')).toBe('all');
  });
});

describe('stored functions', () => {
  it.each([
    ['an unknown function', 'SELECT my_func(a) FROM t'],
    ['a schema-qualified function', 'SELECT shop.price_of(a) FROM t'],
    ['an unknown aggregate (a UDF)', 'SELECT my_agg(a) FROM t'],
    ['in a WHERE clause', 'SELECT * FROM t WHERE audit(a) = 1'],
  ])('%s: uncacheable, may write anything and change the session unseen', (_label, sql) => {
    expect(analyzeMysql(sql)).toMatchObject({
      cacheable: false,
      writes: 'all',
      session: 'unknown',
    });
  });
});

describe('writes', () => {
  it.each([
    ['INSERT', 'INSERT INTO items (id) VALUES (1)', ['items']],
    ['INSERT into a qualified table', 'INSERT INTO shop.items VALUES (1)', ['shop.items']],
    ['INSERT … SELECT', 'INSERT INTO t SELECT * FROM u', ['t']],
    [
      'INSERT … ON DUPLICATE KEY UPDATE',
      'INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)',
      ['t'],
    ],
    ['REPLACE', 'REPLACE INTO t VALUES (1)', ['t']],
    ['UPDATE', "UPDATE items SET name = 'x' WHERE id = 7", ['items']],
    ['multi-table UPDATE', 'UPDATE t JOIN s.u ON t.a = u.a SET t.b = 1', ['s.u', 't']],
    ['DELETE', 'DELETE FROM s.t WHERE a IN (SELECT a FROM u)', ['s.t']],
    ['multi-table DELETE', 'DELETE t, u FROM t JOIN u ON t.id = u.id', ['t', 'u']],
    ['DELETE through an alias', 'DELETE x FROM shop.items x JOIN u ON x.id = u.id', ['shop.items']],
    ['TRUNCATE', 'TRUNCATE TABLE s.t', ['s.t']],
    ['LOAD DATA', "LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t", ['t']],
    ['CREATE TABLE', 'CREATE TABLE s.t (a int)', ['s.t']],
    ['CREATE TEMPORARY TABLE', 'CREATE TEMPORARY TABLE tt (a int)', ['tt']],
    ['CREATE TABLE … AS SELECT (MySQL grammar)', 'CREATE TABLE t2 AS SELECT * FROM t', ['t2']],
    ['CREATE INDEX', 'CREATE INDEX i ON t (a)', ['t']],
    ['ALTER TABLE', 'ALTER TABLE t ADD COLUMN b int', ['t']],
    ['DROP TABLE', 'DROP TABLE a, s.b', ['a', 's.b']],
    ['RENAME TABLE', 'RENAME TABLE a TO b', ['a', 'b']],
    ['NEXTVAL writes its sequence', 'SELECT NEXTVAL(s.seq)', ['s.seq']],
    ['a known function in a write', 'INSERT INTO t (a) VALUES (UUID())', ['t']],
  ])('%s', (_label, sql, writes) => {
    expect(analyzeMysql(sql).cacheable).toBe(false);
    expect(writesOf(sql)).toEqual(writes);
  });

  it.each([
    ['CALL', 'CALL refresh_totals(1)'],
    ['a stored function in a write', 'UPDATE t SET a = f(b)'],
    ['DROP DATABASE', 'DROP DATABASE shop'],
    ['GRANT (who sees what changes)', 'GRANT SELECT ON shop.* TO app'],
    ['a statement the grammars refuse', 'HANDLER t OPEN'],
    ['a text that does not parse', 'SELEC * FROM t'],
    ['an unterminated string', "SELECT 'abc FROM t"],
    ['DO', 'DO my_proc_like_func()'],
  ])('%s writes everything', (_label, sql) => {
    expect(analyzeMysql(sql)).toMatchObject({ cacheable: false, writes: 'all' });
  });

  it('CALL may change the session unseen', () => {
    expect(analyzeMysql('CALL p()').session).toBe('unknown');
  });
});

describe('session effects', () => {
  it.each([
    ['SET NAMES', 'SET NAMES utf8mb4'],
    ['SET NAMES … COLLATE', "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_bin'"],
    ['SET CHARACTER SET', 'SET CHARACTER SET utf8'],
    ['SET a session variable', "SET sql_mode = 'ANSI'"],
    ['SET SESSION', "SET SESSION time_zone = '+00:00'"],
    ['SET @@', "SET @@session.sql_mode = ''"],
    ['SET several', "SET @@time_zone = '+00:00', @x = 1"],
    ['SET a user variable', 'SET @a := (SELECT 1)'],
    ['USE', 'USE shop'],
    ['SELECT … INTO @v', 'SELECT a INTO @v FROM t'],
    ['an assignment in a select', 'SELECT @n := @n + 1 FROM t'],
  ])('%s', (_label, sql) => {
    expect(analyzeMysql(sql)).toMatchObject({ cacheable: false, session: 'set', writes: [] });
  });

  it('a stored function in SET may change anything', () => {
    expect(analyzeMysql('SET @a = f()')).toMatchObject({ session: 'unknown', writes: 'all' });
  });

  it.each([
    ['BEGIN', 'BEGIN'],
    ['START TRANSACTION', 'START TRANSACTION'],
    ['COMMIT', 'COMMIT'],
    ['ROLLBACK', 'ROLLBACK'],
    ['SAVEPOINT (recognised without the grammar)', 'SAVEPOINT a'],
    ['ROLLBACK TO SAVEPOINT', 'ROLLBACK TO SAVEPOINT a'],
    ['SET TRANSACTION', 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED'],
    ['SHOW', 'SHOW TABLES'],
    ['DESCRIBE', 'DESCRIBE t'],
    ['EXPLAIN', 'EXPLAIN SELECT * FROM t'],
    ['LOCK TABLES', 'LOCK TABLES t READ'],
    ['UNLOCK TABLES', 'UNLOCK TABLES'],
  ])('%s: neither cached nor writing', (_label, sql) => {
    expect(analyzeMysql(sql)).toMatchObject({ cacheable: false, writes: [], session: 'none' });
  });

  it('an empty text is no statement', () => {
    for (const sql of ['', '   ', '-- only a comment', '/* c */']) {
      expect(analyzeMysql(sql)).toMatchObject({
        cacheable: false,
        reason: 'empty query',
        writes: [],
      });
    }
  });
});

describe('sql_mode', () => {
  it('NO_BACKSLASH_ESCAPES: a backslash may hide what is read, so nothing is assumed', () => {
    const sql = "SELECT * FROM t WHERE a = 'x\\' UNION SELECT * FROM secret -- '";
    expect(readsOf(sql)).toEqual(['t']);
    expect(analyzeMysql(sql, { noBackslashEscapes: true })).toMatchObject({
      cacheable: false,
      writes: 'all',
    });
    expect(analyzeMysql('SELECT * FROM t', { noBackslashEscapes: true }).cacheable).toBe(true);
  });

  it('ANSI_QUOTES: double quotes are identifiers, so they stay in the template', () => {
    expect(templateOf('SELECT "a" FROM t').template).toBe('SELECT ? FROM t');
    expect(templateOf('SELECT "a" FROM t', { ansiQuotes: true }).template).toBe(
      'SELECT "a" FROM t',
    );
  });
});

describe('templates', () => {
  it.each([
    [
      'numbers and strings',
      "SELECT * FROM t WHERE a = 1 AND b = 'x' AND c = 2.5e3",
      'SELECT * FROM t WHERE a = ? AND b = ? AND c = ?',
    ],
    [
      'escaped quotes stay inside their string',
      "SELECT 'it''s', 'a\\'b' FROM t",
      'SELECT ?, ? FROM t',
    ],
    ['hex and bit literals', 'SELECT 0x1F, 0b101, .5 FROM t', 'SELECT ?, ?, ? FROM t'],
    [
      'identifiers with digits are not numbers',
      'SELECT t1.c2, 1abc FROM t1',
      'SELECT t1.c2, 1abc FROM t1',
    ],
    ['backquoted identifiers keep their text', 'SELECT `1` FROM `t 2`', 'SELECT `1` FROM `t 2`'],
    ['comments and whitespace go', 'SELECT  a -- x\n FROM /* y */ t # z', 'SELECT a FROM t'],
    ['case is kept: table names are case-sensitive', 'select A from T', 'select A from T'],
    ['placeholders stay', 'SELECT * FROM t WHERE a = ?', 'SELECT * FROM t WHERE a = ?'],
    ['executable comments stay', 'SELECT /*!50000 a */ FROM t', 'SELECT /*!50000 a */ FROM t'],
  ])('%s', (_label, sql, template) => {
    expect(templateOf(sql).template).toBe(template);
  });

  it('texts that differ only in constants share a fingerprint; others do not', () => {
    const a = analyzeMysql('SELECT * FROM t WHERE id = 1');
    const b = analyzeMysql('SELECT  *  FROM t WHERE id = 42 -- hi');
    const c = analyzeMysql('SELECT * FROM u WHERE id = 1');
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(c.fingerprint).not.toBe(a.fingerprint);
  });

  it('the analysis of a template holds for every text of it', () => {
    const texts = [
      "SELECT * FROM t WHERE a = 'x'",
      "SELECT * FROM t WHERE a = 'UNION SELECT * FROM u'",
    ];
    const [first, second] = texts.map((sql) => analyzeMysql(sql));
    expect(first?.template).toBe(second?.template);
    expect(first?.reads).toEqual(second?.reads);
  });
});

describe('speed', () => {
  it('measures analyses per second (reported, not asserted beyond sanity)', () => {
    const texts = [
      'SELECT id, name, price FROM items WHERE id = 42',
      'SELECT a.x, b.y FROM a JOIN b ON a.id = b.id WHERE a.k IN (1, 2, 3) ORDER BY a.x LIMIT 10',
      "UPDATE items SET name = 'x' WHERE id = 7",
      'SELECT c.name, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name',
    ];
    const rate = (run: (sql: string) => unknown) => {
      const started = performance.now();
      let n = 0;
      while (performance.now() - started < 500) run(texts[n++ % texts.length] as string);
      return Math.round((n / (performance.now() - started)) * 1000);
    };
    const analyses = rate((sql) => analyzeMysql(sql));
    const templates = rate((sql) => templateOf(sql));
    console.log(
      `analyzeMysql: ${analyses} statements/s; templateOf alone: ${templates} statements/s`,
    );
    expect(analyses).toBeGreaterThan(100);
    expect(templates).toBeGreaterThan(analyses);
  });
});
