// OAuth grants as people see them: the workspace each is bound to, listing and revocation.
import type { Db } from '../db/store.ts';
import { deleteGrantsWhere, type GrantRevocation } from '../db/queries/oauth-store.ts';
import { Problem } from '../problem.ts';
import { credentialsRevoked } from './revocation-events.ts';

/**
 * Ends a grant: deletes it with every token and device code issued under it, records
 * `grant.revoked` with the reason in its workspace's log, and tells credential caches at once.
 * Every revocation goes through here (or, for cascades, through the same query).
 */
export async function revokeGrant(
  db: Db,
  grantId: string,
  revocation: GrantRevocation,
): Promise<void> {
  await db
    .transaction()
    .execute((tx) =>
      deleteGrantsWhere(tx, (grants) => grants.where('id', '=', grantId), revocation),
    );
  credentialsRevoked();
}

/** Binds a grant saved outside the consent page (test fixtures) to its workspace. */
export async function bindGrantToWorkspace(
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

/** A grant's workspace never changes once bound, so the answer can be remembered. */
const grantWorkspaces = new Map<string, string>();

export async function findGrantWorkspace(db: Db, grantId: string): Promise<string | undefined> {
  const known = grantWorkspaces.get(grantId);
  if (known) return known;
  const row = await db
    .selectFrom('oauth_grants')
    .select('workspace_id')
    .where('id', '=', grantId)
    .executeTakeFirst();
  if (row?.workspace_id) {
    if (grantWorkspaces.size > 50_000) grantWorkspaces.clear();
    grantWorkspaces.set(grantId, row.workspace_id);
  }
  return row?.workspace_id ?? undefined;
}

/** Whether the user exists and, for a grant, still belongs to the grant's workspace: one query. */
export async function accountMayUseGrant(
  db: Db,
  userId: string,
  grantId: string | undefined,
): Promise<boolean> {
  if (!grantId) {
    return (
      (await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()) !==
      undefined
    );
  }
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

export interface AuthorizedApp {
  grantId: string;
  appName: string;
  appLogoUrl: string | null;
  workspaceName: string | null;
  workspaceSlug: string | null;
  scopes: string[];
  grantedAt: Date;
  lastUsedAt: Date | null;
}

export async function listAuthorizedApps(db: Db, userId: string): Promise<AuthorizedApp[]> {
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
      'oauth_grants.created_at as grantedAt',
      'oauth_grants.last_used_at as lastUsedAt',
    ])
    .where('oauth_grants.user_id', '=', userId)
    .where('oauth_grants.workspace_id', 'is not', null)
    .orderBy('oauth_grants.created_at', 'desc')
    .execute();
}

/** Revokes one of the user's grants (or all with `grantId` undefined); every token dies at once. */
export async function revokeGrants(db: Db, userId: string, grantId?: string): Promise<number> {
  let query = db.selectFrom('oauth_grants').select('id').where('user_id', '=', userId);
  if (grantId) query = query.where('id', '=', grantId);
  const grants = await query.execute();
  if (grantId && grants.length === 0)
    throw new Problem('grant.not_found', 404, 'No such authorization.');
  for (const grant of grants) {
    await revokeGrant(db, grant.id, { reason: 'revoked_by_user', actorUserId: userId });
  }
  return grants.length;
}

const TOUCH_INTERVAL_MS = 60_000;
const touchedAt = new Map<string, number>();

/** Records use of a grant at most once a minute per process, to keep hot paths write-free. */
export async function touchGrant(db: Db, grantId: string): Promise<void> {
  const now = Date.now();
  if (now - (touchedAt.get(grantId) ?? 0) < TOUCH_INTERVAL_MS) return;
  touchedAt.set(grantId, now);
  if (touchedAt.size > 10_000) touchedAt.clear();
  await db
    .updateTable('oauth_grants')
    .set({ last_used_at: new Date(now) })
    .where('id', '=', grantId)
    .execute();
}
