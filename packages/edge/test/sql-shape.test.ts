// sqlShape: texts that differ only in constants share a shape, and sharing one never hides a write.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSync } from 'libpg-query';
import { analyzeSql, loadSqlParser } from '../src/pg/sql/analyze.ts';
import { sqlShape } from '../src/pg/sql/shape.ts';
import { prng } from './helpers/prng.ts';

beforeAll(async () => {
  await loadSqlParser();
});

// What the statement memo reuses from one text of a shape for every other text of that shape.
function decision(sql: string) {
  const { cacheable, writes, reads } = analyzeSql(sql);
  return { cacheable, writes: writes === 'all' ? 'all' : [...writes].sort(), reads };
}

// Numbers become `?`, strings `?'`, bit strings `?b'` and N'…' strings `n?'`: a number and a
// string in one place are different statements to Postgres, so they never share a shape.
describe('constants collapse to placeholders', () => {
  it.each([
    ['integers, decimals and a leading dot', 'SELECT 1, 42.5, .5, 7.', 'select ?, ?, ?, ?'],
    ['exponents and digit separators', 'SELECT 1e10, 2.5E-3, 4e+2, 1_000_000', 'select ?, ?, ?, ?'],
    ['hex, octal and binary integers', 'SELECT 0x1F, 0XFF_FF, 0o17, 0b1010', 'select ?, ?, ?, ?'],
    ['standard strings, with a doubled quote', "SELECT 'abc', 'it''s', ''", "select ?', ?', ?'"],
    [
      'E strings, with backslash escapes',
      "SELECT E'a\\nb', e'it\\'s', E'x''y'",
      "select ?', ?', ?'",
    ],
    ['dollar-quoted strings', "SELECT $$a 'b' c$$, $tag$ $$ in $tag$", "select ?', ?'"],
    ['bit strings and N strings', "SELECT B'0101', x'1f', N'abc'", "select ?b', ?b', n?'"],
  ])('%s', (_label, sql, shape) => {
    expect(sqlShape(sql)).toBe(shape);
  });

  it('texts differing only in constants share one shape', () => {
    const shape = sqlShape("SELECT * FROM t WHERE a = 1 AND b = 'x' LIMIT 10");
    expect(shape).toBe("select * from t where a = ? and b = ?' limit ?");
    expect(sqlShape('SELECT * FROM t WHERE a = 99.5 AND b = $$y$$ LIMIT 0x10')).toBe(shape);
    expect(sqlShape("SELECT * FROM t WHERE a = 1e3 AND b = E'z' LIMIT 1_0")).toBe(shape);
  });

  it('keeps bind parameters, so $1 and $2 differ', () => {
    expect(sqlShape('SELECT * FROM t WHERE a = $1 AND b = $12')).toBe(
      'select * from t where a = $1 and b = $12',
    );
    expect(sqlShape('SELECT $1')).not.toBe(sqlShape('SELECT $2'));
  });

  it.each([
    ["'now'", "SELECT 'now'::timestamptz", "select 'now'::timestamptz"],
    ["'TODAY', as written", "SELECT 'TODAY'::date", "select 'TODAY'::date"],
    ["' tomorrow ', as written", "SELECT ' tomorrow '::date", "select ' tomorrow '::date"],
    ['$$yesterday$$', 'SELECT $$yesterday$$::date', "select 'yesterday'::date"],
  ])('keeps the clock word %s in the shape', (_label, sql, shape) => {
    expect(sqlShape(sql)).toBe(shape);
    expect(sqlShape(sql)).not.toBe(sqlShape("SELECT '2024-01-01'::date"));
  });
});

describe('tokens outside literals', () => {
  it('lower-cases identifiers and keywords and collapses whitespace', () => {
    expect(sqlShape('SELECT  Name,\n\tID\r\nFROM   Public.Items')).toBe(
      'select name, id from public.items',
    );
  });

  it('keeps quoted identifiers exactly, doubled quotes included', () => {
    expect(sqlShape('SELECT "Name" FROM "My""Table"')).toBe('select "Name" from "My""Table"');
    expect(sqlShape('SELECT "Name" FROM t')).not.toBe(sqlShape('SELECT "name" FROM t'));
  });

  it('reads a dollar inside an identifier as part of it, not as a parameter or a quote', () => {
    expect(sqlShape('SELECT a$1, b$$c FROM t')).toBe('select a$1, b$$c from t');
  });

  it.each([
    ['a line comment', 'SELECT a -- the name\nFROM t'],
    ['a line comment at the end', 'SELECT a FROM t -- done'],
    ['a block comment', 'SELECT /* the name */ a FROM t'],
    ['nested block comments', 'SELECT /* outer /* inner */ still outer */ a FROM t'],
    ['a block comment closed by several stars', 'SELECT /* x **/ a FROM t'],
  ])('drops %s', (_label, sql) => {
    expect(sqlShape(sql)).toBe('select a from t');
  });
});

describe('texts it cannot scan confidently get no shape', () => {
  it.each([
    ['an unterminated string', "SELECT 'abc"],
    ['an unterminated E string (the last quote is escaped)', "SELECT E'abc\\'"],
    ['an unterminated dollar quote', 'SELECT $$abc'],
    ['a dollar quote closed by another tag', 'SELECT $a$ x $b$'],
    ['an unterminated block comment', 'SELECT 1 /* x'],
    ['a nested block comment closed once', 'SELECT 1 /* a /* b */'],
    ['an unterminated quoted identifier', 'SELECT "abc'],
    ["a U&'…' string", "SELECT U&'\\0061'"],
    ['a U&"…" identifier', 'SELECT u&"d\\0061t" FROM t'],
    ['a number running into letters', 'SELECT 1abc'],
    ['a hex number running into letters', 'SELECT 0x1G'],
    ['an exponent running into letters', 'SELECT 1e5x'],
    ['a backslash outside an E string', 'SELECT \\ FROM t'],
    ['a lone dollar', 'SELECT $ FROM t'],
  ])('%s', (_label, sql) => {
    expect(sqlShape(sql)).toBeNull();
  });
});

describe('a shared shape never hides a write', () => {
  // [what the scan must get right, a text that writes, a read a wrong scan would give its shape]
  it.each([
    ['a dollar quote ends at its tag', 'SELECT $$x$$ ; DELETE FROM t', 'SELECT $$y$$'],
    [
      'a dollar quote ends at its own tag only',
      'SELECT $a$ x $b$ y $a$ ; DELETE FROM t',
      'SELECT $a$ x $b$ ; DELETE FROM t $a$',
    ],
    [
      "in an E string a backslash escapes the quote, and the next ' closes it",
      "SELECT E'\\'' ; delete from t --'",
      "SELECT E'x'",
    ],
    [
      'an escaped backslash does not escape the quote after it',
      "SELECT E'\\\\' ; DELETE FROM t --'",
      "SELECT E'x'",
    ],
    ["a ' inside a line comment opens nothing", "SELECT 1 -- '\n ; DELETE FROM t --'", 'SELECT 1'],
    [
      'a /* inside a line comment opens nothing',
      'SELECT 1 -- /*\n ; DELETE FROM t -- */',
      'SELECT 1',
    ],
    [
      'a nested comment closes at its last */',
      'SELECT 1 /* a /* b */ c */ ; DELETE FROM t',
      'SELECT 1 /* a /* b */ c ; DELETE FROM t */',
    ],
    ['a comment ends at its first */ after stars', 'SELECT 1 /* **/ ; DELETE FROM t', 'SELECT 1'],
    ["a ' inside a quoted identifier opens nothing", `SELECT "it's" ; DELETE FROM t`, 'SELECT 1'],
    // Postgres ends a -- comment at a carriage return as well as at a newline.
    ['a line comment ends at a carriage return', 'SELECT 1 --x\r; DELETE FROM t', 'SELECT 2'],
  ])('%s', (_label, write, read) => {
    expect(decision(write).writes).not.toEqual([]);
    expect(decision(read).writes).toEqual([]);
    const shape = sqlShape(write);
    if (shape !== null) expect(shape).not.toBe(sqlShape(read));
  });

  // What only looks like a write is a literal or a comment to Postgres too: sharing is right here.
  it.each([
    ['a doubled quote keeps the string open', "SELECT 'a'';DELETE FROM t;--'", "SELECT 'x'"],
    [
      'nested comments hide the text between them',
      'SELECT 1 /* /* */ ; DELETE FROM t */',
      'SELECT 2',
    ],
    ['a dollar quote holds other tags', 'SELECT $a$ $b$ ; DELETE FROM t ; $b$ $a$', 'SELECT $$x$$'],
  ])('%s', (_label, text, read) => {
    expect(decision(text)).toEqual(decision(read));
    expect(sqlShape(text)).toBe(sqlShape(read));
  });
});

describe('a shared shape never hides the clock', () => {
  // The clock word is what makes a literal uncacheable, wherever the literal came from.
  it.each([
    ["E'now'", "SELECT E'now'::timestamptz", "SELECT E'2024-01-01'::timestamptz"],
    ["N'now'", "SELECT N'now'::timestamptz", "SELECT N'2024-01-01'::timestamptz"],
    [
      "'no' continued by 'w' on the next line",
      "SELECT 'no'\n'w'::timestamptz",
      "SELECT '2024-01-'\n'01'::timestamptz",
    ],
  ])('written as %s, it does not share a date’s shape', (_label, clock, date) => {
    expect(decision(clock).cacheable).toBe(false);
    expect(decision(date).cacheable).toBe(true);
    const shape = sqlShape(clock);
    if (shape !== null) expect(shape).not.toBe(sqlShape(date));
  });
});

describe('a text Postgres refuses does not share a valid read’s shape', () => {
  // The memo keeps the first analysis of a shape for every session: a text Postgres refuses
  // (assumed to write everything) must not lend that analysis to a valid read, or take its.
  it.each([
    ['a doubled quote, which ends a bit string', "SELECT X'0f''1'", "SELECT X'0f'"],
    ['a second decimal point', 'SELECT 1..2', 'SELECT 1.2'],
    ['a doubled digit separator', 'SELECT 1__0', 'SELECT 10'],
    ['a radix prefix without digits', 'SELECT 0x', 'SELECT 0'],
    [
      'a number where a typed literal needs a string',
      'SELECT date 20240101',
      "SELECT date '2024-01-01'",
    ],
  ])('%s', (_label, bad, good) => {
    expect(decision(bad).writes).toBe('all');
    expect(decision(good).writes).toEqual([]);
    const shape = sqlShape(bad);
    if (shape !== null) expect(shape).not.toBe(sqlShape(good));
  });
});

type Random = (limit: number) => number;

const pick = <T>(random: Random, items: readonly T[]): T => items[random(items.length)] as T;

// Code shared by both texts of a pair.
const CODE = [
  'SELECT',
  'a',
  '*',
  'FROM t',
  'FROM t JOIN u ON t.id = u.id',
  'WHERE a =',
  'AND b <>',
  ',',
  '(',
  ')',
  '::timestamptz',
  ';',
  'DELETE FROM t',
  'UPDATE t SET a =',
  'INSERT INTO t VALUES (',
  'now()',
  'FOR UPDATE',
  'LIMIT',
  '$1',
  '"Q"',
  'E',
  'x',
];

// Pieces of a literal or comment body: harmless inside one, a write if the scan ends it early.
const BODY = [
  'x',
  ' ',
  "''",
  "'",
  '\\',
  "\\'",
  '\\\\',
  ';',
  ' DELETE FROM t ',
  ' ; DELETE FROM t ; ',
  '--',
  '\n',
  '\r',
  '/*',
  '*/',
  '$$',
  '$q$',
  '"',
  'now',
  'today',
];

function body(random: Random): string {
  let text = '';
  for (let n = random(4); n > 0; n--) text += pick(random, BODY);
  return text;
}

function literal(random: Random): string {
  switch (random(10)) {
    case 0:
      return pick(random, ['1', '42.5', '.5', '1e10', '2.5E-3', '1_000', '0x1F', '0b101', '7.']);
    case 1:
      return pick(random, ["'now'", "'today'", "' Tomorrow '", "'2024-01-01'", '$$now$$']);
    case 2:
      return `E'${body(random)}'`;
    case 3:
      return `$$${body(random)}$$`;
    case 4:
      return `$q$${body(random)}$q$`;
    case 5:
      return pick(random, ["B'0101'", "X'1f'", "N'abc'", "N'now'", "E'now'"]);
    default:
      return `'${body(random)}'`;
  }
}

function gap(random: Random): string {
  switch (random(6)) {
    case 0:
      return `-- ${body(random)}\n`;
    case 1:
      return `/* ${body(random)} */`;
    case 2:
      return `/* /* ${body(random)} */ */`;
    case 3:
      return `--${body(random)}\r`;
    default:
      return pick(random, [' ', '\n', '\t', '\r\n', '']);
  }
}

type Slot = { kind: 'code'; text: string } | { kind: 'literal' } | { kind: 'gap' };

const TEMPLATES: Slot[][] = [
  'SELECT * FROM t WHERE a = {L}{G}AND b <> {L}',
  'SELECT {L}::timestamptz{G}',
  'SELECT a FROM t WHERE a = {L}{G}LIMIT {L}',
  'SELECT {L}{G}, {L}{G}FROM t',
].map((template) =>
  template
    .split(/(\{L\}|\{G\})/)
    .filter((part) => part !== '')
    .map((part): Slot => {
      if (part === '{L}') return { kind: 'literal' };
      if (part === '{G}') return { kind: 'gap' };
      return { kind: 'code', text: part };
    }),
);

function randomSlots(random: Random): Slot[] {
  if (random(2) === 0) return pick(random, TEMPLATES);
  const slots: Slot[] = [{ kind: 'code', text: 'SELECT ' }];
  for (let n = 1 + random(7); n > 0; n--) {
    const roll = random(3);
    if (roll === 0) slots.push({ kind: 'code', text: ` ${pick(random, CODE)} ` });
    else slots.push(roll === 1 ? { kind: 'literal' } : { kind: 'gap' });
  }
  return slots;
}

function render(random: Random, slots: Slot[]): string {
  return slots
    .map((slot) =>
      slot.kind === 'code' ? slot.text : slot.kind === 'literal' ? literal(random) : gap(random),
    )
    .join('');
}

// Pairs of texts built from one template whose constants and comments were drawn separately,
// kept when they share a (non-null) shape.
function sharedShapePairs(cases: number, seed: number): { a: string; b: string; shape: string }[] {
  const random = prng(seed);
  const pairs: { a: string; b: string; shape: string }[] = [];
  for (let i = 0; i < cases; i++) {
    const slots = randomSlots(random);
    const a = render(random, slots);
    const b = render(random, slots);
    const shape = sqlShape(a);
    if (shape !== null && shape === sqlShape(b)) pairs.push({ a, b, shape });
  }
  return pairs;
}

// Failure output with line breaks made visible: a carriage return matters here.
const visible = (pairs: { a: string; b: string }[]) =>
  pairs
    .slice(0, 5)
    .map(({ a, b }) => [a, b].map((text) => text.replace(/\r/g, '␍').replace(/\n/g, '␊')));

function parses(sql: string): boolean {
  try {
    parseSync(sql);
    return true;
  } catch {
    return false;
  }
}

describe('property: sharing a shape never changes the analysis', () => {
  const CASES = 4000;

  it('texts Postgres accepts that share a shape get the same decision', () => {
    const pairs = sharedShapePairs(CASES, 0x5eed).filter(({ a, b }) => parses(a) && parses(b));
    // Enough pairs share a shape for the property to mean something.
    expect(pairs.length).toBeGreaterThan(CASES / 10);
    const mismatches = pairs.filter(
      ({ a, b }) => JSON.stringify(decision(a)) !== JSON.stringify(decision(b)),
    );
    expect(visible(mismatches)).toEqual([]);
  });

  // The statement memo keeps the first analysis of a shape: a refused text's (writes 'all')
  // would make every valid read of that shape invalidate the whole cache.
  it('a text Postgres refuses never shares a shape with one it accepts', () => {
    const pairs = sharedShapePairs(CASES, 0x5eed);
    expect(pairs.length).toBeGreaterThan(CASES / 5);
    const mixed = pairs.filter(({ a, b }) => parses(a) !== parses(b));
    expect(visible(mixed)).toEqual([]);
  });
});
