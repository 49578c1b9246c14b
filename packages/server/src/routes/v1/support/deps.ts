// What every /v1 route is built with, and the problem responses every route may answer.
import type { ReplicationDeps } from '../../../services/cache-invalidation.ts';
import { problemSchema } from '@edgegate/contract';
import type { Db } from '../../../db/store.ts';
import type { EventEmitter } from 'node:events';
import type { OriginPolicy } from '../../../services/caches.ts';
import type { Keyring } from '../../../connect/keyring.ts';
import type { EdgeSessions } from '../../../services/edge-sessions.ts';

export interface V1Deps {
  db: Db;
  /** store.pipelined: for single statements on hot routes (no transaction, no session). */
  pipelined: Db;
  originPolicy: OriginPolicy;
  /** Replication invalidation: the keyring seals its password, `check` tests the origin. */
  replication?: ReplicationDeps;
  /** Seals and opens connection and webhook secrets. */
  keyring: Keyring;
  /** In-process signals: `deliveries` after a commit queued webhook deliveries. */
  bus: EventEmitter;
  /** PUBLIC_URL: hosted connect pages are linked from it. */
  publicUrl: string;
  edge: {
    host: string;
    pgPort: number;
    mysqlPort: number;
    /** Placed in MS SQL connection strings; SPEC §1 names no MS SQL edge port yet, so 1433 by default. */
    mssqlPort?: number;
    /** Whether the Postgres edge offers TLS: converted strings that require it get a warning. */
    pgTls?: boolean;
  };
  /** An edge running in this process: flushed first so metrics include the last seconds. */
  flushEdgeMetrics?: () => Promise<void>;
  /** The sessions of the edge running in this process; none without one. */
  edgeSessions?: EdgeSessions;
}

/** Every error is RFC 9457 problem+json; listed once so the OpenAPI document shows it everywhere. */
export const problemResponses = {
  '4xx': {
    description:
      'An RFC 9457 problem: `type`, `title`, `status`, `detail`, and `errors` for invalid fields',
    content: { 'application/problem+json': { schema: problemSchema } },
  },
} as const;
