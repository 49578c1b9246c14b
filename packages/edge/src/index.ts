// The Edgegate data plane: the Postgres edge, its result store and what it needs from the control plane.
export * as pg from './pg/protocol/index.ts';
export { PgEdgeServer } from './pg/server.ts';
export { MysqlEdgeServer } from './mysql/server.ts';
export type { MysqlEdgeServerOptions } from './mysql/server.ts';
export type { PgEdgeServerOptions, RefusalCounts } from './pg/server.ts';
export { EdgeRuntime } from './runtime.ts';
export type { CacheState, CancelDirectory, EdgeLogger, RuntimeOptions } from './runtime.ts';
export { CompiledRules, queryHash, withViewTables } from './control/config.ts';
export type {
  CacheMode,
  EdgeCacheConfig,
  EdgeConfigSource,
  EdgeRule,
  TransactionPolicy,
} from './control/config.ts';
export { CacheStats, LATENCY_BOUNDS_MS, quantileMs } from './metrics/cache-stats.ts';
export type { StatsDelta, TemplateCount } from './metrics/cache-stats.ts';
export { analyzeSql, loadSqlParser } from './pg/sql/analyze.ts';
export type { Analysis, TableRef } from './pg/sql/analyze.ts';
export { sqlShape } from './pg/sql/shape.ts';
export type { AddressGuard } from './upstream/origin.ts';
export { EdgeThreads } from './threads/pool.ts';
export type { EdgeEventCounts, EdgeThreadsOptions, ThreadReport } from './threads/pool.ts';
export type { GuardSpec } from './threads/guard.ts';
export { startPgEdge } from './threads/start.ts';
export { EpochTable } from './cache/epochs.ts';
export type { InvalidationBus, NodeBus } from './cluster/bus.ts';
export {
  RedisBus,
  versionsKey,
  INVALIDATION_CHANNEL,
  ALL_TABLES_FIELD,
} from './cluster/redis-bus.ts';
export type { InvalidationMessage, RedisBusOptions } from './cluster/redis-bus.ts';
export { RedisCancelDirectory } from './cluster/redis-cancel-directory.ts';
export { ConnectionCounts } from './limits/connection-counts.ts';
export type { ConnectionCaps, Refusal } from './limits/connection-counts.ts';
export {
  connectionsWithin,
  defaultConnectionCaps,
  raiseFileLimit,
  readFileLimit,
} from './limits/file-limit.ts';
export type { FileLimit, RaisedFileLimit } from './limits/file-limit.ts';
export { DEFAULT_LOGIN_TIMEOUT_MS } from './pg/server.ts';
export type { PgEdge } from './threads/start.ts';
export { SharedResults } from './cluster/shared-results.ts';
export type { SharedResultsCounts, SharedResultsSettings } from './cluster/shared-results.ts';
export type { SessionInfo, SessionState } from './core/session-control.ts';
