// SQL for what replication followers report: the API reads it, whichever process follows.
import type { Db } from '../store.ts';
import type { CacheReplicationStatusTable } from '../schema.ts';
import { sql, type Selectable } from 'kysely';

export type ReplicationStatusRow = Selectable<CacheReplicationStatusTable>;

export interface ReplicationReport {
  cacheId: string;
  /** The node reporting: a report from a node that no longer holds the lease is dropped. */
  owner: string;
  status: ReplicationStatusRow['status'];
  reason: string | null;
  lagSeconds: number | null;
  lagBytes?: number | null;
  /** Only binary-log followers keep one; undefined leaves the stored one. */
  position?: string | null;
}

export async function upsertReplicationStatus(db: Db, report: ReplicationReport): Promise<void> {
  const values = {
    status: report.status,
    reason: report.reason,
    lag_seconds: report.lagSeconds,
    lag_bytes: report.lagBytes ?? null,
    reported_at: new Date(),
    ...(report.position !== undefined ? { position: report.position } : {}),
  };
  // A report racing the cache's deletion inserts nothing (the foreign key): nothing to keep.
  await db
    .insertInto('cache_replication_status')
    .columns(['cache_id', 'status', 'reason', 'lag_seconds', 'reported_at', 'position'])
    .expression((eb) =>
      eb
        .selectFrom('caches')
        .select([
          'id',
          eb.val(values.status).as('status'),
          eb.val(values.reason).as('reason'),
          eb.val(values.lag_seconds).as('lag_seconds'),
          eb.val(values.reported_at).as('reported_at'),
          eb.val(report.position ?? null).as('position'),
        ])
        .where('id', '=', report.cacheId),
    )
    .onConflict((oc) =>
      oc
        .column('cache_id')
        .doUpdateSet(values)
        .where((eb) =>
          eb.or([
            eb('cache_replication_status.owner', 'is', null),
            eb('cache_replication_status.owner', '=', report.owner),
          ]),
        ),
    )
    .execute();
}

/**
 * Takes (or renews) the lease on following a cache for `node`: granted when no node holds it, this
 * node does, or the holder's lease ran out (the store's clock). False: another node follows it.
 */
export async function acquireReplicationLease(
  db: Db,
  cacheId: string,
  node: string,
  seconds: number,
): Promise<boolean> {
  const until = sql<Date>`now() + make_interval(secs => ${seconds})`;
  const row = await db
    .insertInto('cache_replication_status')
    .columns(['cache_id', 'status', 'reason', 'owner', 'lease_until'])
    .expression((eb) =>
      eb
        .selectFrom('caches')
        .select([
          'id',
          eb.val('catching_up').as('status'),
          eb.val('starting').as('reason'),
          eb.val(node).as('owner'),
          until.as('lease_until'),
        ])
        .where('id', '=', cacheId),
    )
    .onConflict((oc) =>
      oc
        .column('cache_id')
        .doUpdateSet({ owner: node, lease_until: until })
        .where((eb) =>
          eb.or([
            eb('cache_replication_status.owner', 'is', null),
            eb('cache_replication_status.owner', '=', node),
            eb('cache_replication_status.lease_until', '<', sql<Date>`now()`),
          ]),
        ),
    )
    .returning('owner')
    .executeTakeFirst();
  return row?.owner === node;
}

/** The WAL a cache's slot keeps on its origin, as its owner measured it. */
export async function recordRetainedBytes(
  db: Db,
  cacheId: string,
  node: string,
  bytes: number | null,
): Promise<void> {
  await db
    .updateTable('cache_replication_status')
    .set({ retained_bytes: bytes })
    .where('cache_id', '=', cacheId)
    .where('owner', '=', node)
    .execute();
}

/**
 * Claims the slots past `bound` bytes not yet announced (each once, whichever control plane asks
 * first), and re-arms those back under 80 % of it. Returns what to announce.
 */
export async function claimLargeSlots(
  db: Db,
  bound: number,
): Promise<{ cacheId: string; workspaceId: string; name: string; retainedBytes: number }[]> {
  await db
    .updateTable('cache_replication_status')
    .set({ slot_warned_at: null })
    .where('slot_warned_at', 'is not', null)
    .where((eb) =>
      eb.or([
        eb('retained_bytes', 'is', null),
        eb('retained_bytes', '<', String(Math.floor(bound * 0.8))),
      ]),
    )
    .execute();
  const { rows } = await sql<{
    cache_id: string;
    workspace_id: string;
    name: string;
    retained_bytes: string;
  }>`UPDATE cache_replication_status s SET slot_warned_at = now()
      FROM caches c
      WHERE c.id = s.cache_id AND s.slot_warned_at IS NULL AND s.retained_bytes > ${bound}
      RETURNING s.cache_id, c.workspace_id, c.name, s.retained_bytes`.execute(db);
  return rows.map((row) => ({
    cacheId: row.cache_id,
    workspaceId: row.workspace_id,
    name: row.name,
    retainedBytes: Number(row.retained_bytes),
  }));
}

/** Gives the lease up at once (a node stopping), so a standing-by node takes over without waiting. */
export async function releaseReplicationLease(
  db: Db,
  cacheId: string,
  node: string,
): Promise<void> {
  await db
    .updateTable('cache_replication_status')
    .set({ owner: null, lease_until: null })
    .where('cache_id', '=', cacheId)
    .where('owner', '=', node)
    .execute();
}

/** Who follows a cache, and whether it reported `following` within `freshSeconds` (store clock). */
export async function findReplicationOwner(
  db: Db,
  cacheId: string,
  freshSeconds: number,
): Promise<{ owner: string | null; following: boolean } | undefined> {
  const row = await db
    .selectFrom('cache_replication_status')
    .select([
      'owner',
      sql<boolean>`status = 'following' AND lease_until > now()
        AND reported_at > now() - make_interval(secs => ${freshSeconds})`.as('following'),
    ])
    .where('cache_id', '=', cacheId)
    .executeTakeFirst();
  return row === undefined ? undefined : { owner: row.owner, following: row.following === true };
}

export async function findReplicationStatuses(
  db: Db,
  cacheIds: readonly string[],
): Promise<Map<string, ReplicationStatusRow>> {
  if (cacheIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('cache_replication_status')
    .selectAll()
    .where('cache_id', 'in', [...cacheIds])
    .execute();
  return new Map(rows.map((row) => [row.cache_id, row]));
}

/** Forgets a follower's report and position: a cache switched back to edge, or to a new origin. */
export async function deleteReplicationStatus(db: Db, cacheId: string): Promise<void> {
  await db.deleteFrom('cache_replication_status').where('cache_id', '=', cacheId).execute();
}
