// SQL for reading and touching OAuth grants (their deletion lives with the tokens in oauth-store.ts).
import type { Db } from '../store.ts';

export async function setGrantWorkspace(
  db: Db,
  grantId: string,
  workspaceId: string,
): Promise<void> {
  await db
    .updateTable('oauth_grants')
    .set({ workspace_id: workspaceId })
    .where('id', '=', grantId)
    .execute();
}

/** The workspace a grant is bound to and the caches it is limited to (null: all of them). */
export async function findGrantBinding(
  db: Db,
  grantId: string,
): Promise<{ workspace_id: string | null; cache_ids: string[] | null } | undefined> {
  return db
    .selectFrom('oauth_grants')
    .select(['workspace_id', 'cache_ids'])
    .where('id', '=', grantId)
    .executeTakeFirst();
}

/** The grant, if it belongs to the user and the user still belongs to its workspace. */
export async function findGrantUsableBy(db: Db, grantId: string, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('oauth_grants as g')
    .innerJoin('memberships as m', (join) =>
      join.onRef('m.workspace_id', '=', 'g.workspace_id').onRef('m.user_id', '=', 'g.user_id'),
    )
    .select('g.id')
    .where('g.id', '=', grantId)
    .where('g.user_id', '=', userId)
    .executeTakeFirst();
  return row !== undefined;
}

export async function listWorkspaceGrantsOfUser(db: Db, userId: string) {
  return db
    .selectFrom('oauth_grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'oauth_grants.app_id')
    .leftJoin('workspaces', 'workspaces.id', 'oauth_grants.workspace_id')
    .select([
      'oauth_grants.id as grantId',
      'oauth_apps.name as appName',
      'oauth_apps.logo_url as appLogoUrl',
      'workspaces.name as workspaceName',
      'workspaces.slug as workspaceSlug',
      'oauth_grants.scopes',
      'oauth_grants.cache_ids as cacheIds',
      'oauth_grants.created_at as grantedAt',
      'oauth_grants.last_used_at as lastUsedAt',
    ])
    .where('oauth_grants.user_id', '=', userId)
    .where('oauth_grants.workspace_id', 'is not', null)
    .orderBy('oauth_grants.created_at', 'desc')
    .execute();
}

export async function listGrantIdsOfUser(
  db: Db,
  userId: string,
  onlyGrantId?: string,
): Promise<string[]> {
  let query = db.selectFrom('oauth_grants').select('id').where('user_id', '=', userId);
  if (onlyGrantId) query = query.where('id', '=', onlyGrantId);
  return (await query.execute()).map((row) => row.id);
}

export async function setGrantLastUsed(db: Db, grantId: string, at: Date): Promise<void> {
  await db
    .updateTable('oauth_grants')
    .set({ last_used_at: at })
    .where('id', '=', grantId)
    .execute();
}
