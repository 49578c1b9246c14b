// analyzeSql: what the real Postgres parser says a text reads, writes and does to the session.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, loadSqlParser } from '../src/pg/sql/analyze.ts';

beforeAll(async () => {
  await loadSqlParser();
});

// Reads as `schema.name` (or `name`), sorted: the order the walk finds them in does not matter.
function readsOf(sql: string): string[] {
  return analyzeSql(sql)
    .reads.map((table) => (table.schema === null ? table.name : `${table.schema}.${table.name}`))
    .sort();
}

function writesOf(sql: string): string[] | 'all' {
  const { writes } = analyzeSql(sql);
  return writes === 'all' ? 'all' : [...writes].sort();
}

describe('cacheable reads', () => {
  it.each([
    ['a plain select', 'SELECT id, name FROM items WHERE id = 1', ['items']],
    [
      'joins',
      'SELECT a.x, b.y FROM a JOIN b ON a.id = b.id LEFT JOIN c USING (id)',
      ['a', 'b', 'c'],
    ],
    [
      'subqueries in WHERE',
      'SELECT * FROM t WHERE id IN (SELECT t_id FROM u) AND EXISTS (SELECT 1 FROM v)',
      ['t', 'u', 'v'],
    ],
    [
      'a CTE: its name counts as a read too (scopes are not tracked; one more name only means one more invalidation)',
      'WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN customers ON true',
      ['customers', 'orders', 'recent'],
    ],
    [
      'schema-qualified tables',
      'SELECT * FROM app.items, public.users',
      ['app.items', 'public.users'],
    ],
    ['TABLE t', 'TABLE t', ['t']],
    ['VALUES', 'VALUES (1), (2)', []],
    [
      'allowed built-in functions',
      'SELECT count(*), lower(name), coalesce(a, 0) FROM t GROUP BY 2, 3',
      ['t'],
    ],
  ])('%s', (_label, sql, reads) => {
    expect(analyzeSql(sql)).toMatchObject({
      cacheable: true,
      reason: null,
      writes: [],
      session: 'none',
    });
    expect(readsOf(sql)).toEqual(reads);
  });

  // A non-recursive CTE cannot see itself: inside its body `t` is the real table, so a write to `t`
  // must invalidate this read.
  it('a CTE that reads the table it shadows still reads that table', () => {
    expect(readsOf('WITH t AS (SELECT * FROM t WHERE a > 1) SELECT * FROM t')).toEqual(['t']);
  });

  it('a CTE name only hides tables inside its own query', () => {
    expect(readsOf('SELECT * FROM t, (WITH t AS (SELECT 1) SELECT * FROM t) s')).toEqual(['t']);
  });
});

describe('uncacheable reads, and why', () => {
  it.each([
    ['FOR UPDATE', 'SELECT * FROM t FOR UPDATE', /locking/, []],
    ['FOR SHARE', 'SELECT * FROM t FOR SHARE', /locking/, []],
    ['FOR NO KEY UPDATE', 'SELECT * FROM t FOR NO KEY UPDATE', /locking/, []],
    ['SELECT INTO, which writes the new table', 'SELECT * INTO new_t FROM t', /INTO/, ['new_t']],
    [
      'a data-modifying CTE',
      'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d',
      /writes/,
      ['t'],
    ],
    [
      'two data-modifying CTEs',
      'WITH i AS (INSERT INTO log VALUES (1) RETURNING *), u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM i, u',
      /writes/,
      ['log', 't'],
    ],
    ['now()', 'SELECT now()', /now/, []],
    ['pg_catalog.now()', 'SELECT pg_catalog.now()', /now/, []],
    ['random()', 'SELECT * FROM t ORDER BY random()', /random/, []],
    ['nextval(), which writes no table', "SELECT nextval('s')", /nextval/, []],
    ['clock_timestamp()', 'SELECT clock_timestamp()', /clock_timestamp/, []],
    ['current_timestamp', 'SELECT current_timestamp', /clock/, []],
    ['current_date', 'SELECT * FROM t WHERE d = current_date', /clock/, []],
    ['localtime', 'SELECT localtime', /clock/, []],
    ["'now'::timestamptz", "SELECT 'now'::timestamptz", /clock/, []],
    ["timestamptz 'now'", "SELECT timestamptz 'now'", /clock/, []],
    ["CAST('today' AS date)", "SELECT CAST('today' AS date)", /clock/, []],
    ["a comparison with 'yesterday'", "SELECT * FROM t WHERE d > 'yesterday'", /clock/, []],
    ['pg_catalog', 'SELECT * FROM pg_catalog.pg_class', /system catalog/, []],
    ['a pg_stat_* view', 'SELECT * FROM pg_stat_activity', /system catalog/, []],
    ['information_schema', 'SELECT * FROM information_schema.tables', /system catalog/, []],
  ])('%s', (_label, sql, reason, writes) => {
    const analysis = analyzeSql(sql);
    expect(analysis.cacheable).toBe(false);
    expect(analysis.reason).toMatch(reason);
    expect(writesOf(sql)).toEqual(writes);
  });

  // The clock word need not be the whole literal for Postgres to read the clock.
  it.each([
    ['a clock word with a time', "SELECT 'tomorrow 08:00'::timestamp"],
    ['a range bound', "SELECT * FROM t WHERE d <@ '[today,infinity)'::tstzrange"],
    ['an array element', "SELECT '{now}'::timestamptz[]"],
  ])('a literal reading the clock in %s is not cacheable', (_label, sql) => {
    expect(analyzeSql(sql).cacheable).toBe(false);
  });

  // Without REPEATABLE, every run samples different rows, like ORDER BY random().
  it('TABLESAMPLE is not cacheable', () => {
    expect(analyzeSql('SELECT * FROM t TABLESAMPLE BERNOULLI (10)').cacheable).toBe(false);
  });

  it('several statements are not cacheable, and their reads and writes add up', () => {
    expect(analyzeSql('SELECT * FROM t; SELECT * FROM app.u')).toMatchObject({
      cacheable: false,
      reason: 'several statements',
      writes: [],
    });
    expect(readsOf('SELECT * FROM t; SELECT * FROM app.u')).toEqual(['app.u', 't']);
    expect(writesOf('SELECT 1; DELETE FROM t')).toEqual(['t']);
  });
});

describe('writes', () => {
  it.each([
    ['INSERT', 'INSERT INTO t (a) SELECT a FROM u', ['t']],
    ['INSERT into a schema-qualified table, by bare name', 'INSERT INTO app.t VALUES (1)', ['t']],
    ['UPDATE', 'UPDATE t SET a = 1 FROM u WHERE t.id = u.id', ['t']],
    ['DELETE', 'DELETE FROM t WHERE a = 1', ['t']],
    ['MERGE', 'MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE', ['t']],
    ['TRUNCATE of two tables', 'TRUNCATE a, b', ['a', 'b']],
    ['COPY FROM', 'COPY t FROM STDIN', ['t']],
    ['COPY TO, which writes nothing', 'COPY t TO STDOUT', []],
    ['COPY of a DELETE … RETURNING', 'COPY (DELETE FROM t RETURNING *) TO STDOUT', ['t']],
    ['ALTER TABLE', 'ALTER TABLE t ADD COLUMN c int', ['t']],
    ['CREATE INDEX', 'CREATE INDEX ON t (a)', ['t']],
    ['CREATE TABLE AS', 'CREATE TABLE x AS SELECT 1', ['x']],
    ['REFRESH MATERIALIZED VIEW', 'REFRESH MATERIALIZED VIEW mv', ['mv']],
    ['DROP TABLE', 'DROP TABLE t', 'all'],
    ['ALTER TABLE … RENAME', 'ALTER TABLE t RENAME TO u', 'all'],
    ['CALL', 'CALL p()', 'all'],
    ['DO', 'DO $$BEGIN END$$', 'all'],
    ['EXECUTE of a prepared statement', 'EXECUTE p', 'all'],
    ['an unknown function in a SELECT', 'SELECT my_func()', 'all'],
    ['a non-built-in function named like a built-in', 'SELECT public.count(a) FROM t', 'all'],
    ['an unknown function in SELECT INTO', 'SELECT my_func() INTO x', 'all'],
    ['an unknown function under EXPLAIN ANALYZE', 'EXPLAIN ANALYZE SELECT my_func()', 'all'],
    ['nextval, volatile but known not to write', "SELECT nextval('s')", []],
    ['setval', "SELECT setval('s', 1)", []],
    ['BEGIN', 'BEGIN', []],
    ['LOCK', 'LOCK TABLE t', []],
    ['SHOW', 'SHOW search_path', []],
    ['VACUUM', 'VACUUM t', []],
  ])('%s', (_label, sql, writes) => {
    expect(writesOf(sql)).toEqual(writes);
    expect(analyzeSql(sql).cacheable).toBe(false);
  });

  // The function runs when the table is filled, as it does for SELECT … INTO.
  it('CREATE TABLE AS with an unknown function writes everything', () => {
    expect(writesOf('CREATE TABLE x AS SELECT my_func()')).toBe('all');
  });

  // The function runs on FETCH, which is harmless by itself.
  it('a cursor over an unknown function writes everything', () => {
    expect(writesOf('DECLARE c CURSOR FOR SELECT my_func()')).toBe('all');
  });

  it('EXPLAIN ANALYZE runs the statement; plain EXPLAIN does not', () => {
    expect(writesOf('EXPLAIN ANALYZE DELETE FROM t')).toEqual(['t']);
    expect(writesOf('EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1')).toEqual(['t']);
    expect(writesOf('EXPLAIN DELETE FROM t')).toEqual([]);
    expect(analyzeSql('EXPLAIN SELECT * FROM t').cacheable).toBe(false);
  });

  it('a text the parser refuses is assumed to write everything', () => {
    expect(analyzeSql('SELEC 1 FROM t')).toMatchObject({
      cacheable: false,
      writes: 'all',
      reads: [],
    });
  });

  it.each([
    ['whitespace', '  '],
    ['a comment', '-- ping'],
    ['a lone semicolon', ';'],
    ['nothing', ''],
  ])('an empty query made of %s writes nothing', (_label, sql) => {
    expect(analyzeSql(sql)).toMatchObject({ cacheable: false, writes: [], session: 'none' });
  });
});

describe('session effects', () => {
  it.each([
    ['SET', 'SET search_path = app', 'taints'],
    ['SET LOCAL', 'SET LOCAL statement_timeout = 0', 'taints'],
    ['SET TIME ZONE', "SET TIME ZONE 'UTC'", 'taints'],
    ['SET ROLE', 'SET ROLE bob', 'taints'],
    ['RESET of one setting', 'RESET search_path', 'taints'],
    ['set_config()', "SELECT set_config('app.user', '1', false)", 'taints'],
    ['pg_catalog.set_config()', "SELECT pg_catalog.set_config('app.user', '1', false)", 'taints'],
    ['RESET ALL', 'RESET ALL', 'taints'],
    ['DISCARD TEMP', 'DISCARD TEMP', 'taints'],
    ['DISCARD ALL', 'DISCARD ALL', 'discards'],
    ['DISCARD ALL after a SET', 'SET app.uid = 1; DISCARD ALL', 'discards'],
    ['a function we do not know', 'SELECT set_tenant(1)', 'taints'],
    ['a custom set_config() outside pg_catalog', "SELECT app.set_config('x')", 'taints'],
    ['DO', "DO $$ BEGIN PERFORM set_config('app.t', '1', false); END $$", 'taints'],
    ['CALL', 'CALL p(1)', 'taints'],
    ['EXECUTE', 'EXECUTE q(1)', 'taints'],
    ['LOAD', "LOAD 'auto_explain'", 'taints'],
    ['a write (triggers run code)', 'UPDATE t SET a = 1', 'taints'],
    ['DDL', 'CREATE TEMP TABLE t (a int)', 'taints'],
    ['COPY FROM', 'COPY t FROM STDIN', 'copies'],
    ['COPY FROM after a SET', 'SET a.b = 1; COPY t FROM STDIN', 'copies'],
    ['COMMIT', 'COMMIT', 'transaction'],
    ['ROLLBACK TO SAVEPOINT', 'ROLLBACK TO SAVEPOINT a', 'transaction'],
    ['a SET after COMMIT', 'COMMIT; SET a.b = 1', 'taints'],
    ['a text that does not parse', 'SELEC 1', 'taints'],
    ['SET TRANSACTION', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'none'],
    ['SET TRANSACTION SNAPSHOT', "SET TRANSACTION SNAPSHOT '00000003-1'", 'none'],
    ['SET transaction_read_only', 'SET transaction_read_only = on', 'none'],
    [
      'SET SESSION CHARACTERISTICS',
      'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
      'taints',
    ],
    ['a plain read', 'SELECT * FROM t', 'none'],
    ['a read calling known functions', 'SELECT lower(name), now(), nextval($1) FROM t', 'none'],
    ['SHOW', 'SHOW search_path', 'none'],
    ['an empty text', ';', 'none'],
  ])('%s', (_label, sql, session) => {
    expect(analyzeSql(sql).session).toBe(session);
  });

  it('a SET is neither cacheable nor a write', () => {
    expect(analyzeSql('SET search_path = app')).toMatchObject({ cacheable: false, writes: [] });
    expect(writesOf("SELECT set_config('app.user', '1', false)")).toEqual([]);
  });
});

describe('fingerprints', () => {
  it('are equal for texts that differ only in constants or parameters', () => {
    const fingerprint = analyzeSql('SELECT * FROM t WHERE a = 1').fingerprint;
    expect(fingerprint).not.toBe('');
    expect(analyzeSql('SELECT * FROM t WHERE a = $1').fingerprint).toBe(fingerprint);
    expect(analyzeSql('SELECT * FROM t WHERE a = 2').fingerprint).toBe(fingerprint);
  });

  it('differ for another table or another column', () => {
    const fingerprint = analyzeSql('SELECT * FROM t WHERE a = 1').fingerprint;
    expect(analyzeSql('SELECT * FROM u WHERE a = 1').fingerprint).not.toBe(fingerprint);
    expect(analyzeSql('SELECT * FROM t WHERE b = 1').fingerprint).not.toBe(fingerprint);
  });
});

// The reason is what logs and metrics show for an uncacheable read: each kind names its own.
describe('the reason a text is not cached', () => {
  it.each([
    ['SELECT * INTO new_t FROM t', 'SELECT INTO creates a table'],
    ['COPY t TO STDOUT', 'COPY TO'],
    ['COPY (SELECT 1) TO STDOUT', 'COPY TO'],
    ['COPY t FROM STDIN', 'writes'],
    ['INSERT INTO t VALUES (1)', 'writes'],
    ['TRUNCATE a', 'writes'],
    ['SET search_path = app', 'SET'],
    ['RESET ALL', 'SET'],
    ['DISCARD ALL', 'DISCARD'],
    ['EXPLAIN SELECT 1', 'EXPLAIN'],
    ['ALTER TABLE t ADD COLUMN c int', 'DDL'],
    ['CREATE TABLE x AS SELECT 1', 'DDL'],
    ['DECLARE c CURSOR FOR SELECT 1', 'DeclareCursor'],
    ['DROP TABLE t', 'Drop'],
    ['CALL p()', 'Call'],
    ['BEGIN', 'Transaction'],
    ['SELECT * FROM t TABLESAMPLE BERNOULLI (10)', 'TABLESAMPLE returns different rows each time'],
    ['SELECT * FROM t FOR UPDATE', 'has a locking clause'],
    ['SELECT now()', 'calls now()'],
    ['SELECT pg_catalog.now()', 'calls pg_catalog.now()'],
    ['SELECT app.lower(a) FROM t', 'calls app.lower()'],
    ['SELECT localtimestamp', 'reads the clock'],
    ["SELECT 'Today'::date", 'reads the clock'],
    ['SELECT * FROM pg_class', 'reads a system catalog or statistics view'],
    ['SELECT 1; SELECT 2', 'several statements'],
    ['SET a.b = 1; SELECT 1', 'several statements'],
    ['SELEC 1', 'the text does not parse'],
    ['', 'empty query'],
    ['-- ping', 'empty query'],
  ])('%j: %s', (sql, reason) => {
    expect(analyzeSql(sql)).toMatchObject({ cacheable: false, reason });
  });

  it('a text that does not parse, or is empty, reads nothing and has no fingerprint', () => {
    expect(analyzeSql('SELEC 1')).toMatchObject({ fingerprint: '', reads: [] });
    expect(analyzeSql(' ')).toMatchObject({ fingerprint: '', reads: [] });
  });
});

describe('near misses that stay cacheable', () => {
  it.each([
    ['a table named like a catalog in another schema', 'SELECT * FROM app.pg_thing'],
    ['a table whose name merely contains pg_', 'SELECT * FROM my_pg_table'],
    ['a built-in called through pg_catalog', 'SELECT pg_catalog.lower(name) FROM t'],
    ['current_user, which is not the clock', 'SELECT current_user'],
    ['a literal that only contains a clock word', "SELECT * FROM t WHERE a = 'nowhere'"],
  ])('%s', (_label, sql) => {
    expect(analyzeSql(sql)).toMatchObject({ cacheable: true, reason: null, writes: [] });
  });

  it('lists each table read once, a schema-qualified one apart from the bare one', () => {
    expect(analyzeSql('SELECT * FROM t, t AS t2, app.t').reads).toEqual([
      { schema: null, name: 't' },
      { schema: 'app', name: 't' },
    ]);
  });
});

describe('statements that change nothing a cached read depends on', () => {
  it.each([
    'BEGIN',
    'SHOW search_path',
    'LISTEN ch',
    'UNLISTEN ch',
    'NOTIFY ch',
    'LOCK TABLE t',
    'DEALLOCATE p',
    'CHECKPOINT',
    'CLOSE c',
    'FETCH c',
    'SET CONSTRAINTS ALL DEFERRED',
    'VACUUM t',
  ])('%s writes nothing', (sql) => {
    expect(writesOf(sql)).toEqual([]);
  });

  it('LOAD may write anything: a library runs its own code when it loads', () => {
    expect(writesOf("LOAD 'auto_explain'")).toBe('all');
  });

  it('a built-in that reads the clock writes nothing; one of the same name elsewhere may', () => {
    expect(writesOf('SELECT now()')).toEqual([]);
    expect(writesOf('SELECT app.now()')).toBe('all');
  });

  it.each([
    ['CREATE TABLE', 'CREATE TABLE x (a int)', ['x']],
    ['CREATE VIEW', 'CREATE VIEW v AS SELECT 1', ['v']],
    ['CREATE MATERIALIZED VIEW', 'CREATE MATERIALIZED VIEW mv AS SELECT 1', ['mv']],
    ['UPDATE in a CTE', 'WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u', ['t']],
  ])('%s writes its relation', (_label, sql, writes) => {
    expect(writesOf(sql)).toEqual(writes);
  });
});

describe('session effects of several statements: the strongest counts', () => {
  it.each([
    ['RESET ALL; SET a.b = 1', 'taints'],
    ["SELECT set_config('a.b', '1', false); RESET ALL", 'taints'],
    ["SELECT 1; SELECT set_config('a.b', '1', false)", 'taints'],
    ['SET a.b = 1; SET a.c = 2', 'taints'],
    ['SELECT 1; SELECT 2', 'none'],
    ['SET a.b = 1; DISCARD ALL', 'discards'],
    ['DISCARD ALL; SET a.b = 1', 'discards'],
  ])('%s', (sql, session) => {
    expect(analyzeSql(sql).session).toBe(session);
  });
});
