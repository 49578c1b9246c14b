// The bookkeeping of one Postgres exchange through the edge (a request/response cycle up to its
// ReadyForQuery): what answers it, what it writes and which functions it calls, whether it keeps the
// session's transaction block, and the probe that may ride behind it.
import type { CacheEntry } from '../../cache/result-cache.ts';
import type { Capture } from '../../core/cache-access.ts';
import type { ObservedState } from '../../core/session-key.ts';
import type { ParseMessage } from '../protocol/messages.ts';
import type { Analysis } from '../sql/analyze.ts';
import type { FunctionCheck } from '../sql/function-effects.ts';
import type { ProbedFunctions } from './state-probe.ts';

// One request/response cycle: everything up to and including a Sync, Query or FunctionCall,
// answered by one ReadyForQuery (from the origin, or made here for a cache hit).
export interface Exchange {
  // A cache hit, answered when it reaches the head of the queue (with the status of that moment).
  local: { entry: CacheEntry; extended: Extended } | null;
  waiting: boolean;
  capture: Capture | null;
  // The capture answers an extended-protocol unit (stored with ParseComplete and BindComplete).
  extended: boolean;
  writes: string[] | 'all' | null;
  // Functions the edge does not know that its statements call: what they write is learned from the
  // probe sent behind it (until then `writes` holds only what the statements write themselves).
  calls: string[] | null;
  learning: Learning | null;
  swallowParseComplete: number;
  result: 'hit' | 'miss' | 'uncacheable' | 'none';
  lastTagRollback: boolean;
  failed: boolean;
  parsedNames: string[];
  fingerprint: string;
  // The edge's own probe of the session's state (its answer is not forwarded).
  probe: { mark: number; state: ObservedState | null; functions: ProbedFunctions | null } | null;
  // True when every statement it holds is known, one by one, not to begin or end a transaction
  // block (null: no statement seen; false: one may, or one could not be analysed).
  keepsBlock: boolean | null;
  /** The epoch it was sent to the origin at (see CacheAccess.sending); null: not sent. */
  sentEpoch: bigint | null;
}

// The calls of one exchange, checked by the probe behind it (shared by both exchanges).
export interface Learning {
  check: FunctionCheck;
  // The exchange's ReadyForQuery, held until the probe has said what the functions wrote: a read
  // started after the client has its answer must not get a result the call made stale.
  ready: Buffer | null;
  // Its writes were counted without the probe (as everything).
  decided: boolean;
}

// How an extended-protocol hit is answered: with ParseComplete when the client sent a Parse (then
// `statement` is what that Parse defined), with RowDescription when it sent Describe.
export type Extended = {
  parse: ParseMessage | null;
  describe: boolean;
  statement: Statement;
} | null;

export interface Statement {
  sql: string;
  // The parameter-type section of the Parse message, as a key component.
  types: string;
  frame: Buffer;
}

export function newExchange(result: Exchange['result'], writes: string[] | 'all' | null): Exchange {
  return {
    local: null,
    waiting: false,
    capture: null,
    extended: false,
    writes,
    calls: null,
    learning: null,
    swallowParseComplete: 0,
    result,
    lastTagRollback: false,
    failed: false,
    parsedNames: [],
    fingerprint: '',
    probe: null,
    keepsBlock: null,
    sentEpoch: null,
  };
}

// A statement's writes: what it writes itself, and the functions it calls whose writes the probe
// behind it will tell (a text of several statements: everything).
export function addStatementWrites(exchange: Exchange, analysis: Analysis): void {
  const effects = analysis.effects;
  if (effects !== null && effects.writes !== 'all' && effects.calls.length > 0) {
    if (effects.writes.length > 0) addWrites(exchange, effects.writes);
    exchange.calls = [...(exchange.calls ?? []), ...effects.calls];
    return;
  }
  if (analysis.writes === 'all' || analysis.writes.length > 0) addWrites(exchange, analysis.writes);
}

// Whether the exchange still keeps the session's transaction block as it was, with one more
// statement (null: one that could not be analysed). A text of several statements may hold a
// COMMIT, whatever its strongest effect says.
export function markBlock(exchange: Exchange, analysis: Analysis | null): Exchange {
  const keeps =
    analysis !== null && analysis.effects !== null && analysis.session !== 'transaction';
  exchange.keepsBlock = keeps && exchange.keepsBlock !== false;
  return exchange;
}

// The exchange's functions may have written anything: count it so, whatever the probe says.
export function decideAll(exchange: Exchange): void {
  exchange.calls = null;
  if (exchange.learning !== null) exchange.learning.decided = true;
  addWrites(exchange, 'all');
}

export function addWrites(exchange: Exchange, writes: string[] | 'all'): void {
  if (writes === 'all' || exchange.writes === 'all') exchange.writes = 'all';
  else exchange.writes = [...(exchange.writes ?? []), ...writes];
}
