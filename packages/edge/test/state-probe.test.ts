// Reading the state probe's row: roles, changed settings and custom settings merge into one state.
import { describe, expect, it } from 'vitest';
import { serialize } from '../src/pg/protocol/index.ts';
import {
  readCodeHint,
  readStateProbe,
  stateProbe,
  STATE_PROBE,
} from '../src/pg/session/state-probe.ts';

describe('readStateProbe', () => {
  it('merges changed and custom settings, and reads the roles and privacy', () => {
    const row = serialize.dataRow([
      'alice',
      'app',
      'f',
      '{"search_path": "a, b", "statement_timeout": "1000"}',
      '{"app.tenant": "2"}',
    ]);
    expect(readStateProbe(row)).toEqual({
      currentUser: 'alice',
      sessionUser: 'app',
      settings: new Map([
        ['search_path', 'a, b'],
        ['statement_timeout', '1000'],
        ['app.tenant', '2'],
      ]),
      private: false,
    });
  });

  it('reads no settings as none, and t as private', () => {
    expect(readStateProbe(serialize.dataRow(['app', 'app', 't', null, null]))).toEqual({
      currentUser: 'app',
      sessionUser: 'app',
      settings: new Map(),
      private: true,
    });
  });

  it('refuses a row without roles or privacy', () => {
    expect(readStateProbe(serialize.dataRow([null, 'app', 'f', null, null]))).toBeNull();
    expect(readStateProbe(serialize.dataRow(['app', null, 'f', null, null]))).toBeNull();
    expect(readStateProbe(serialize.dataRow(['app', 'app', null, null, null]))).toBeNull();
  });

  it('is one simple Query the origin logs as the edge’s', () => {
    expect(STATE_PROBE[0]).toBe(0x51);
    expect(STATE_PROBE.toString('utf8', 5)).toMatch(/^\/\* edgegate: session state probe \*\//);
  });

  it('carries what was read of the code, so the origin reads it again only if it changed', () => {
    const hint = { fingerprint: 'abc', names: ['app.tenant', `it's`], private: true };
    const text = stateProbe([], hint).toString('utf8', 5);
    expect(text).toContain(`OPERATOR(pg_catalog.<>) E'abc'`);
    expect(text).toContain(`ARRAY[E'app.tenant', E'it''s']::pg_catalog.text[]`);
    expect(text).toContain(`(SELECT private FROM learned), true)`);
    expect(STATE_PROBE.toString('utf8', 5)).toContain(`OPERATOR(pg_catalog.<>) E''`);
  });

  it('reads the code’s names only when the origin read them again', () => {
    const row = (names: string | null, isPrivate: string | null) =>
      serialize.dataRow(['app', 'app', 'f', null, null, 'fp', names, isPrivate]);
    expect(readCodeHint(row('["app.tenant"]', 'f'))).toEqual({
      fingerprint: 'fp',
      names: ['app.tenant'],
      private: false,
    });
    expect(readCodeHint(row(null, null))).toBeNull();
  });
});
