// Operator commands on a workspace's caches: the API's own services (validation, the origin guard,
// the audit log, edges told at once), acting as the workspace's earliest admin.
import type { Cache, CacheCreate } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import {
  createCache,
  deleteCache,
  listCaches,
  toCache,
  type OriginPolicy,
} from '../services/caches.ts';
import { actForWorkspace } from './credentials.ts';

const PAGE = 100;

export async function listCachesOfWorkspace(
  db: Db,
  input: { workspace: string },
): Promise<Cache[]> {
  const { principal } = await actForWorkspace(db, input.workspace);
  const caches: Cache[] = [];
  for (let afterId: string | undefined; ;) {
    const rows = await listCaches(db, principal, { afterId, limit: PAGE });
    caches.push(...rows.slice(0, PAGE).map((row) => toCache(row)));
    if (rows.length <= PAGE) return caches;
    afterId = rows[PAGE - 1]!.id;
  }
}

export type CreateCacheInput = CacheCreate & { workspace: string };

export async function createCacheInWorkspace(
  db: Db,
  input: CreateCacheInput,
  policy: OriginPolicy,
): Promise<Cache> {
  const { workspace, ...fields } = input;
  const { principal } = await actForWorkspace(db, workspace);
  return toCache(await createCache(db, principal, fields, policy));
}

/** Deletes the cache; 404 when the workspace has no cache of that id. */
export async function deleteCacheOfWorkspace(
  db: Db,
  input: { workspace: string; id: string },
): Promise<{ id: string; workspace: string }> {
  const { workspace, principal } = await actForWorkspace(db, input.workspace);
  await deleteCache(db, principal, input.id);
  return { id: input.id, workspace: workspace.slug };
}
