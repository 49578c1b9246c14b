// Service tokens (the PlanetScale pattern): the workspace's own machine credentials, managed by
// its admins, each with accesses per workspace or per cache, never wider than the admin's own.
import { auditOwnedWebhooks } from '../db/queries/webhook-owners.ts';
import type { z } from 'zod';
import {
  serviceTokenCreateSchema,
  type serviceTokenSchema,
  type ServiceTokenCreate,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import {
  deleteServiceToken as deleteServiceTokenRow,
  findServiceTokenInWorkspace,
  insertServiceToken,
  listAccessesOfTokens,
  listServiceTokensInWorkspace,
  type ServiceTokenAccess,
  type ServiceTokenRow,
} from '../db/queries/service-tokens.ts';
import { findMembershipRole } from '../db/queries/workspaces.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { Problem } from '../problem.ts';
import { assertCacheScope, type Principal } from '../plugins/credential-auth.ts';
import { newId, newSecret, sha256 } from './crypto.ts';
import { requireCachesOfWorkspace } from './api-keys.ts';
import { childExpiry, insufficientScope } from '../plugins/credential-auth.ts';
import { credentialsRevoked } from './revocation-events.ts';
import { parseInput } from './validation.ts';

export type ServiceToken = z.infer<typeof serviceTokenSchema>;

export function toServiceToken(
  row: ServiceTokenRow,
  accesses: readonly ServiceTokenAccess[],
): ServiceToken {
  return {
    id: row.id,
    name: row.name,
    workspaceId: row.workspace_id,
    accesses: accesses.map(({ scope, cacheId }) => ({ scope, cacheId })),
    expiresAt: row.expires_at?.toISOString() ?? null,
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  };
}

/**
 * The acting admin's user id: a person who is an admin of the principal's workspace, acting
 * first-hand. Service tokens outlive any app authorization, so credentials of a partner app
 * (OAuth tokens, and API keys such an app minted) may not manage them.
 */
async function requireWorkspaceAdmin(db: Db, principal: Principal): Promise<string> {
  if (principal.userId === null) {
    throw new Problem(
      'service_token.person_required',
      403,
      'A service token cannot manage service tokens: use an API key of a workspace admin, or the console.',
    );
  }
  if (principal.clientId !== null) {
    throw new Problem(
      'service_token.first_party_required',
      403,
      'Service tokens outlive app authorizations, so a partner app cannot manage them: use the console or an API key created there.',
    );
  }
  const role = await findMembershipRole(db, principal.workspaceId, principal.userId);
  if (role !== 'admin') {
    throw new Problem(
      'workspace.admin_required',
      403,
      'Only admins of this workspace can manage its service tokens.',
    );
  }
  return principal.userId;
}

/** Each access must be one the creating credential holds itself, on that cache or workspace-wide. */
function assertWithinRights(principal: Principal, accesses: readonly ServiceTokenAccess[]) {
  for (const { scope, cacheId } of accesses) {
    if (cacheId !== null) assertCacheScope(principal, scope, cacheId);
    else if (principal.access.get(scope) !== null) {
      throw insufficientScope(
        [scope],
        principal.access.has(scope)
          ? `This credential holds ${scope} only for some caches, so it cannot grant it for the whole workspace.`
          : `This credential lacks ${scope}, so a token it creates cannot have it.`,
      );
    }
  }
}

/** The token's row, accesses and secret, which is returned this once and stored only as a digest. */
export async function createServiceToken(
  db: Db,
  principal: Principal,
  input: ServiceTokenCreate,
): Promise<{ row: ServiceTokenRow; accesses: ServiceTokenAccess[]; token: string }> {
  const adminId = await requireWorkspaceAdmin(db, principal);
  const fields = parseInput(serviceTokenCreateSchema, input);
  await requireCachesOfWorkspace(
    db,
    principal.workspaceId,
    fields.accesses.flatMap(({ cacheId }, i) =>
      cacheId === undefined ? [] : [{ path: `accesses.${i}.cacheId`, cacheId }],
    ),
  );
  const unique = new Map<string, ServiceTokenAccess>();
  for (const { scope, cacheId } of fields.accesses)
    unique.set(`${scope} ${cacheId ?? ''}`, { scope, cacheId: cacheId ?? null });
  const accesses = [...unique.values()];
  assertWithinRights(principal, accesses);

  const expiresAt = childExpiry(principal, fields.expiresAt);
  const token = newSecret('egst_');
  const row = await db.transaction().execute(async (tx) => {
    const inserted = await insertServiceToken(tx, {
      id: newId('st'),
      workspaceId: principal.workspaceId,
      name: fields.name,
      tokenHash: sha256(token),
      createdBy: adminId,
      expiresAt,
      accesses,
    });
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: adminId,
      action: 'service_token.created',
      target: inserted.id,
      data: { name: inserted.name, accesses, via: principal.kind },
    });
    return inserted;
  });
  return { row, accesses, token };
}

export async function listServiceTokens(
  db: Db,
  principal: Principal,
  page: { afterId?: string | undefined; limit: number },
): Promise<{ rows: ServiceTokenRow[]; accesses: Map<string, ServiceTokenAccess[]> }> {
  await requireWorkspaceAdmin(db, principal);
  const rows = await listServiceTokensInWorkspace(db, principal.workspaceId, page);
  return {
    rows,
    accesses: await listAccessesOfTokens(
      db,
      rows.map((row) => row.id),
    ),
  };
}

/** Deletes one of the workspace's tokens (404 for another workspace's); it stops working at once. */
export async function deleteServiceToken(db: Db, principal: Principal, id: string): Promise<void> {
  const adminId = await requireWorkspaceAdmin(db, principal);
  const current = await findServiceTokenInWorkspace(db, principal.workspaceId, id);
  if (!current) {
    throw new Problem('service_token.not_found', 404, `No service token ${id} in this workspace.`);
  }
  await db.transaction().execute(async (tx) => {
    await auditOwnedWebhooks(tx, (eb) => eb('webhooks.service_token_id', '=', current.id), {
      reason: 'service token deleted',
      actorUserId: adminId,
    });
    await deleteServiceTokenRow(tx, current.id);
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: adminId,
      action: 'service_token.deleted',
      target: current.id,
      data: { name: current.name, via: principal.kind },
    });
  });
  credentialsRevoked();
}
