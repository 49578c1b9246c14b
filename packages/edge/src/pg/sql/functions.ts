// Which built-in functions a cached read may call. The parser cannot tell volatility, so this is an
// allow-list of immutable or stable built-ins whose result depends only on their arguments and on
// session settings that are part of the cache key; anything else makes a read uncacheable.
// Stable functions that read the clock (now(), age(x), current_date…) are deliberately absent.
// A function on neither list (a user function, or a built-in not listed) may write: what it writes
// is learned from its definition in the origin's catalog (function-effects.ts), and a built-in
// not listed is read as what it is there (internal or C: may write anything).

const CACHEABLE = new Set(
  [
    // aggregates and window functions
    'count sum avg min max bool_and bool_or every array_agg string_agg json_agg jsonb_agg',
    'json_object_agg jsonb_object_agg stddev stddev_pop stddev_samp variance var_pop var_samp',
    'percentile_cont percentile_disc mode corr covar_pop covar_samp regr_slope regr_intercept',
    'row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value',
    'grouping',
    // strings
    'lower upper length char_length character_length octet_length bit_length substr substring',
    'trim btrim ltrim rtrim concat concat_ws replace left right position strpos split_part lpad rpad',
    'repeat reverse initcap starts_with format quote_ident quote_literal quote_nullable md5 sha224',
    'sha256 sha384 sha512 encode decode regexp_replace regexp_match regexp_matches regexp_split_to_array',
    'regexp_split_to_table regexp_like regexp_count regexp_instr regexp_substr translate ascii chr',
    'to_hex overlay unistr normalize string_to_array string_to_table array_to_string',
    // numbers
    'abs round floor ceil ceiling trunc sign sqrt cbrt power pow exp ln log log10 mod div greatest',
    'least width_bucket to_char to_number gcd lcm factorial pi degrees radians sin cos tan asin acos',
    'atan atan2 numeric int2 int4 int8 float4 float8 scale min_scale trim_scale',
    // dates, without the clock
    'date_trunc date_part extract make_date make_time make_timestamp make_timestamptz make_interval',
    'to_date to_timestamp justify_days justify_hours justify_interval isfinite date_bin',
    // arrays, ranges, json
    'array_length array_lower array_upper array_position array_positions array_remove array_replace',
    'array_append array_prepend array_cat array_dims array_ndims cardinality unnest generate_series',
    'generate_subscripts lower_inc upper_inc isempty range_merge json_build_object jsonb_build_object',
    'json_build_array jsonb_build_array to_json to_jsonb row_to_json array_to_json json_array_length',
    'jsonb_array_length json_extract_path json_extract_path_text jsonb_extract_path',
    'jsonb_extract_path_text json_typeof jsonb_typeof jsonb_set jsonb_insert jsonb_strip_nulls',
    'json_strip_nulls jsonb_pretty json_each jsonb_each json_each_text jsonb_each_text',
    'json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text',
    'json_object_keys jsonb_object_keys jsonb_path_query jsonb_path_exists jsonb_path_match',
    'jsonb_path_query_array jsonb_path_query_first json_object jsonb_object',
    // misc
    'coalesce nullif num_nulls num_nonnulls pg_typeof current_schema current_schemas',
    'current_database current_user session_user current_role user',
  ]
    .join(' ')
    .split(' '),
);

// Not cacheable, but known not to write tables: calling them invalidates nothing.
const NON_WRITING = new Set(
  [
    'now clock_timestamp statement_timestamp transaction_timestamp timeofday age random',
    'random_normal gen_random_uuid uuid_generate_v4 setseed nextval currval lastval setval',
    'pg_sleep pg_backend_pid txid_current pg_current_xact_id set_config current_setting version',
    'pg_advisory_lock pg_advisory_unlock pg_try_advisory_lock pg_advisory_xact_lock',
    'pg_is_in_recovery inet_client_addr inet_server_addr pg_postmaster_start_time',
    'has_table_privilege has_schema_privilege has_database_privilege pg_get_userbyid',
    'pg_table_is_visible format_type obj_description col_description pg_get_expr',
    'pg_relation_size pg_total_relation_size pg_size_pretty pg_get_constraintdef pg_get_indexdef',
  ]
    .join(' ')
    .split(' '),
);

export function isCacheableFunction(name: string): boolean {
  return CACHEABLE.has(name);
}

export function isKnownNonWritingFunction(name: string): boolean {
  return NON_WRITING.has(name) || CACHEABLE.has(name);
}
