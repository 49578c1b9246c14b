// The function lists behind the cache decision: which built-ins a cached read may call, and which
// are known not to write (so calling them invalidates nothing). One name from every line of each
// list, so a line that went missing is noticed.
import { describe, expect, it } from 'vitest';
import { isCacheableFunction, isKnownNonWritingFunction } from '../src/pg/sql/functions.ts';

const CACHEABLE = [
  'count',
  'jsonb_object_agg',
  'regr_intercept',
  'nth_value',
  'grouping',
  'substring',
  'rpad',
  'sha224',
  'regexp_split_to_array',
  'chr',
  'array_to_string',
  'greatest',
  'acos',
  'trim_scale',
  'make_interval',
  'date_bin',
  'array_replace',
  'generate_series',
  'jsonb_build_object',
  'json_array_length',
  'jsonb_extract_path',
  'jsonb_strip_nulls',
  'jsonb_each_text',
  'jsonb_array_elements_text',
  'jsonb_path_match',
  'jsonb_object',
  'current_schemas',
  'user',
];

const NON_WRITING_ONLY = [
  'now',
  'random',
  'random_normal',
  'setval',
  'pg_sleep',
  'version',
  'pg_advisory_lock',
  'pg_advisory_xact_lock',
  'pg_is_in_recovery',
  'pg_postmaster_start_time',
  'has_table_privilege',
  'pg_get_userbyid',
  'pg_table_is_visible',
  'pg_get_expr',
  'pg_relation_size',
  'pg_get_indexdef',
];

describe('the function lists', () => {
  it.each(CACHEABLE)('%s may be called by a cached read, and writes nothing', (name) => {
    expect(isCacheableFunction(name)).toBe(true);
    expect(isKnownNonWritingFunction(name)).toBe(true);
  });

  it.each(NON_WRITING_ONLY)('%s writes nothing, but a read calling it is not cached', (name) => {
    expect(isCacheableFunction(name)).toBe(false);
    expect(isKnownNonWritingFunction(name)).toBe(true);
  });

  it.each(['', ' ', 'count sum', 'nextval_x', 'my_function', 'COUNT', 'pg_terminate_backend'])(
    '%j is in neither list',
    (name) => {
      expect(isCacheableFunction(name)).toBe(false);
      expect(isKnownNonWritingFunction(name)).toBe(false);
    },
  );
});
