// Workspaces, roles and invitations; every rule about who may do what lives here.
import {
  invitationCreateInputSchema,
  roleSchema,
  workspaceCreateInputSchema,
  workspaceNameSchema,
  type Role,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { WorkspaceRow } from '../db/schema.ts';
import {
  deleteMembership,
  findWorkspaceBySlugForMember,
  insertMembership,
  insertWorkspace,
  lockMemberships,
  renameWorkspace as renameWorkspaceRow,
  slugExists,
  updateMemberRole,
  type MemberWorkspace,
} from '../db/queries/workspaces.ts';
import {
  consumeInvitation,
  findInvitationByTokenHash,
  insertInvitation,
  revokeInvitation as revokeInvitationRow,
} from '../db/queries/invitations.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { deleteGrantsOfMember } from '../db/queries/oauth-store.ts';
import { credentialsRevoked } from './revocation-events.ts';
import { Problem } from '../problem.ts';
import { newId, newSecret, randomBase62, sha256 } from './crypto.ts';
import { parseInput } from './validation.ts';

export function slugify(name: string): string {
  const base = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/['’]/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return base || 'workspace';
}

export async function createWorkspaceWithAdmin(
  db: Db,
  userId: string,
  name: string,
  options: { personal?: boolean } = {},
): Promise<WorkspaceRow> {
  const base = slugify(name);
  // A taken slug gets a random suffix. The insert skips a conflicting slug instead of failing,
  // so two people creating "Acme" at once both succeed, even inside a transaction.
  for (let attempt = 0; ; attempt++) {
    const slug = attempt === 0 ? base : `${base}-${randomBase62(6).toLowerCase()}`;
    if (attempt === 0 && (await slugExists(db, slug))) continue;
    const workspace = await insertWorkspace(db, {
      id: newId('ws'),
      name,
      slug,
      personalFor: options.personal ? userId : null,
    });
    if (!workspace) continue;
    await insertMembership(db, workspace.id, userId, 'admin');
    return workspace;
  }
}

export async function createWorkspace(
  db: Db,
  userId: string,
  input: { name: string },
): Promise<WorkspaceRow> {
  const { name } = parseInput(workspaceCreateInputSchema, input);
  return db.transaction().execute(async (tx) => {
    const workspace = await createWorkspaceWithAdmin(tx, userId, name);
    await insertAuditEvent(tx, {
      workspaceId: workspace.id,
      actorUserId: userId,
      action: 'workspace.created',
      target: workspace.id,
    });
    return workspace;
  });
}

/** The workspace if the user belongs to it; 404 otherwise, so outsiders learn nothing. */
export async function getWorkspaceForMember(
  db: Db,
  slug: string,
  userId: string,
): Promise<MemberWorkspace> {
  const workspace = await findWorkspaceBySlugForMember(db, slug, userId);
  if (!workspace) throw new Problem('workspace.not_found', 404, 'No such workspace.');
  return workspace;
}

async function getWorkspaceForAdmin(
  db: Db,
  slug: string,
  userId: string,
): Promise<MemberWorkspace> {
  const workspace = await getWorkspaceForMember(db, slug, userId);
  if (workspace.role !== 'admin') {
    throw new Problem(
      'workspace.admin_required',
      403,
      'Only an admin of this workspace can do that.',
    );
  }
  return workspace;
}

export async function renameWorkspace(
  db: Db,
  userId: string,
  slug: string,
  input: { name: string },
) {
  const name = parseInput(workspaceNameSchema, input.name);
  const workspace = await getWorkspaceForAdmin(db, slug, userId);
  await db.transaction().execute(async (tx) => {
    await renameWorkspaceRow(tx, workspace.id, name);
    await insertAuditEvent(tx, {
      workspaceId: workspace.id,
      actorUserId: userId,
      action: 'workspace.renamed',
      data: { from: workspace.name, to: name },
    });
  });
}

export interface CreatedInvitation {
  id: string;
  token: string;
  role: Role;
  expiresAt: Date;
}

export async function createInvitation(
  db: Db,
  userId: string,
  slug: string,
  input: { role?: string; expiresInHours?: number | string },
): Promise<CreatedInvitation> {
  const { role, expiresInHours } = parseInput(invitationCreateInputSchema, input);
  const workspace = await getWorkspaceForAdmin(db, slug, userId);
  const token = newSecret('egi_');
  const expiresAt = new Date(Date.now() + expiresInHours * 3600_000);
  const invitation = await db.transaction().execute(async (tx) => {
    const row = await insertInvitation(tx, {
      id: newId('inv'),
      workspaceId: workspace.id,
      tokenHash: sha256(token),
      role,
      createdBy: userId,
      expiresAt,
    });
    await insertAuditEvent(tx, {
      workspaceId: workspace.id,
      actorUserId: userId,
      action: 'invitation.created',
      target: row.id,
      data: { role, expiresAt: expiresAt.toISOString() },
    });
    return row;
  });
  return { id: invitation.id, token, role, expiresAt };
}

export async function revokeInvitation(db: Db, userId: string, slug: string, invitationId: string) {
  const workspace = await getWorkspaceForAdmin(db, slug, userId);
  const revoked = await revokeInvitationRow(db, workspace.id, invitationId, new Date());
  if (!revoked) throw new Problem('invitation.not_found', 404, 'No such open invitation.');
}

/** What the invitation page shows before the user accepts; explains why a link no longer works. */
export async function describeInvitation(db: Db, token: string) {
  const invitation = await findInvitationByTokenHash(db, sha256(token));
  if (!invitation)
    throw new Problem('invitation.not_found', 404, 'This invitation link is not valid.');
  if (invitation.accepted_at) {
    throw new Problem('invitation.used', 410, 'This invitation has already been used.');
  }
  if (invitation.revoked_at)
    throw new Problem('invitation.revoked', 410, 'This invitation was withdrawn.');
  if (invitation.expires_at <= new Date()) {
    throw new Problem('invitation.expired', 410, 'This invitation has expired. Ask for a new one.');
  }
  return invitation;
}

export async function acceptInvitation(db: Db, userId: string, token: string) {
  const invitation = await describeInvitation(db, token);
  return db.transaction().execute(async (tx) => {
    const consumed = await consumeInvitation(tx, sha256(token), userId, new Date());
    if (!consumed)
      throw new Problem('invitation.used', 410, 'This invitation has already been used.');
    await insertMembership(tx, consumed.workspace_id, userId, consumed.role);
    await insertAuditEvent(tx, {
      workspaceId: consumed.workspace_id,
      actorUserId: userId,
      action: 'member.joined',
      target: userId,
      data: { invitationId: consumed.id, role: consumed.role },
    });
    return { workspaceSlug: invitation.workspaceSlug, workspaceName: invitation.workspaceName };
  });
}

function assertAdminRemains(
  members: { userId: string; role: Role }[],
  change: { userId: string; role: Role | null },
) {
  const admins = members.filter((m) =>
    m.userId === change.userId ? change.role === 'admin' : m.role === 'admin',
  );
  if (admins.length === 0) {
    throw new Problem(
      'workspace.last_admin',
      409,
      'A workspace needs at least one admin. Make another member an admin first.',
    );
  }
}

export async function changeMemberRole(
  db: Db,
  actorId: string,
  slug: string,
  targetUserId: string,
  role: string,
): Promise<void> {
  const newRole = parseInput(roleSchema, role);
  const workspace = await getWorkspaceForAdmin(db, slug, actorId);
  await db.transaction().execute(async (tx) => {
    const members = await lockMemberships(tx, workspace.id);
    const target = members.find((m) => m.userId === targetUserId);
    if (!target) throw new Problem('member.not_found', 404, 'No such member in this workspace.');
    if (target.role === newRole) return;
    assertAdminRemains(members, { userId: targetUserId, role: newRole });
    await updateMemberRole(tx, workspace.id, targetUserId, newRole);
    await insertAuditEvent(tx, {
      workspaceId: workspace.id,
      actorUserId: actorId,
      action: 'member.role_changed',
      target: targetUserId,
      data: { from: target.role, to: newRole },
    });
  });
}

/** Removes a member; a member may remove themselves (leave), only admins may remove others. */
export async function removeMember(db: Db, actorId: string, slug: string, targetUserId: string) {
  const workspace =
    actorId === targetUserId
      ? await getWorkspaceForMember(db, slug, actorId)
      : await getWorkspaceForAdmin(db, slug, actorId);
  await db.transaction().execute(async (tx) => {
    const members = await lockMemberships(tx, workspace.id);
    if (!members.some((m) => m.userId === targetUserId)) {
      throw new Problem('member.not_found', 404, 'No such member in this workspace.');
    }
    assertAdminRemains(members, { userId: targetUserId, role: null });
    await deleteMembership(tx, workspace.id, targetUserId);
    // Apps they let into this workspace lose access with them.
    await deleteGrantsOfMember(tx, workspace.id, targetUserId);
    await insertAuditEvent(tx, {
      workspaceId: workspace.id,
      actorUserId: actorId,
      action: actorId === targetUserId ? 'member.left' : 'member.removed',
      target: targetUserId,
    });
  });
  credentialsRevoked();
}
