// Operator commands that create a workspace's machine credentials: an API key for a member, a
// service token for the workspace. The secrets are returned this once, as the console shows them.
import {
  API_SCOPES,
  emailSchema,
  type ApiKeyCreate,
  type ServiceTokenCreate,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import { findApiKeyInWorkspace, listApiKeysOfWorkspace } from '../db/queries/api-keys.ts';
import { findUserByEmail } from '../db/queries/users.ts';
import { findEarliestAdmin, findWorkspaceBySlug } from '../db/queries/workspaces.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { Problem } from '../problem.ts';
import { createApiKey, deleteApiKey, toApiKey, type ApiKey } from '../services/api-keys.ts';
import {
  createServiceToken,
  deleteServiceToken,
  listServiceTokens,
  toServiceToken,
  type ServiceToken,
} from '../services/service-tokens.ts';
import { parseInput } from '../services/validation.ts';
import { getWorkspaceForMember } from '../services/workspaces.ts';

/**
 * The operator acts as `userId` with every API scope, as that person could in the console (the
 * audit log says `via: console`: the same rights, and no separate kind for the security checks).
 */
export function operatorPrincipal(
  userId: string,
  workspace: { id: string; name: string; slug: string; created_at: Date },
): Principal {
  return {
    kind: 'console',
    credentialId: userId,
    userId,
    workspaceId: workspace.id,
    workspace: {
      id: workspace.id,
      name: workspace.name,
      slug: workspace.slug,
      createdAt: workspace.created_at,
    },
    clientId: null,
    access: new Map(API_SCOPES.map((scope) => [scope, null])),
    expiresAt: null,
  };
}

/**
 * The workspace `slug` and a principal acting for it: its earliest admin's, with every scope,
 * which is whom the audit log then names.
 */
export async function actForWorkspace(db: Db, slug: string) {
  const workspace = await findWorkspaceBySlug(db, slug);
  if (!workspace) throw new Problem('workspace.not_found', 404, `No workspace with slug ${slug}.`);
  const adminId = await findEarliestAdmin(db, workspace.id);
  if (!adminId)
    throw new Problem('workspace.no_admin', 409, `Workspace ${slug} has no admin to act for it.`);
  return { workspace, principal: operatorPrincipal(adminId, workspace) };
}

export type CreateApiKeyInput = ApiKeyCreate & { workspace: string; user: string };
export type CreatedApiKey = ApiKey & { workspace: string; user: string; key: string };

/** An API key of `user` (a member) in `workspace`; it can do what its scopes allow the member. */
export async function createApiKeyForMember(
  db: Db,
  input: CreateApiKeyInput,
): Promise<CreatedApiKey> {
  const { workspace: slug, user: userEmail, ...fields } = input;
  const email = parseInput(emailSchema, userEmail);
  const user = await findUserByEmail(db, email);
  if (!user) throw new Problem('user.not_found', 404, `No user with email ${email}.`);
  const workspace = await getWorkspaceForMember(db, slug, user.id).catch((error: unknown) => {
    if (error instanceof Problem && error.status === 404)
      throw new Problem(
        'workspace.not_found',
        404,
        `No workspace with slug ${slug} that ${email} is a member of.`,
      );
    throw error;
  });
  const { row, key } = await createApiKey(db, operatorPrincipal(user.id, workspace), fields);
  return { ...toApiKey(row), workspace: workspace.slug, user: user.email, key };
}

export type CreateServiceTokenInput = ServiceTokenCreate & { workspace: string };
export type CreatedServiceToken = ServiceToken & { workspace: string; token: string };

/** A service token of `workspace`, created in the name of its earliest admin (the audit log says so). */
export async function createServiceTokenForWorkspace(
  db: Db,
  input: CreateServiceTokenInput,
): Promise<CreatedServiceToken> {
  const { workspace: slug, ...fields } = input;
  const { workspace, principal } = await actForWorkspace(db, slug);
  const created = await createServiceToken(db, principal, fields);
  return {
    ...toServiceToken(created.row, created.accesses),
    workspace: workspace.slug,
    token: created.token,
  };
}

export type ListedApiKey = ApiKey & { user: string };

/** Every API key of the workspace, whoever owns it; never the secret, which is stored hashed. */
export async function listApiKeysForWorkspace(
  db: Db,
  input: { workspace: string },
): Promise<ListedApiKey[]> {
  const workspace = await findWorkspaceBySlug(db, input.workspace);
  if (!workspace)
    throw new Problem('workspace.not_found', 404, `No workspace with slug ${input.workspace}.`);
  const rows = await listApiKeysOfWorkspace(db, workspace.id);
  return rows.map(({ email, ...row }) => ({ ...toApiKey(row), user: email }));
}

/** Deletes a key of the workspace, whoever owns it, as its owner would (webhooks and audit log too). */
export async function deleteApiKeyOfWorkspace(
  db: Db,
  input: { workspace: string; id: string },
): Promise<{ id: string; workspace: string }> {
  const workspace = await findWorkspaceBySlug(db, input.workspace);
  if (!workspace)
    throw new Problem('workspace.not_found', 404, `No workspace with slug ${input.workspace}.`);
  const key = await findApiKeyInWorkspace(db, workspace.id, input.id);
  if (!key)
    throw new Problem(
      'apikey.not_found',
      404,
      `No API key ${input.id} in workspace ${workspace.slug}.`,
    );
  await deleteApiKey(db, operatorPrincipal(key.user_id, workspace), key.id);
  return { id: key.id, workspace: workspace.slug };
}

const PAGE = 100;

export async function listServiceTokensForWorkspace(
  db: Db,
  input: { workspace: string },
): Promise<ServiceToken[]> {
  const { principal } = await actForWorkspace(db, input.workspace);
  const tokens: ServiceToken[] = [];
  for (let afterId: string | undefined; ;) {
    const { rows, accesses } = await listServiceTokens(db, principal, { afterId, limit: PAGE });
    tokens.push(
      ...rows.slice(0, PAGE).map((row) => toServiceToken(row, accesses.get(row.id) ?? [])),
    );
    if (rows.length <= PAGE) return tokens;
    afterId = rows[PAGE - 1]!.id;
  }
}

export async function deleteServiceTokenOfWorkspace(
  db: Db,
  input: { workspace: string; id: string },
): Promise<{ id: string; workspace: string }> {
  const { workspace, principal } = await actForWorkspace(db, input.workspace);
  await deleteServiceToken(db, principal, input.id);
  return { id: input.id, workspace: workspace.slug };
}
