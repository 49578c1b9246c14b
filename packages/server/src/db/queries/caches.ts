// SQL for caches; every read is scoped to a workspace.
import { compiledOnce, type Param } from '../compiled-once.ts';
import type { Db } from '../store.ts';
import type { CacheRow } from '../schema.ts';

export interface NewCache {
  id: string;
  workspaceId: string;
  name: string;
  description: string;
  type: CacheRow['type'];
  hostname: string;
  port: number;
  defaultMode: CacheRow['default_mode'];
  defaultTtlSeconds: number;
  originTls: CacheRow['origin_tls'];
  /** Edge nodes share its results through Redis (migration 0013); absent: false. */
  sharedResults?: boolean;
  /** The partner app creating it, if any (see migration 0008). */
  createdByApp?: { id: string; name: string } | null;
  /** Replication invalidation and its credential (migration 0011); null: mode edge. */
  replication?: ReplicationColumns | null;
}

export interface ReplicationColumns {
  connectionId: string | null;
  username: string | null;
  /** The password sealed under `keyId`, when given to the API. */
  sealed: { keyId: string; secret: string } | null;
  database: string | null;
  publication: string | null;
  maxLagSeconds: number;
}

function replicationValues(replication: ReplicationColumns | null) {
  return {
    invalidation_mode: replication === null ? ('edge' as const) : ('replication' as const),
    replication_connection_id: replication?.connectionId ?? null,
    replication_username: replication?.username ?? null,
    replication_secret: replication?.sealed?.secret ?? null,
    replication_key_id: replication?.sealed?.keyId ?? null,
    replication_database: replication?.database ?? null,
    replication_publication: replication?.publication ?? null,
    replication_max_lag_seconds: replication?.maxLagSeconds ?? null,
  };
}

export async function insertCache(db: Db, cache: NewCache): Promise<CacheRow> {
  return db
    .insertInto('caches')
    .values({
      id: cache.id,
      workspace_id: cache.workspaceId,
      name: cache.name,
      description: cache.description,
      type: cache.type,
      hostname: cache.hostname,
      port: cache.port,
      default_mode: cache.defaultMode,
      default_ttl_seconds: cache.defaultTtlSeconds,
      origin_tls: cache.originTls,
      shared_results: cache.sharedResults ?? false,
      created_by_app_id: cache.createdByApp?.id ?? null,
      created_by_app_name: cache.createdByApp?.name ?? null,
      ...replicationValues(cache.replication ?? null),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

// GET /v1/caches/{id}'s one statement, compiled once (compiled-once.ts).
const selectCacheInWorkspace = compiledOnce((db, p: Param<{ workspaceId: string; id: string }>) =>
  db
    .selectFrom('caches')
    .selectAll()
    .where('workspace_id', '=', p('workspaceId'))
    .where('id', '=', p('id'))
    .compile(),
);

export async function findCacheInWorkspace(
  db: Db,
  workspaceId: string,
  id: string,
): Promise<CacheRow | undefined> {
  return (await selectCacheInWorkspace(db, { workspaceId, id })).rows[0];
}

/** limit+1 caches after `afterId`, optionally only among `onlyIds` (a narrowed credential). */
export async function listCachesInWorkspace(
  db: Db,
  workspaceId: string,
  options: { afterId?: string | undefined; limit: number; onlyIds?: readonly string[] | null },
): Promise<CacheRow[]> {
  let query = db.selectFrom('caches').selectAll().where('workspace_id', '=', workspaceId);
  if (options.afterId) query = query.where('id', '>', options.afterId);
  if (options.onlyIds) {
    if (options.onlyIds.length === 0) return [];
    query = query.where('id', 'in', [...options.onlyIds]);
  }
  return query
    .orderBy('id')
    .limit(options.limit + 1)
    .execute();
}

export type CachePatch = Partial<
  Pick<
    NewCache,
    | 'name'
    | 'description'
    | 'hostname'
    | 'port'
    | 'defaultMode'
    | 'defaultTtlSeconds'
    | 'originTls'
    | 'sharedResults'
    | 'replication'
  >
>;

/** Applies the patch if the row is still at `version`; undefined when someone changed it first. */
export async function updateCache(
  db: Db,
  id: string,
  version: number,
  patch: CachePatch,
): Promise<CacheRow | undefined> {
  return db
    .updateTable('caches')
    .set((eb) => ({
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.hostname !== undefined ? { hostname: patch.hostname } : {}),
      ...(patch.port !== undefined ? { port: patch.port } : {}),
      ...(patch.defaultMode !== undefined ? { default_mode: patch.defaultMode } : {}),
      ...(patch.defaultTtlSeconds !== undefined
        ? { default_ttl_seconds: patch.defaultTtlSeconds }
        : {}),
      ...(patch.originTls !== undefined ? { origin_tls: patch.originTls } : {}),
      ...(patch.sharedResults !== undefined ? { shared_results: patch.sharedResults } : {}),
      ...(patch.replication !== undefined ? replicationValues(patch.replication) : {}),
      version: eb('version', '+', 1),
      updated_at: new Date(),
    }))
    .where('id', '=', id)
    .where('version', '=', version)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteCache(db: Db, id: string): Promise<void> {
  await db.deleteFrom('caches').where('id', '=', id).execute();
}

/** Any cache by id, whatever its workspace: for the edge, which routes by cache id alone. */
export async function findCacheById(db: Db, id: string): Promise<CacheRow | undefined> {
  return db.selectFrom('caches').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Every cache that follows its origin's change stream: what an edge starts followers for. */
export async function listReplicationCacheIds(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom('caches')
    .select('id')
    .where('invalidation_mode', '=', 'replication')
    .execute();
  return rows.map((row) => row.id);
}
