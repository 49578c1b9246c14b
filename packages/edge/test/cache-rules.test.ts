// The finer points of a cache's rules: how table names are spelled in rule keys (as the control
// plane spells them), the query-rule hash, and what a rule without its own TTL keeps.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CompiledRules, queryHash, type EdgeRule } from '../src/control/config.ts';

function compiled(rules: EdgeRule[], defaultTtlSeconds = 60): CompiledRules {
  return new CompiledRules({
    id: 'cache-1',
    type: 'postgres',
    hostname: '127.0.0.1',
    port: 5432,
    defaultMode: 'off',
    defaultTtlSeconds,
    originTls: 'disable',
    rules,
  });
}

const tableRule = (key: string, ttlSeconds: number | null = 1): EdgeRule => ({
  kind: 'table',
  key,
  mode: 'manual',
  ttlSeconds,
  transactionPolicy: 'untilWrite',
});

describe('table names in rule keys', () => {
  it.each([
    ['a lower-case name', 'items', 'items'],
    ['an underscore first', '_items', '_items'],
    ['digits and a dollar after the first letter', 'items_2$', 'items_2$'],
    ['a lower-case letter outside ASCII', 'überblick', 'überblick'],
    ['a capital letter', 'Items', '"Items"'],
    ['a digit first', '2items', '"2items"'],
    ['a space', 'order lines', '"order lines"'],
    ['a double quote, doubled', 'say "hi"', '"say ""hi"""'],
    ['a hyphen', 'a-b', '"a-b"'],
  ])('%s: %j is matched by the rule key %s', (_label, name, key) => {
    const rules = compiled([tableRule(key)]);
    expect(rules.decide('SELECT 1', 'f', [{ schema: null, name }])).not.toBeNull();
    expect(rules.decide('SELECT 1', 'f', [{ schema: 'app', name }])).not.toBeNull();
    const schemaRules = compiled([tableRule(`${key === name ? 'app' : '"App"'}.${key}`)]);
    const schema = key === name ? 'app' : 'App';
    expect(schemaRules.decide('SELECT 1', 'f', [{ schema, name }])).not.toBeNull();
    expect(schemaRules.decide('SELECT 1', 'f', [{ schema: 'other', name }])).toBeNull();
  });

  it('a quoted key does not match the unquoted spelling, nor the other way round', () => {
    expect(
      compiled([tableRule('"items"')]).decide('SELECT 1', 'f', [{ schema: null, name: 'items' }]),
    ).toBeNull();
    expect(
      compiled([tableRule('Items')]).decide('SELECT 1', 'f', [{ schema: null, name: 'Items' }]),
    ).toBeNull();
  });
});

describe('rule details', () => {
  it('a query rule is keyed by the SHA-256 of the exact text, in hex', () => {
    expect(queryHash('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    // Of the UTF-8 bytes, as the control plane hashes them.
    expect(queryHash('é')).toBe(
      createHash('sha256')
        .update(Buffer.from([0xc3, 0xa9]))
        .digest('hex'),
    );
  });

  it('a manual rule without its own TTL keeps the default one, and keeps its transaction policy', () => {
    const rules = compiled(
      [
        {
          kind: 'template',
          key: 'f',
          mode: 'manual',
          ttlSeconds: null,
          transactionPolicy: 'never',
        },
      ],
      42,
    );
    expect(rules.decide('SELECT 1', 'f', [])).toEqual({
      ttlMs: 42_000,
      transactionPolicy: 'never',
    });
  });

  it('a manual table rule with its own TTL of several tables keeps the smallest', () => {
    const rules = compiled([tableRule('a', 7), tableRule('b', 3)]);
    expect(
      rules.decide('SELECT 1', 'f', [
        { schema: null, name: 'a' },
        { schema: null, name: 'b' },
      ]),
    ).toEqual({ ttlMs: 3_000, transactionPolicy: 'untilWrite' });
  });
});
