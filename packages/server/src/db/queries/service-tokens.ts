// SQL for service tokens and their accesses; a token is always read through its workspace.
import type { Selectable } from 'kysely';
import type { Db } from '../store.ts';
import type { ServiceTokensTable } from '../schema.ts';

export type ServiceTokenRow = Selectable<ServiceTokensTable>;

export interface ServiceTokenAccess {
  scope: string;
  /** null: every cache of the workspace. */
  cacheId: string | null;
}

export interface NewServiceToken {
  id: string;
  workspaceId: string;
  name: string;
  tokenHash: string;
  createdBy: string;
  expiresAt: Date | null;
  accesses: readonly ServiceTokenAccess[];
}

/** Inserts the token and its accesses; pass a transaction so neither exists without the other. */
export async function insertServiceToken(db: Db, token: NewServiceToken): Promise<ServiceTokenRow> {
  const row = await db
    .insertInto('service_tokens')
    .values({
      id: token.id,
      workspace_id: token.workspaceId,
      name: token.name,
      token_hash: token.tokenHash,
      created_by: token.createdBy,
      expires_at: token.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await db
    .insertInto('service_token_accesses')
    .values(
      token.accesses.map((access) => ({
        token_id: token.id,
        scope: access.scope,
        cache_id: access.cacheId,
      })),
    )
    .execute();
  return row;
}

/** limit+1 of the workspace's tokens after `afterId`. */
export async function listServiceTokensInWorkspace(
  db: Db,
  workspaceId: string,
  page: { afterId?: string | undefined; limit: number },
): Promise<ServiceTokenRow[]> {
  let query = db.selectFrom('service_tokens').selectAll().where('workspace_id', '=', workspaceId);
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.limit + 1)
    .execute();
}

/** The accesses of each of these tokens, keyed by token id. */
export async function listAccessesOfTokens(
  db: Db,
  tokenIds: readonly string[],
): Promise<Map<string, ServiceTokenAccess[]>> {
  const byToken = new Map<string, ServiceTokenAccess[]>(tokenIds.map((id) => [id, []]));
  if (tokenIds.length === 0) return byToken;
  const rows = await db
    .selectFrom('service_token_accesses')
    .select(['token_id as tokenId', 'scope', 'cache_id as cacheId'])
    .where('token_id', 'in', [...tokenIds])
    .orderBy('scope')
    .orderBy('cache_id', (ob) => ob.asc().nullsFirst())
    .execute();
  for (const { tokenId, scope, cacheId } of rows) byToken.get(tokenId)?.push({ scope, cacheId });
  return byToken;
}

export async function findServiceTokenInWorkspace(
  db: Db,
  workspaceId: string,
  id: string,
): Promise<ServiceTokenRow | undefined> {
  return db
    .selectFrom('service_tokens')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function deleteServiceToken(db: Db, id: string): Promise<void> {
  await db.deleteFrom('service_tokens').where('id', '=', id).execute();
}
