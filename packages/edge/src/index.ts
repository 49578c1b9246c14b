// The Edgegate data plane: the Postgres edge, its result store and what it needs from the control plane.
export * as pg from './pg/protocol/index.ts';
export { PgEdgeServer } from './pg/server.ts';
export type { PgEdgeServerOptions } from './pg/server.ts';
export { EdgeRuntime } from './runtime.ts';
export type { CacheState, CancelDirectory, EdgeLogger, RuntimeOptions } from './runtime.ts';
export { CompiledRules, queryHash } from './control/config.ts';
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
export type { EdgeThreadsOptions, ThreadReport } from './threads/pool.ts';
export type { GuardSpec } from './threads/guard.ts';
export { startPgEdge } from './threads/start.ts';
export type { PgEdge } from './threads/start.ts';
