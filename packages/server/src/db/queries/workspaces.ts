// SQL for workspaces and memberships; reads of a workspace always go through a membership.
import type { Db } from '../store.ts';
import type { WorkspaceRow } from '../schema.ts';
import type { Role } from '@edgegate/contract';

export type MemberWorkspace = WorkspaceRow & { role: Role };

export interface Member {
  userId: string;
  email: string;
  name: string;
  role: Role;
  joinedAt: Date;
}

/** The new workspace, or undefined when its slug is taken (nothing is written then). */
export async function insertWorkspace(
  db: Db,
  workspace: { id: string; name: string; slug: string; personalFor: string | null },
): Promise<WorkspaceRow | undefined> {
  return db
    .insertInto('workspaces')
    .values({
      id: workspace.id,
      name: workspace.name,
      slug: workspace.slug,
      personal_for: workspace.personalFor,
    })
    .onConflict((oc) => oc.column('slug').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function slugExists(db: Db, slug: string): Promise<boolean> {
  const row = await db
    .selectFrom('workspaces')
    .select('id')
    .where('slug', '=', slug)
    .executeTakeFirst();
  return row !== undefined;
}

export async function insertMembership(
  db: Db,
  workspaceId: string,
  userId: string,
  role: Role,
): Promise<void> {
  await db
    .insertInto('memberships')
    .values({ workspace_id: workspaceId, user_id: userId, role })
    .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doNothing())
    .execute();
}

export async function listWorkspacesOfUser(db: Db, userId: string): Promise<MemberWorkspace[]> {
  return db
    .selectFrom('workspaces')
    .innerJoin('memberships', 'memberships.workspace_id', 'workspaces.id')
    .selectAll('workspaces')
    .select('memberships.role')
    .where('memberships.user_id', '=', userId)
    .orderBy('workspaces.personal_for', (ob) => ob.asc().nullsLast())
    .orderBy('workspaces.name')
    .execute();
}

/** The workspace named by slug, only if the user is a member of it. */
export async function findWorkspaceBySlugForMember(
  db: Db,
  slug: string,
  userId: string,
): Promise<MemberWorkspace | undefined> {
  return db
    .selectFrom('workspaces')
    .innerJoin('memberships', 'memberships.workspace_id', 'workspaces.id')
    .selectAll('workspaces')
    .select('memberships.role')
    .where('workspaces.slug', '=', slug)
    .where('memberships.user_id', '=', userId)
    .executeTakeFirst();
}

export async function findWorkspaceBySlug(db: Db, slug: string): Promise<WorkspaceRow | undefined> {
  return db.selectFrom('workspaces').selectAll().where('slug', '=', slug).executeTakeFirst();
}

export interface WorkspaceListing {
  id: string;
  slug: string;
  name: string;
  createdAt: Date;
  members: number;
  caches: number;
}

/** Every workspace, oldest first, with how many members and caches it has (for the operator). */
export async function listWorkspacesWithCounts(db: Db): Promise<WorkspaceListing[]> {
  const rows = await db
    .selectFrom('workspaces')
    .select((eb) => [
      'workspaces.id',
      'workspaces.slug',
      'workspaces.name',
      'workspaces.created_at as createdAt',
      eb
        .selectFrom('memberships')
        .select(eb.fn.countAll<string>().as('n'))
        .whereRef('memberships.workspace_id', '=', 'workspaces.id')
        .as('members'),
      eb
        .selectFrom('caches')
        .select(eb.fn.countAll<string>().as('n'))
        .whereRef('caches.workspace_id', '=', 'workspaces.id')
        .as('caches'),
    ])
    .orderBy('workspaces.created_at')
    .orderBy('workspaces.id')
    .execute();
  return rows.map((row) => ({
    ...row,
    members: Number(row.members ?? 0),
    caches: Number(row.caches ?? 0),
  }));
}

export async function renameWorkspace(db: Db, workspaceId: string, name: string): Promise<void> {
  await db.updateTable('workspaces').set({ name }).where('id', '=', workspaceId).execute();
}

export async function listMembers(db: Db, workspaceId: string): Promise<Member[]> {
  return db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .select([
      'users.id as userId',
      'users.email',
      'users.name',
      'memberships.role',
      'memberships.created_at as joinedAt',
    ])
    .where('memberships.workspace_id', '=', workspaceId)
    .orderBy('memberships.created_at')
    .execute();
}

/**
 * Locks the workspace's memberships for the rest of the transaction, so two admins demoting
 * each other at once cannot both succeed and leave the workspace with none.
 */
export async function lockMemberships(
  db: Db,
  workspaceId: string,
): Promise<{ userId: string; role: Role }[]> {
  return db
    .selectFrom('memberships')
    .select(['user_id as userId', 'role'])
    .where('workspace_id', '=', workspaceId)
    .forUpdate()
    .execute();
}

export async function updateMemberRole(
  db: Db,
  workspaceId: string,
  userId: string,
  role: Role,
): Promise<void> {
  await db
    .updateTable('memberships')
    .set({ role })
    .where('workspace_id', '=', workspaceId)
    .where('user_id', '=', userId)
    .execute();
}

export async function deleteMembership(db: Db, workspaceId: string, userId: string): Promise<void> {
  await db
    .deleteFrom('memberships')
    .where('workspace_id', '=', workspaceId)
    .where('user_id', '=', userId)
    .execute();
}

export async function findWorkspaceById(db: Db, id: string): Promise<WorkspaceRow | undefined> {
  return db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The workspace's longest-standing admin: who an operator's action on the workspace acts as. */
export async function findEarliestAdmin(db: Db, workspaceId: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('memberships')
    .select('user_id')
    .where('workspace_id', '=', workspaceId)
    .where('role', '=', 'admin')
    .orderBy('created_at')
    .limit(1)
    .executeTakeFirst();
  return row?.user_id;
}

export async function findMembershipRole(
  db: Db,
  workspaceId: string,
  userId: string,
): Promise<Role | undefined> {
  const row = await db
    .selectFrom('memberships')
    .select('role')
    .where('workspace_id', '=', workspaceId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row?.role;
}
