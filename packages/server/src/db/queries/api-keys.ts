// SQL for API keys; a key is always read through its workspace and its owner.
import type { Selectable } from 'kysely';
import type { Db } from '../store.ts';
import type { ApiKeysTable } from '../schema.ts';

export type ApiKeyRow = Selectable<ApiKeysTable>;

export interface NewApiKey {
  id: string;
  workspaceId: string;
  userId: string;
  name: string;
  prefix: string;
  tokenHash: string;
  scopes: string[];
  cacheIds: string[] | null;
  createdByClientId: string | null;
  expiresAt: Date | null;
}

/** Whose keys a request may see: one person's in one workspace, optionally only one app's. */
export interface ApiKeyOwner {
  workspaceId: string;
  userId: string;
  /** Only keys minted through this OAuth app; undefined for all of the person's keys. */
  clientId?: string | undefined;
}

export async function insertApiKey(db: Db, key: NewApiKey): Promise<ApiKeyRow> {
  return db
    .insertInto('api_keys')
    .values({
      id: key.id,
      workspace_id: key.workspaceId,
      user_id: key.userId,
      name: key.name,
      prefix: key.prefix,
      token_hash: key.tokenHash,
      scopes: key.scopes,
      cache_ids: key.cacheIds,
      created_by_client_id: key.createdByClientId,
      expires_at: key.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

function ofOwner(db: Db, owner: ApiKeyOwner) {
  let query = db
    .selectFrom('api_keys')
    .selectAll()
    .where('workspace_id', '=', owner.workspaceId)
    .where('user_id', '=', owner.userId);
  if (owner.clientId !== undefined)
    query = query.where('created_by_client_id', '=', owner.clientId);
  return query;
}

/** limit+1 of the owner's keys after `afterId`. */
export async function listApiKeysOfOwner(
  db: Db,
  owner: ApiKeyOwner,
  page: { afterId?: string | undefined; limit: number },
): Promise<ApiKeyRow[]> {
  let query = ofOwner(db, owner);
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.limit + 1)
    .execute();
}

export async function findApiKeyOfOwner(
  db: Db,
  owner: ApiKeyOwner,
  id: string,
): Promise<ApiKeyRow | undefined> {
  return ofOwner(db, owner).where('id', '=', id).executeTakeFirst();
}

export async function deleteApiKey(db: Db, id: string): Promise<void> {
  await db.deleteFrom('api_keys').where('id', '=', id).execute();
}

/** A key of the workspace, whoever owns it (for the operator). */
export async function findApiKeyInWorkspace(
  db: Db,
  workspaceId: string,
  id: string,
): Promise<ApiKeyRow | undefined> {
  return db
    .selectFrom('api_keys')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Every key of a workspace with its owner's email, oldest first (for the operator). */
export async function listApiKeysOfWorkspace(
  db: Db,
  workspaceId: string,
): Promise<(ApiKeyRow & { email: string })[]> {
  return db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .selectAll('api_keys')
    .select('users.email')
    .where('api_keys.workspace_id', '=', workspaceId)
    .orderBy('api_keys.created_at')
    .orderBy('api_keys.id')
    .execute();
}
