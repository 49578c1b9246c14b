// What a user function may write, read from its definition (pg_get_functiondef's text), and what a
// statement's calls reach through the catalog rows a probe returned; no database involved.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../src/index.ts';
import { serialize } from '../src/pg/protocol/index.ts';
import { readProbeFunctions, stateProbe, STATE_PROBE } from '../src/pg/session/state-probe.ts';
import { analyzeSql } from '../src/pg/sql/analyze.ts';
import {
  carryForward,
  FunctionEffectMemo,
  functionEffects,
  LearnedFunctions,
  type CatalogFunction,
} from '../src/pg/sql/function-effects.ts';

beforeAll(() => loadSqlParser());

const plpgsql = (body: string, args = 't int') =>
  `CREATE OR REPLACE FUNCTION public.f(${args})\n RETURNS void\n LANGUAGE plpgsql\nAS $function$${body}$function$`;
const sql = (body: string) =>
  `CREATE OR REPLACE FUNCTION public.f(t int)\n RETURNS void\n LANGUAGE sql\nAS $function$${body}$function$`;

function fn(
  name: string,
  definition: string | null,
  language = 'plpgsql',
  xmin = '7',
): CatalogFunction {
  return { name, oid: name.length, xmin, language, definition };
}

describe('functionEffects', () => {
  it.each([
    [
      'set_config only',
      plpgsql(`BEGIN PERFORM set_config('app.tenant', t::text, false); END`),
      { writes: [], calls: [] },
    ],
    [
      'an INSERT',
      plpgsql(`BEGIN INSERT INTO items VALUES (t); END`),
      { writes: ['items'], calls: [] },
    ],
    [
      'writes in branches, loops, handlers and a declaration',
      plpgsql(`DECLARE x int := (SELECT count(*) FROM a);
        BEGIN
          IF t > 1 THEN UPDATE b SET v = 1; ELSE DELETE FROM c; END IF;
          FOR i IN 1..3 LOOP INSERT INTO d VALUES (i); END LOOP;
        EXCEPTION WHEN others THEN INSERT INTO e VALUES (0);
        END`),
      { writes: ['b', 'c', 'd', 'e'], calls: [] },
    ],
    [
      'a call in an assignment',
      plpgsql(`DECLARE x int; BEGIN x := helper(t) + 1; END`),
      { writes: [], calls: ['helper'] },
    ],
    [
      'a call in a subscript being assigned',
      plpgsql(`DECLARE a int[]; BEGIN a[helper(t)] := 1; END`),
      { writes: [], calls: ['helper'] },
    ],
    [
      'a call in RETURN',
      plpgsql(`BEGIN RETURN helper(t); END`).replace('RETURNS void', 'RETURNS integer'),
      { writes: [], calls: ['helper'] },
    ],
    [
      'a call in RAISE',
      plpgsql(`BEGIN RAISE NOTICE '%', helper(t); END`),
      { writes: [], calls: ['helper'] },
    ],
    ['EXECUTE', plpgsql(`BEGIN EXECUTE 'SELECT 1'; END`), { writes: 'all', calls: [] }],
    [
      'RETURN QUERY EXECUTE',
      plpgsql(`BEGIN RETURN QUERY EXECUTE 'SELECT 1'; END`),
      { writes: 'all', calls: [] },
    ],
    [
      'FOR … IN EXECUTE',
      plpgsql(`DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END`),
      { writes: 'all', calls: [] },
    ],
    ['CALL', plpgsql(`BEGIN CALL p(); END`), { writes: 'all', calls: [] }],
    ['a body the parser refuses', plpgsql(`BEGIN NOT PL/pgSQL; END`), { writes: 'all', calls: [] }],
    [
      'a SQL body',
      sql(`SELECT set_config('app.tenant', t::text, false)`),
      { writes: [], calls: [] },
    ],
    [
      'a SQL body of several statements',
      sql(`INSERT INTO a VALUES (t); SELECT helper(t)`),
      { writes: ['a'], calls: ['helper'] },
    ],
  ])('%s', (_label, definition, effects) => {
    const language = definition.includes('LANGUAGE sql') ? 'sql' : 'plpgsql';
    const got = functionEffects(fn('f', definition, language));
    expect({ ...got, writes: got.writes === 'all' ? 'all' : [...got.writes].sort() }).toEqual(
      effects,
    );
  });

  it('reads a SQL function in the standard form (BEGIN ATOMIC, RETURN)', () => {
    const atomic = `CREATE OR REPLACE FUNCTION public.f(t integer)\n RETURNS integer\n LANGUAGE sql\nBEGIN ATOMIC\n INSERT INTO a VALUES (t);\n SELECT helper(t);\nEND`;
    expect(functionEffects(fn('f', atomic, 'sql'))).toEqual({ writes: ['a'], calls: ['helper'] });
    const returns = `CREATE OR REPLACE FUNCTION public.f(t integer)\n RETURNS integer\n LANGUAGE sql\nRETURN helper(t)`;
    expect(functionEffects(fn('f', returns, 'sql'))).toEqual({ writes: [], calls: ['helper'] });
  });

  it('takes any other language, or no definition, for writing anything', () => {
    expect(functionEffects(fn('f', 'int4pl', 'internal')).writes).toBe('all');
    expect(functionEffects(fn('f', plpgsql('BEGIN END'), 'plpython3u')).writes).toBe('all');
    expect(functionEffects(fn('f', null)).writes).toBe('all');
  });
});

describe('FunctionEffectMemo.resolve', () => {
  const memo = new FunctionEffectMemo();
  const writesB = fn('writes_b', plpgsql('BEGIN INSERT INTO b VALUES (1); END'));
  const callsB = fn('calls_b', plpgsql('BEGIN PERFORM writes_b(); END'));
  const loopA = fn('loop_a', plpgsql('BEGIN PERFORM loop_b(); END'));
  const loopB = fn('loop_b', plpgsql('BEGIN PERFORM loop_a(); INSERT INTO c VALUES (1); END'));

  it('adds up what nested calls write, through cycles', () => {
    expect(memo.resolve(['calls_b'], [callsB, writesB])).toEqual(['b']);
    expect(memo.resolve(['loop_a'], [loopA, loopB])).toEqual(['c']);
  });

  it('takes a name with no function read for writing anything', () => {
    expect(memo.resolve(['calls_b'], [callsB])).toBe('all');
  });

  it('counts every overload of a name', () => {
    const quiet = fn('same', plpgsql('BEGIN END'));
    const loud = { ...fn('same', plpgsql('BEGIN DELETE FROM d; END')), oid: 99 };
    expect(memo.resolve(['same'], [quiet, loud])).toEqual(['d']);
  });
});

describe('LearnedFunctions', () => {
  const quiet = fn('f', plpgsql('BEGIN END'));

  it('relies on nothing the first time, then on what the last probe read', () => {
    const learned = new LearnedFunctions();
    const first = learned.plan('db', ['f']);
    expect(learned.mayRely(first)).toBe(false);
    expect(learned.settle(first, [quiet])).toBe('all');
    const second = learned.plan('db', ['f']);
    expect(learned.mayRely(second)).toBe(true);
    expect(learned.settle(second, [quiet])).toEqual([]);
    expect(learned.mayRely(learned.plan('other db', ['f']))).toBe(false);
  });

  it('takes a redefinition between two probes, or a failed probe, for writing anything', () => {
    const learned = new LearnedFunctions();
    learned.settle(learned.plan('db', ['f']), [quiet]);
    const check = learned.plan('db', ['f']);
    expect(learned.settle(check, [{ ...quiet, xmin: '8' }])).toBe('all');
    expect(learned.settle(learned.plan('db', ['f']), null)).toBe('all');
    expect(learned.settle(learned.plan('db', ['f']), [{ ...quiet, xmin: '8' }])).toEqual([]);
  });

  it('reads the functions a call reaches through what it learned', () => {
    const learned = new LearnedFunctions();
    const outer = fn('outer', plpgsql('BEGIN PERFORM inner(); END'));
    const inner = fn('inner', plpgsql('BEGIN INSERT INTO t VALUES (1); END'));
    learned.settle(learned.plan('db', ['outer']), [outer]);
    const second = learned.plan('db', ['outer']);
    expect(second.names.sort()).toEqual(['inner', 'outer']);
    expect(learned.settle(second, [outer, inner])).toBe('all');
    expect(learned.settle(learned.plan('db', ['outer']), [outer, inner])).toEqual(['t']);
  });
});

describe('the probe of functions', () => {
  it('is the plain probe when no function is asked for', () => {
    expect(stateProbe([])).toBe(STATE_PROBE);
  });

  it('quotes names whatever they hold', () => {
    const text = stateProbe([`it's`, 'back\\slash']).toString('utf8', 5);
    expect(text).toContain(`ARRAY[E'it''s', E'back\\\\slash']`);
  });

  it('reads the functions and the isolation level, and refuses a list that may be cut', () => {
    const row = (list: unknown[]) =>
      serialize.dataRow([
        ...['u', 'u', 'f', null, null, 'fp', null, null],
        ...[JSON.stringify(list), 'read committed'],
      ]);
    expect(readProbeFunctions(row([['f', 1, '7', 'sql', 'def']]))).toEqual({
      functions: [{ name: 'f', oid: 1, xmin: '7', language: 'sql', definition: 'def' }],
      isolation: 'read committed',
    });
    expect(
      readProbeFunctions(
        serialize.dataRow(['u', 'u', 'f', null, null, 'fp', null, null, null, 'serializable']),
      ),
    ).toEqual({
      functions: [],
      isolation: 'serializable',
    });
    const many = Array.from({ length: 64 }, (_, i) => ['f', i, '7', 'sql', 'def']);
    expect(readProbeFunctions(row(many))?.functions).toBeNull();
    expect(readProbeFunctions(serialize.dataRow(['u', 'u', 'f', null, null]))).toBeNull();
  });
});

describe('analyzeSql effects', () => {
  it('keeps what a statement writes apart from the functions it calls', () => {
    expect(analyzeSql(`SELECT set_tenant(1)`)).toMatchObject({
      writes: 'all',
      effects: { writes: [], calls: ['set_tenant'] },
    });
    expect(analyzeSql(`INSERT INTO a SELECT "MixedCase"(x) FROM b`).effects).toEqual({
      writes: ['a'],
      calls: ['MixedCase'],
    });
    expect(analyzeSql(`SELECT set_tenant(1); COMMIT`).effects).toBeNull();
    expect(analyzeSql(`DO $$ BEGIN END $$`).effects).toEqual({ writes: 'all', calls: [] });
  });
});

describe('function effects, edge cases', () => {
  const effectsOf = (definition: string, language = 'plpgsql') => {
    const got = functionEffects(fn('f', definition, language));
    return { ...got, writes: got.writes === 'all' ? 'all' : [...got.writes].sort() };
  };

  it('reads an assignment written with = as its target and its expression', () => {
    expect(effectsOf(plpgsql(`DECLARE x int; BEGIN x =helper(t); END`))).toEqual({
      writes: [],
      calls: ['helper'],
    });
  });

  it('takes OPEN … FOR EXECUTE for writing anything', () => {
    expect(
      effectsOf(plpgsql(`DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END`)).writes,
    ).toBe('all');
  });

  it('takes a SQL definition that is not one CREATE FUNCTION for writing anything', () => {
    expect(effectsOf('SELECT 1', 'sql').writes).toBe('all');
    expect(effectsOf(`${sql('SELECT 1')};\nSELECT 2`, 'sql').writes).toBe('all');
  });
});

describe('FunctionEffectMemo, edge cases', () => {
  it('does not run the language into the definition', () => {
    const memo = new FunctionEffectMemo();
    const definition = sql('SELECT 1');
    expect(memo.effects({ ...fn('f', `l${definition}`), language: 'sq' }).writes).toBe('all');
    expect(memo.effects(fn('f', definition, 'sql'))).toEqual({ writes: [], calls: [] });
  });

  it('takes a nested call that may write anything for writing anything', () => {
    const memo = new FunctionEffectMemo();
    const dynamic = fn('dynamic', plpgsql(`BEGIN EXECUTE 'SELECT 1'; END`));
    const outer = fn('outer', plpgsql('BEGIN PERFORM dynamic(); END'));
    expect(memo.resolve(['outer'], [outer, dynamic])).toBe('all');
  });
});

describe('LearnedFunctions, edge cases', () => {
  const quiet = fn('f', plpgsql('BEGIN END'));

  it('plans through a cycle of calls', () => {
    const learned = new LearnedFunctions();
    const loopA = fn('loop_a', plpgsql('BEGIN PERFORM loop_b(); END'));
    const loopB = fn('loop_b', plpgsql('BEGIN PERFORM loop_a(); INSERT INTO c VALUES (1); END'));
    learned.settle(learned.plan('db', ['loop_a', 'loop_b']), [loopA, loopB]);
    const check = learned.plan('db', ['loop_a']);
    expect(check.names.sort()).toEqual(['loop_a', 'loop_b']);
    expect(learned.settle(check, [loopA, loopB])).toEqual(['c']);
  });

  it('keeps only the rows of the names a check reads', () => {
    const learned = new LearnedFunctions();
    const stray = fn('stray', plpgsql('BEGIN PERFORM elsewhere(); END'));
    learned.settle(learned.plan('db', ['f']), [quiet, stray]);
    const check = learned.plan('db', ['f']);
    expect(check.names).toEqual(['f']);
    expect(learned.mayRely(check)).toBe(true);
    expect(learned.settle(check, [quiet, stray])).toEqual([]);
  });

  it('remembers the names of earlier probes, up to 10 000 names a database', () => {
    const learned = new LearnedFunctions();
    const g = fn('g', plpgsql('BEGIN END'));
    learned.settle(learned.plan('db', ['f']), [quiet]);
    learned.settle(learned.plan('db', ['g']), [g]);
    expect(learned.mayRely(learned.plan('db', ['f']))).toBe(true);

    const full = new LearnedFunctions();
    const names = Array.from({ length: 10_000 }, (_, i) => `n${i}`);
    full.settle(full.plan('db', names), []);
    expect(full.mayRely(full.plan('db', ['n0']))).toBe(true);
    full.settle(full.plan('db', ['f']), [quiet]);
    expect(full.mayRely(full.plan('db', ['n0']))).toBe(false);
    expect(full.mayRely(full.plan('db', ['f']))).toBe(true);
  });
});

describe('carryForward', () => {
  const quiet = fn('f', plpgsql('BEGIN END'));
  const other = fn('g', plpgsql('BEGIN INSERT INTO g VALUES (1); END'));

  it('counts what an earlier probe read of an unknown function as seen before', () => {
    const learned = new LearnedFunctions();
    const earlier = learned.plan('db', ['f']);
    const later = learned.plan('db', ['f']);
    expect(learned.mayRely(later)).toBe(false);
    carryForward(earlier, [quiet, other], later);
    expect(learned.mayRely(later)).toBe(true);
    expect(learned.settle(earlier, [quiet, other])).toBe('all');
    expect(learned.settle(later, [quiet, other])).toEqual([]);
  });

  it('keeps what was known before when a function was redefined in between', () => {
    const learned = new LearnedFunctions();
    learned.settle(learned.plan('db', ['f']), [quiet]);
    learned.settle(learned.plan('db', ['f']), [quiet]);
    const earlier = learned.plan('db', ['f']);
    const later = learned.plan('db', ['f']);
    const redefined = { ...quiet, xmin: '8' };
    carryForward(earlier, [redefined], later);
    expect(learned.settle(earlier, [redefined])).toBe('all');
    expect(learned.settle(later, [redefined])).toBe('all');
  });
});
