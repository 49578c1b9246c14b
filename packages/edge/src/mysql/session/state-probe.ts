// The MySQL edge's reading of a session's result-affecting state, for the shared session-key rule
// (core/session-key.ts): after a statement that may change that state unseen (SET, USE, CALL, a
// stored function, COM_INIT_DB, COM_RESET_CONNECTION…), the edge reads it from the origin before it
// serves or stores again. It reads the current database, the current user and role, and every
// session variable whose value differs from the global one: what SET SESSION, SET NAMES, USE or a
// procedure changed. The text protocol's rows are name/value pairs.
import type { ObservedState } from '../../core/session-key.ts';
import { ProtocolError } from '../protocol/protocol-error.ts';

// MariaDB keeps both variable tables in information_schema; MySQL 5.7+ in performance_schema.
const VARIABLES = {
  mariadb: ['information_schema.SESSION_VARIABLES', 'information_schema.GLOBAL_VARIABLES'],
  mysql: ['performance_schema.session_variables', 'performance_schema.global_variables'],
} as const;

// MariaDB joins the two variable tables (≈700 rows each, no index) by nested loops: 30–140 ms on a
// loaded machine. A hash join (join_cache_level 4, for this statement only) takes 6–20 ms.
const HASH_JOIN = { mariadb: 'SET STATEMENT join_cache_level = 4 FOR ', mysql: '' } as const;

/** The probe's text: one statement, rows of (name, value). */
export function stateProbeSql(flavor: 'mariadb' | 'mysql'): string {
  const [session, global] = VARIABLES[flavor];
  return (
    HASH_JOIN[flavor] +
    "SELECT '.database', DATABASE() UNION ALL SELECT '.current_user', CURRENT_USER() " +
    "UNION ALL SELECT '.current_role', CURRENT_ROLE() " +
    `UNION ALL SELECT s.VARIABLE_NAME, s.VARIABLE_VALUE FROM ${session} s ` +
    `JOIN ${global} g ON g.VARIABLE_NAME = s.VARIABLE_NAME ` +
    'WHERE NOT (s.VARIABLE_VALUE <=> g.VARIABLE_VALUE)'
  );
}

// Variables that differ per session whatever it does, or that change no result: they would keep
// every session's key apart for nothing.
const IGNORED = new Set([
  // Set by the probe itself (HASH_JOIN); it changes plans, not results.
  'join_cache_level',
  'pseudo_thread_id',
  'timestamp',
  'last_insert_id',
  'insert_id',
  'identity',
  'rand_seed1',
  'rand_seed2',
  'warning_count',
  'error_count',
  'in_transaction',
  'last_gtid',
  'gtid_seq_no',
  'session_track_system_variables',
  'session_track_schema',
  'session_track_state_change',
  'session_track_transaction_info',
  'profiling_history_size',
  'wait_timeout',
  'interactive_timeout',
  'net_read_timeout',
  'net_write_timeout',
  'net_buffer_length',
  'max_allowed_packet',
  'proxy_user',
  'external_user',
]);

/** The state the probe's rows describe (text-protocol rows of two length-encoded strings). */
export function readStateRows(rows: readonly Buffer[], loginUser: string): ObservedState {
  const settings = new Map<string, string>();
  let currentUser = loginUser;
  for (const row of rows) {
    const [name, value] = twoColumns(row);
    if (name === null) throw new ProtocolError('the state probe returned a row without a name');
    if (name === '.current_user') currentUser = value ?? '';
    else if (name.startsWith('.')) settings.set(name, value ?? '\u0000null');
    else if (!IGNORED.has(name.toLowerCase())) settings.set(name.toLowerCase(), value ?? '');
  }
  return { currentUser, sessionUser: loginUser, settings, private: false };
}

function twoColumns(row: Buffer): [string | null, string | null] {
  let offset = 0;
  const values: (string | null)[] = [];
  for (let i = 0; i < 2; i += 1) {
    const first = row[offset];
    if (first === undefined) throw new ProtocolError('truncated state probe row');
    if (first === 0xfb) {
      values.push(null);
      offset += 1;
      continue;
    }
    let length: number;
    if (first < 0xfb) {
      length = first;
      offset += 1;
    } else if (first === 0xfc) {
      length = row.readUInt16LE(offset + 1);
      offset += 3;
    } else if (first === 0xfd) {
      length = row.readUIntLE(offset + 1, 3);
      offset += 4;
    } else throw new ProtocolError('state probe value too long');
    if (offset + length > row.length) throw new ProtocolError('truncated state probe row');
    values.push(row.toString('utf8', offset, offset + length));
    offset += length;
  }
  return [values[0] ?? null, values[1] ?? null];
}
