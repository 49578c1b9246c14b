// OAuth grants as people see them: the workspace each is bound to, listing and revocation.
import type { Db } from '../db/store.ts';
import { deleteGrantsWhere, type GrantRevocation } from '../db/queries/oauth-store.ts';
import {
  findGrantUsableBy,
  findGrantBinding as selectGrantBinding,
  listGrantIdsOfUser,
  listWorkspaceGrantsOfUser,
  setGrantLastUsed,
  setGrantWorkspace,
} from '../db/queries/oauth-grants.ts';
import { findUserById } from '../db/queries/users.ts';
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
  await setGrantWorkspace(db, grantId, workspaceId);
}

/**
 * A grant's workspace and cache limit are written together and never change once bound, so the
 * answer can be remembered: token issuance asks for both on every refresh.
 */
const grantBindings = new Map<string, { workspaceId: string; cacheIds: string[] | null }>();

/** The workspace a grant is bound to and the caches it is limited to (null: all); undefined if unbound. */
export async function findGrantBinding(
  db: Db,
  grantId: string,
): Promise<{ workspaceId: string; cacheIds: string[] | null } | undefined> {
  const known = grantBindings.get(grantId);
  if (known) return known;
  const row = await selectGrantBinding(db, grantId);
  if (!row?.workspace_id) return undefined;
  const binding = { workspaceId: row.workspace_id, cacheIds: row.cache_ids };
  if (grantBindings.size > 50_000) grantBindings.clear();
  grantBindings.set(grantId, binding);
  return binding;
}

export async function findGrantWorkspace(db: Db, grantId: string): Promise<string | undefined> {
  return (await findGrantBinding(db, grantId))?.workspaceId;
}

/** Whether the user exists and, for a grant, still belongs to the grant's workspace: one query. */
export async function accountMayUseGrant(
  db: Db,
  userId: string,
  grantId: string | undefined,
): Promise<boolean> {
  if (!grantId) return (await findUserById(db, userId)) !== undefined;
  return findGrantUsableBy(db, grantId, userId);
}

export interface AuthorizedApp {
  grantId: string;
  appName: string;
  appLogoUrl: string | null;
  workspaceName: string | null;
  workspaceSlug: string | null;
  scopes: string[];
  /** The caches the consent limited it to; null for the whole workspace. */
  cacheIds: string[] | null;
  grantedAt: Date;
  lastUsedAt: Date | null;
}

export async function listAuthorizedApps(db: Db, userId: string): Promise<AuthorizedApp[]> {
  return listWorkspaceGrantsOfUser(db, userId);
}

/** Revokes one of the user's grants (or all with `grantId` undefined); every token dies at once. */
export async function revokeGrants(db: Db, userId: string, grantId?: string): Promise<number> {
  const grantIds = await listGrantIdsOfUser(db, userId, grantId);
  if (grantId && grantIds.length === 0) {
    throw new Problem('grant.not_found', 404, 'No such authorization.');
  }
  for (const id of grantIds) {
    await revokeGrant(db, id, { reason: 'revoked_by_user', actorUserId: userId });
  }
  return grantIds.length;
}

const TOUCH_INTERVAL_MS = 60_000;
const touchedAt = new Map<string, number>();

/** Records use of a grant at most once a minute per process, to keep hot paths write-free. */
export async function touchGrant(db: Db, grantId: string): Promise<void> {
  const now = Date.now();
  if (now - (touchedAt.get(grantId) ?? 0) < TOUCH_INTERVAL_MS) return;
  touchedAt.set(grantId, now);
  if (touchedAt.size > 10_000) touchedAt.clear();
  await setGrantLastUsed(db, grantId, new Date(now));
}
