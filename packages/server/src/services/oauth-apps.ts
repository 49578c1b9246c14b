// The OAuth app registry: who may manage an app, its client secrets (shown once, stored hashed,
// rotated with an overlap) and deletion, which revokes every grant of the app.
import { oauthAppCreateSchema, type OAuthAppCreateInput } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { OAuthApp } from '../db/schema.ts';
import {
  deleteApp as deleteAppRows,
  expireAppSecrets,
  findAppById,
  insertAppSecret,
  insertOAuthApp,
  listAppsOwnedByUser,
  listAppsOwnedByWorkspace,
  listSecretsOfApp,
} from '../db/queries/oauth-apps.ts';
import {
  findWorkspaceById,
  findWorkspaceBySlugForMember,
  type MemberWorkspace,
  findMembershipRole,
} from '../db/queries/workspaces.ts';
import { findUserById } from '../db/queries/users.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { Problem } from '../problem.ts';
import { newId, newSecret, randomBase62, sha256 } from './crypto.ts';
import { parseInput } from './validation.ts';
import { credentialsRevoked } from './revocation-events.ts';

export type AppOwner =
  { kind: 'user'; userId: string } | { kind: 'workspace'; workspaceSlug: string };

export interface CreatedApp {
  app: OAuthApp;
  clientId: string;
  /** Present for confidential apps; this is the only time it is ever shown. */
  clientSecret: string | undefined;
}

export const DEFAULT_ROTATION_OVERLAP_HOURS = 24;

/** Listeners told when an app changes, so caches of client metadata drop it at once. */
const appChangeListeners = new Set<(clientId: string) => void>();
export function onAppChanged(listener: (clientId: string) => void): () => void {
  appChangeListeners.add(listener);
  return () => appChangeListeners.delete(listener);
}
function appChanged(clientId: string) {
  for (const listener of appChangeListeners) listener(clientId);
}

const ADMINS_ONLY = 'Only admins of this workspace can manage its integrations.';

/** The workspace for one of its admins: members get 403, outsiders 404 (they learn nothing). */
async function getWorkspaceForAppAdmin(
  db: Db,
  slug: string,
  actorId: string,
): Promise<MemberWorkspace> {
  const workspace = await findWorkspaceBySlugForMember(db, slug, actorId);
  if (!workspace) throw new Problem('workspace.not_found', 404, 'No such workspace.');
  if (workspace.role !== 'admin') throw new Problem('workspace.admin_required', 403, ADMINS_ONLY);
  return workspace;
}

async function resolveOwner(db: Db, actorId: string, owner: AppOwner) {
  if (owner.kind === 'user') {
    if (owner.userId !== actorId)
      throw new Problem('app.forbidden', 403, 'You can only create apps for yourself.');
    return { ownerUserId: actorId, ownerWorkspaceId: null, auditWorkspaceId: null };
  }
  const workspace = await getWorkspaceForAppAdmin(db, owner.workspaceSlug, actorId);
  return { ownerUserId: null, ownerWorkspaceId: workspace.id, auditWorkspaceId: workspace.id };
}

export async function createApp(
  db: Db,
  actorId: string,
  owner: AppOwner,
  input: OAuthAppCreateInput,
): Promise<CreatedApp> {
  const fields = parseInput(oauthAppCreateSchema, input);
  const { ownerUserId, ownerWorkspaceId, auditWorkspaceId } = await resolveOwner(
    db,
    actorId,
    owner,
  );
  const clientId = `egc_${randomBase62(24)}`;
  const clientSecret = fields.clientType === 'confidential' ? newSecret('egcs_') : undefined;
  const app = await db.transaction().execute(async (tx) => {
    const row = await insertOAuthApp(tx, {
      id: newId('app'),
      clientId,
      ownerUserId,
      ownerWorkspaceId,
      name: fields.name,
      description: fields.description,
      logoUrl: fields.logoUrl ?? null,
      homepageUrl: fields.homepageUrl ?? null,
      redirectUris: [...new Set(fields.redirectUris)],
      scopes: [...new Set(fields.scopes)],
      clientType: fields.clientType,
      createdBy: actorId,
    });
    if (clientSecret)
      await insertAppSecret(tx, {
        id: newId('sec'),
        appId: row.id,
        secretHash: sha256(clientSecret),
      });
    await insertAuditEvent(tx, {
      workspaceId: auditWorkspaceId,
      actorUserId: actorId,
      action: 'app.created',
      target: row.id,
      data: { name: row.name, clientId },
    });
    return row;
  });
  return { app, clientId, clientSecret };
}

/** The app if the actor may manage it (its owner, or an admin of its workspace); 404 otherwise. */
export async function getManagedApp(db: Db, actorId: string, appId: string): Promise<OAuthApp> {
  const app = await findAppById(db, appId);
  if (app?.owner_user_id === actorId) return app;
  if (app?.owner_workspace_id) {
    const role = await findMembershipRole(db, app.owner_workspace_id, actorId);
    if (role === 'admin') return app;
    if (role) throw new Problem('workspace.admin_required', 403, ADMINS_ONLY);
  }
  throw new Problem('app.not_found', 404, 'No such app.');
}

export async function listUserApps(db: Db, userId: string): Promise<OAuthApp[]> {
  return listAppsOwnedByUser(db, userId);
}

export async function listWorkspaceApps(
  db: Db,
  actorId: string,
  slug: string,
): Promise<{ workspace: MemberWorkspace; apps: OAuthApp[] }> {
  const workspace = await getWorkspaceForAppAdmin(db, slug, actorId);
  return { workspace, apps: await listAppsOwnedByWorkspace(db, workspace.id) };
}

export interface ManagedAppDetails {
  app: OAuthApp;
  owner: { kind: 'user' | 'workspace'; name: string; integrationsPath: string };
  /** Secrets that still work: the current one and any old one inside its rotation overlap. */
  secrets: { id: string; createdAt: Date; expiresAt: Date | null }[];
}

export async function describeManagedApp(
  db: Db,
  actorId: string,
  appId: string,
): Promise<ManagedAppDetails> {
  const app = await getManagedApp(db, actorId, appId);
  const now = new Date();
  const secrets = (await listSecretsOfApp(db, app.id)).filter(
    (s) => !s.expiresAt || s.expiresAt > now,
  );
  const workspace = app.owner_workspace_id
    ? await findWorkspaceById(db, app.owner_workspace_id)
    : undefined;
  const owner = workspace
    ? {
        kind: 'workspace' as const,
        name: workspace.name,
        integrationsPath: `/w/${workspace.slug}/settings/integrations`,
      }
    : {
        kind: 'user' as const,
        name: (await findUserById(db, actorId))?.email ?? 'You',
        integrationsPath: '/settings/account/integrations',
      };
  return { app, owner, secrets };
}

export async function rotateAppSecret(
  db: Db,
  actorId: string,
  appId: string,
  overlapHours: number = DEFAULT_ROTATION_OVERLAP_HOURS,
): Promise<{ clientSecret: string; previousValidUntil: Date }> {
  if (!Number.isFinite(overlapHours) || overlapHours < 0 || overlapHours > 24 * 30) {
    throw new Problem('validation_failed', 422, 'The overlap must be between 0 and 720 hours.', {
      errors: [{ path: 'overlapHours', message: 'The overlap must be between 0 and 720 hours' }],
    });
  }
  const app = await getManagedApp(db, actorId, appId);
  if (app.client_type !== 'confidential') {
    throw new Problem('app.public_client', 409, 'Public apps have no client secret to rotate.');
  }
  const clientSecret = newSecret('egcs_');
  const previousValidUntil = new Date(Date.now() + overlapHours * 3600_000);
  await db.transaction().execute(async (tx) => {
    await expireAppSecrets(tx, app.id, previousValidUntil);
    await insertAppSecret(tx, {
      id: newId('sec'),
      appId: app.id,
      secretHash: sha256(clientSecret),
    });
    await insertAuditEvent(tx, {
      workspaceId: app.owner_workspace_id,
      actorUserId: actorId,
      action: 'app.secret_rotated',
      target: app.id,
      data: { previousValidUntil: previousValidUntil.toISOString() },
    });
  });
  appChanged(app.client_id);
  return { clientSecret, previousValidUntil };
}

export async function deleteApp(db: Db, actorId: string, appId: string): Promise<void> {
  const app = await getManagedApp(db, actorId, appId);
  await db.transaction().execute(async (tx) => {
    await deleteAppRows(tx, app.id);
    await insertAuditEvent(tx, {
      workspaceId: app.owner_workspace_id,
      actorUserId: actorId,
      action: 'app.deleted',
      target: app.id,
      data: { name: app.name, clientId: app.client_id },
    });
  });
  appChanged(app.client_id);
  credentialsRevoked();
}
