// Caches: create (the origin passes the SSRF guard), read, change with optimistic concurrency,
// delete; every call is scoped to the principal's workspace and its narrowing.
import {
  cacheCreateSchema,
  cacheUpdateSchema,
  type Cache,
  type CacheCreate,
  type CacheUpdate,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { CacheRow } from '../db/schema.ts';
import {
  deleteCache as deleteCacheRow,
  findCacheInWorkspace,
  insertCache,
  listCachesInWorkspace,
  updateCache as updateCacheRow,
} from '../db/queries/caches.ts';
import { notifyCacheChanged } from '../db/queries/cache-events.ts';
import { findAppByClientId } from '../db/queries/oauth-apps.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { appendEvent } from '../connect/events.ts';
import { Problem } from '../problem.ts';
import { newId } from './crypto.ts';
import { checkOrigin } from './origin-guard.ts';
import { isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { parseInput } from './validation.ts';
import { resolveInvalidation, toInvalidation, type ReplicationDeps } from './cache-invalidation.ts';
import {
  deleteReplicationStatus,
  findReplicationStatuses,
  type ReplicationStatusRow,
} from '../db/queries/replication-status.ts';
import { assertCacheScope, cachesWithScope, type Principal } from '../plugins/credential-auth.ts';

export interface OriginPolicy {
  privateRanges: 'allow' | 'deny';
  /** Tests inject a resolver; production uses DNS. */
  resolve?: (hostname: string) => Promise<string[]>;
}

/** `report`: what the cache's replication follower last said (see `withReplicationReports`). */
export function toCache(row: CacheRow, report?: ReplicationStatusRow): Cache {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    name: row.name,
    description: row.description,
    type: row.type,
    hostname: row.hostname,
    port: row.port,
    defaultMode: row.default_mode,
    defaultTtlSeconds: row.default_ttl_seconds,
    originTls: row.origin_tls,
    invalidation: toInvalidation(row, report),
    sharedResults: row.shared_results,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    createdBy:
      row.created_by_app_id === null
        ? null
        : { type: 'app', appId: row.created_by_app_id, name: row.created_by_app_name ?? '' },
  };
}

/** The API's view of caches: each with its replication follower's last report. */
export async function toCachesWithReports(db: Db, rows: readonly CacheRow[]): Promise<Cache[]> {
  const following = rows.filter((row) => row.invalidation_mode === 'replication');
  const reports = await findReplicationStatuses(
    db,
    following.map((row) => row.id),
  );
  return rows.map((row) => toCache(row, reports.get(row.id)));
}

export async function toCacheWithReport(db: Db, row: CacheRow): Promise<Cache> {
  const [cache] = await toCachesWithReports(db, [row]);
  return cache as Cache;
}

async function guardOrigin(hostname: string, policy: OriginPolicy): Promise<string> {
  const normalized = normalizeHostname(hostname);
  await checkOrigin(normalized, {
    privateRanges: policy.privateRanges,
    ...(policy.resolve ? { resolve: policy.resolve } : {}),
  });
  return normalized;
}

/**
 * The spelling stored and dialled: lower case, no trailing dot, an IPv6 literal without its
 * brackets (the edge connects to `::1`, not `[::1]`), and an internationalised name in its ASCII
 * (punycode) form, which is what DNS resolves.
 */
export function normalizeHostname(hostname: string): string {
  let name = hostname.trim().replace(/\.$/, '');
  if (name.startsWith('[') && name.endsWith(']') && isIPv6(name.slice(1, -1)))
    name = name.slice(1, -1);
  // domainToASCII returns '' for names it cannot convert; the guard then refuses the original.
  if (/[^ -~]/.test(name)) name = domainToASCII(name) || name;
  return name.toLowerCase();
}

const MAX_UPDATE_ATTEMPTS = 10;

export async function createCache(
  db: Db,
  principal: Principal,
  input: CacheCreate,
  policy: OriginPolicy,
  replicationDeps?: ReplicationDeps,
): Promise<CacheRow> {
  const fields = parseInput(cacheCreateSchema, input);
  const hostname = await guardOrigin(fields.hostname, policy);
  const app = principal.clientId ? await findAppByClientId(db, principal.clientId) : undefined;
  // The id first: the replication slot and the sealed password are named after it.
  const id = newId('cch');
  const replication = await resolveInvalidation(
    db,
    principal,
    { id, type: fields.type, hostname, port: fields.port, origin_tls: fields.originTls },
    fields.invalidation,
    replicationDeps,
  );
  return db.transaction().execute(async (tx) => {
    const row = await insertCache(tx, {
      id,
      workspaceId: principal.workspaceId,
      name: fields.name,
      description: fields.description,
      type: fields.type,
      hostname,
      port: fields.port,
      defaultMode: fields.defaultMode,
      defaultTtlSeconds: fields.defaultTtlSeconds,
      originTls: fields.originTls,
      sharedResults: fields.sharedResults,
      createdByApp: app ? { id: app.id, name: app.name } : null,
      replication,
    });
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: principal.userId,
      action: 'cache.created',
      target: row.id,
      data: {
        name: row.name,
        type: row.type,
        hostname: row.hostname,
        port: row.port,
        invalidation: row.invalidation_mode,
        via: principal.kind,
      },
    });
    await appendEvent(tx, principal.workspaceId, 'cache.created', {
      cacheId: row.id,
      name: row.name,
      type: row.type,
      hostname: row.hostname,
      port: row.port,
    });
    // Whoever runs the edge starts following the origin's change stream for it now.
    if (row.invalidation_mode === 'replication') await notifyCacheChanged(tx, row.id);
    return row;
  });
}

/** The cache if it is in the principal's workspace (404 otherwise) and `scope` reaches it (403). */
export async function getCache(
  db: Db,
  principal: Principal,
  id: string,
  scope: string,
): Promise<CacheRow> {
  const row = await findCacheInWorkspace(db, principal.workspaceId, id);
  if (!row) throw new Problem('cache.not_found', 404, `No cache ${id} in this workspace.`);
  assertCacheScope(principal, scope, row.id);
  return row;
}

export async function listCaches(
  db: Db,
  principal: Principal,
  page: { afterId?: string | undefined; limit: number },
) {
  const only = cachesWithScope(principal, 'caches:read');
  return listCachesInWorkspace(db, principal.workspaceId, {
    ...page,
    onlyIds: only ? [...only] : null,
  });
}

export async function updateCache(
  db: Db,
  principal: Principal,
  id: string,
  input: CacheUpdate,
  policy: OriginPolicy,
  checkVersion: (version: number) => void,
  replicationDeps?: ReplicationDeps,
): Promise<CacheRow> {
  const { invalidation, ...patch } = parseInput(cacheUpdateSchema, input);
  const first = await getCache(db, principal, id, 'caches:write');
  checkVersion(first.version);
  const hostname =
    patch.hostname !== undefined ? await guardOrigin(patch.hostname, policy) : undefined;
  // Checked against the origin as it will be after this change.
  const replication =
    invalidation === undefined
      ? undefined
      : await resolveInvalidation(
          db,
          principal,
          {
            id: first.id,
            type: first.type,
            hostname: hostname ?? first.hostname,
            port: patch.port ?? first.port,
            origin_tls: patch.originTls ?? first.origin_tls,
          },
          invalidation,
          replicationDeps,
        );
  // A concurrent writer can bump the version between our read and our write. Without If-Match the
  // change applies to whatever is current, so read again and retry; with If-Match the re-read's
  // new version no longer matches and `checkVersion` answers 412, as it should.
  let current = first;
  for (let attempt = 1; ; attempt++) {
    const updated = await db.transaction().execute(async (tx) => {
      const row = await updateCacheRow(tx, current.id, current.version, {
        ...patch,
        ...(hostname ? { hostname } : {}),
        ...(replication !== undefined ? { replication } : {}),
      });
      if (!row) return undefined;
      // A new credential, mode or origin starts a new follower: the old one's report and binary
      // log position (another server's, maybe) no longer apply.
      if (replication !== undefined || patch.hostname !== undefined || patch.port !== undefined) {
        await deleteReplicationStatus(tx, id);
      }
      await insertAuditEvent(tx, {
        workspaceId: principal.workspaceId,
        actorUserId: principal.userId,
        action: 'cache.updated',
        target: id,
        data: {
          fields: [...Object.keys(patch), ...(invalidation ? ['invalidation'] : [])],
          via: principal.kind,
        },
      });
      await notifyCacheChanged(tx, id);
      return row;
    });
    if (updated) return updated;
    if (attempt === MAX_UPDATE_ATTEMPTS) {
      throw new Problem(
        'precondition_failed',
        412,
        'The cache kept changing while this request ran. Read it again and retry.',
      );
    }
    current = await getCache(db, principal, id, 'caches:write');
    checkVersion(current.version);
  }
}

export async function deleteCache(db: Db, principal: Principal, id: string): Promise<void> {
  const current = await getCache(db, principal, id, 'caches:write');
  await db.transaction().execute(async (tx) => {
    await deleteCacheRow(tx, current.id);
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: principal.userId,
      action: 'cache.deleted',
      target: id,
      data: { name: current.name, via: principal.kind },
    });
    await notifyCacheChanged(tx, current.id);
  });
}
