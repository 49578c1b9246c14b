// SQL for workspace invitations; tokens are stored only as digests and consumed atomically.
import type { Db } from '../store.ts';
import type { Invitation } from '../schema.ts';
import type { Role } from '@edgegate/contract';

export async function insertInvitation(
  db: Db,
  invitation: {
    id: string;
    workspaceId: string;
    tokenHash: string;
    role: Role;
    createdBy: string;
    expiresAt: Date;
  },
): Promise<Invitation> {
  return db
    .insertInto('invitations')
    .values({
      id: invitation.id,
      workspace_id: invitation.workspaceId,
      token_hash: invitation.tokenHash,
      role: invitation.role,
      created_by: invitation.createdBy,
      expires_at: invitation.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export type InvitationWithWorkspace = Invitation & { workspaceName: string; workspaceSlug: string };

export async function findInvitationByTokenHash(
  db: Db,
  tokenHash: string,
): Promise<InvitationWithWorkspace | undefined> {
  return db
    .selectFrom('invitations')
    .innerJoin('workspaces', 'workspaces.id', 'invitations.workspace_id')
    .selectAll('invitations')
    .select(['workspaces.name as workspaceName', 'workspaces.slug as workspaceSlug'])
    .where('invitations.token_hash', '=', tokenHash)
    .executeTakeFirst();
}

/** Marks the invitation used if, and only if, it is still open: the single-use guarantee. */
export async function consumeInvitation(
  db: Db,
  tokenHash: string,
  userId: string,
  now: Date,
): Promise<Invitation | undefined> {
  return db
    .updateTable('invitations')
    .set({ accepted_at: now, accepted_by: userId })
    .where('token_hash', '=', tokenHash)
    .where('accepted_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

export async function listOpenInvitations(
  db: Db,
  workspaceId: string,
  now: Date,
): Promise<Invitation[]> {
  return db
    .selectFrom('invitations')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('accepted_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .execute();
}

export async function revokeInvitation(
  db: Db,
  workspaceId: string,
  id: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('invitations')
    .set({ revoked_at: now })
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .where('accepted_at', 'is', null)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
