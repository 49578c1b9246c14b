// The tables under each view, closed over views of views, as the edge is handed them.
import { describe, expect, it } from 'vitest';
import { closeOverViews } from '../src/replication/view-tables.ts';
import { withViewTables } from '@edgegate/edge';

const reads = (entries: Record<string, string[]>) =>
  new Map(Object.entries(entries).map(([view, tables]) => [view, new Set(tables)]));

describe('closeOverViews', () => {
  it('counts every table below a view of views, and the views between', () => {
    expect(
      closeOverViews(
        reads({ top: ['middle', 'audit'], middle: ['bottom', 'orders'], bottom: ['users'] }),
      ),
    ).toEqual({
      bottom: ['users'],
      middle: ['bottom', 'orders', 'users'],
      top: ['audit', 'bottom', 'middle', 'orders', 'users'],
    });
  });

  it('ends on a cycle (two schemas’ views of one bare name) and leaves out a view of nothing', () => {
    expect(closeOverViews(reads({ a: ['b', 't1'], b: ['a', 't2'], constant: [] }))).toEqual({
      a: ['b', 't1', 't2'],
      b: ['a', 't1', 't2'],
    });
  });

  it('sorts, so the same catalog read twice compares equal', () => {
    const first = closeOverViews(reads({ v: ['z', 'a', 'm'] }));
    const second = closeOverViews(reads({ v: ['m', 'z', 'a'] }));
    expect(JSON.stringify(first)).toBe(JSON.stringify(second));
  });
});

describe('withViewTables', () => {
  it('adds the tables under views among the tables read, and nothing else', () => {
    const views = { v: ['t1', 't2'] };
    expect(withViewTables(['v', 'other'], views)).toEqual(['v', 'other', 't1', 't2']);
    const plain = ['t1'];
    expect(withViewTables(plain, views)).toBe(plain);
    expect(withViewTables(['v'], undefined)).toEqual(['v']);
    // A table named like an Object.prototype member is just a table.
    expect(withViewTables(['constructor', 'toString'], views)).toEqual(['constructor', 'toString']);
  });
});
