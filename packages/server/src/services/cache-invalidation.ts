// A cache's invalidation mode: resolving the replication credential (a connection's, or one given
// once to the API and sealed like connection secrets), checking the origin's prerequisites with it,
// and showing the mode with what the follower last reported.
import type { CacheInvalidation, InvalidationInput } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { CacheRow } from '../db/schema.ts';
import type { ReplicationColumns } from '../db/queries/caches.ts';
import type { ReplicationStatusRow } from '../db/queries/replication-status.ts';
import { getConnection, openConnection } from '../connect/connections.ts';
import { openSecret, sealSecret, type Keyring } from '../connect/keyring.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { Problem } from '../problem.ts';
import type { ReplicationCredential } from '../replication/origin-link.ts';
import type { ReplicationCheck } from '../replication/prerequisites.ts';

export interface ReplicationDeps {
  keyring: Keyring;
  check: ReplicationCheck;
  privateRanges: 'allow' | 'deny';
}

/** A follower silent for longer than this is shown as down: its edge has stopped or lost the store. */
export const REPORT_STALE_MS = 15_000;
/** A cache saved this recently has no report yet because no edge has had time to start following. */
const START_GRACE_MS = 15_000;

export const DEFAULT_MAX_LAG_SECONDS = 5;

const sealContext = (cacheId: string) => `cache-replication:${cacheId}`;

const CONNECTION_TYPES: Record<CacheRow['type'], readonly string[]> = {
  postgres: ['postgresql'],
  mysql: ['mysql', 'mariadb'],
  mariadb: ['mysql', 'mariadb'],
  mssql: [],
};

/** The credential of `input` in clear (for the check) and the columns that store it. */
async function resolveCredential(
  db: Db,
  principal: Principal,
  keyring: Keyring,
  cache: Pick<CacheRow, 'id' | 'type'>,
  input: Extract<InvalidationInput, { mode: 'replication' }>,
): Promise<{
  credential: ReplicationCredential;
  columns: Omit<ReplicationColumns, 'publication' | 'maxLagSeconds'>;
}> {
  if (input.connectionId !== undefined) {
    const row = await getConnection(db, principal, input.connectionId);
    if (!CONNECTION_TYPES[cache.type].includes(row.type)) {
      throw new Problem(
        'invalidation.connection_type',
        422,
        `Connection ${row.id} is a ${row.type} connection; a ${cache.type} cache cannot follow it.`,
      );
    }
    const config = await openConnection(db, keyring, row);
    const database = input.database ?? (config.database ? String(config.database) : 'postgres');
    return {
      credential: {
        username: String(config.user ?? ''),
        password: String(config.password ?? ''),
        database,
      },
      columns: {
        connectionId: row.id,
        username: null,
        sealed: null,
        database: cache.type === 'postgres' ? database : null,
      },
    };
  }
  const username = input.username ?? '';
  const password = input.password ?? '';
  const database = input.database ?? 'postgres';
  const sealed = await sealSecret(
    db,
    keyring,
    principal.workspaceId,
    sealContext(cache.id),
    password,
  );
  return {
    credential: { username, password, database },
    columns: {
      connectionId: null,
      username,
      sealed: { keyId: sealed.keyId, secret: sealed.sealed },
      database: cache.type === 'postgres' ? database : null,
    },
  };
}

/**
 * What to store for a cache's `invalidation` input: null for mode edge; for replication, the
 * credential after the origin passed every prerequisite check (a 422 names the first one missing).
 */
export async function resolveInvalidation(
  db: Db,
  principal: Principal,
  cache: Pick<CacheRow, 'id' | 'type' | 'hostname' | 'port' | 'origin_tls'>,
  input: InvalidationInput,
  deps: ReplicationDeps | undefined,
): Promise<ReplicationColumns | null> {
  if (input.mode === 'edge') return null;
  if (deps === undefined) {
    throw new Problem(
      'invalidation.unavailable',
      422,
      'Replication invalidation cannot be set up here; use the API.',
    );
  }
  const { credential, columns } = await resolveCredential(
    db,
    principal,
    deps.keyring,
    cache,
    input,
  );
  const { publication } = await deps.check(
    {
      cacheId: cache.id,
      type: cache.type,
      hostname: cache.hostname,
      port: cache.port,
      originTls: cache.origin_tls,
      privateRanges: deps.privateRanges,
    },
    credential,
    cache.type === 'postgres' ? (input.publication ?? null) : null,
  );
  return {
    ...columns,
    publication,
    maxLagSeconds: input.maxLagSeconds ?? DEFAULT_MAX_LAG_SECONDS,
  };
}

/** The stored credential in clear, for the follower; null when its connection was deleted. */
export async function openReplicationCredential(
  db: Db,
  keyring: Keyring,
  row: CacheRow,
): Promise<ReplicationCredential | null> {
  const database = row.replication_database ?? 'postgres';
  if (row.replication_connection_id !== null) {
    const connection = await db
      .selectFrom('connections')
      .selectAll()
      .where('id', '=', row.replication_connection_id)
      .executeTakeFirst();
    if (connection === undefined) return null;
    const config = await openConnection(db, keyring, connection);
    return {
      username: String(config.user ?? ''),
      password: String(config.password ?? ''),
      database,
    };
  }
  if (
    row.replication_username === null ||
    row.replication_secret === null ||
    row.replication_key_id === null
  ) {
    return null;
  }
  return {
    username: row.replication_username,
    password: await openSecret(
      db,
      keyring,
      row.replication_key_id,
      sealContext(row.id),
      row.replication_secret,
    ),
    database,
  };
}

export function toInvalidation(
  row: CacheRow,
  report: ReplicationStatusRow | undefined,
  now = Date.now(),
): CacheInvalidation {
  const base = {
    mode: row.invalidation_mode,
    connectionId: row.replication_connection_id,
    username: row.replication_username,
    database: row.replication_database,
    publication: row.replication_publication,
    maxLagSeconds:
      row.invalidation_mode === 'edge'
        ? null
        : (row.replication_max_lag_seconds ?? DEFAULT_MAX_LAG_SECONDS),
  };
  if (row.invalidation_mode === 'edge') {
    return {
      ...base,
      status: null,
      reason: null,
      lagSeconds: null,
      lagBytes: null,
      slotBytes: null,
    };
  }
  if (report === undefined || report.reported_at.getTime() < row.updated_at.getTime()) {
    const starting = now - row.updated_at.getTime() < START_GRACE_MS;
    return {
      ...base,
      status: starting ? 'catching_up' : 'down',
      reason: starting
        ? 'waiting for an edge to start following'
        : 'no edge is following this cache (is an edge running against this store?)',
      lagSeconds: null,
      lagBytes: null,
      slotBytes: null,
    };
  }
  if (now - report.reported_at.getTime() > REPORT_STALE_MS) {
    return {
      ...base,
      status: 'down',
      reason: `no report from the following edge since ${report.reported_at.toISOString()}`,
      lagSeconds: report.lag_seconds,
      ...bytesOf(report),
    };
  }
  return {
    ...base,
    status: report.status,
    reason: report.reason,
    lagSeconds: report.lag_seconds,
    ...bytesOf(report),
  };
}

function bytesOf(report: { lag_bytes: string | null; retained_bytes: string | null }) {
  return {
    lagBytes: report.lag_bytes === null ? null : Number(report.lag_bytes),
    slotBytes: report.retained_bytes === null ? null : Number(report.retained_bytes),
  };
}
