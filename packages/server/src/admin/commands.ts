// Operator commands shared by the CLI (direct store access) and the admin socket of a running server.
import { emailSchema, type OAuthAppCreateInput } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import { findUserByEmail, listUsersWithWorkspaces } from '../db/queries/users.ts';
import {
  findEarliestAdmin,
  findWorkspaceBySlug,
  listWorkspacesWithCounts,
} from '../db/queries/workspaces.ts';
import { Problem } from '../problem.ts';
import { disableAccount, enableAccount, signUp } from '../services/accounts.ts';
import { createApp as createAppForOwner, type AppOwner } from '../services/oauth-apps.ts';
import { createWorkspace as createWorkspaceForUser } from '../services/workspaces.ts';
import { parseInput } from '../services/validation.ts';

export interface CreatedUser {
  id: string;
  email: string;
  name: string;
  personalWorkspace: { id: string; slug: string; name: string };
}

export async function createUser(
  db: Db,
  input: { email: string; password: string; name?: string },
): Promise<CreatedUser> {
  const { user, personalWorkspace } = await signUp(db, input);
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    personalWorkspace: {
      id: personalWorkspace.id,
      slug: personalWorkspace.slug,
      name: personalWorkspace.name,
    },
  };
}

export interface CreatedWorkspace {
  id: string;
  name: string;
  slug: string;
  owner: string;
}

export async function createWorkspace(
  db: Db,
  input: { name: string; owner: string },
): Promise<CreatedWorkspace> {
  const email = parseInput(emailSchema, input.owner);
  const owner = await findUserByEmail(db, email);
  if (!owner)
    throw new Problem(
      'user.not_found',
      404,
      `No user with email ${email}. Create it first with \`edgegate users create\`.`,
    );
  const workspace = await createWorkspaceForUser(db, owner.id, { name: input.name });
  return { id: workspace.id, name: workspace.name, slug: workspace.slug, owner: owner.email };
}

export interface CreatedAppForOperator {
  id: string;
  name: string;
  owner: string;
  clientType: 'confidential' | 'public';
  clientId: string;
  /** Only for confidential apps, and only now: it is stored hashed. */
  clientSecret: string | null;
}

export type CreateAppInput = OAuthAppCreateInput & { ownerUser?: string; workspace?: string };

/** Who an operator's app is for and whom the audit log names as acting: the user, or the workspace's earliest admin. */
async function resolveAppOwner(
  db: Db,
  input: { ownerUser?: string | undefined; workspace?: string | undefined },
): Promise<{ actorId: string; owner: AppOwner; label: string }> {
  if ((input.ownerUser === undefined) === (input.workspace === undefined)) {
    throw new Problem(
      'app.owner_required',
      422,
      'Give exactly one owner: a user email or a workspace slug.',
    );
  }
  if (input.ownerUser !== undefined) {
    const email = parseInput(emailSchema, input.ownerUser);
    const user = await findUserByEmail(db, email);
    if (!user) {
      throw new Problem(
        'user.not_found',
        404,
        `No user with email ${email}. Create it first with \`edgegate users create\`.`,
      );
    }
    return { actorId: user.id, owner: { kind: 'user', userId: user.id }, label: user.email };
  }
  const slug = input.workspace ?? '';
  const workspace = await findWorkspaceBySlug(db, slug);
  if (!workspace) throw new Problem('workspace.not_found', 404, `No workspace with slug ${slug}.`);
  const adminId = await findEarliestAdmin(db, workspace.id);
  if (!adminId)
    throw new Problem('workspace.no_admin', 409, `Workspace ${slug} has no admin to act for it.`);
  return {
    actorId: adminId,
    owner: { kind: 'workspace', workspaceSlug: workspace.slug },
    label: `workspace ${workspace.slug}`,
  };
}

export async function createApp(db: Db, input: CreateAppInput): Promise<CreatedAppForOperator> {
  const { ownerUser, workspace, ...fields } = input;
  const { actorId, owner, label } = await resolveAppOwner(db, { ownerUser, workspace });
  const created = await createAppForOwner(db, actorId, owner, fields);
  return {
    id: created.app.id,
    name: created.app.name,
    owner: label,
    clientType: created.app.client_type,
    clientId: created.clientId,
    clientSecret: created.clientSecret ?? null,
  };
}

export interface ListedUser {
  id: string;
  email: string;
  name: string;
  createdAt: string;
  disabledAt: string | null;
  workspaces: string[];
}

export async function listUsers(db: Db): Promise<ListedUser[]> {
  const users = await listUsersWithWorkspaces(db);
  return users.map((user) => ({
    ...user,
    createdAt: user.createdAt.toISOString(),
    disabledAt: user.disabledAt?.toISOString() ?? null,
  }));
}

export interface ListedWorkspace {
  id: string;
  slug: string;
  name: string;
  createdAt: string;
  members: number;
  caches: number;
}

export async function listWorkspaces(db: Db): Promise<ListedWorkspace[]> {
  const workspaces = await listWorkspacesWithCounts(db);
  return workspaces.map((w) => ({ ...w, createdAt: w.createdAt.toISOString() }));
}

async function userByEmail(db: Db, address: string) {
  const email = parseInput(emailSchema, address);
  const user = await findUserByEmail(db, email);
  if (!user) throw new Problem('user.not_found', 404, `No user with email ${email}.`);
  return user;
}

export interface DisabledUser {
  email: string;
  /** False when the user already was disabled. */
  changed: boolean;
  endedSessions: number;
  revokedAuthorizations: number;
}

export async function disableUser(db: Db, input: { email: string }): Promise<DisabledUser> {
  const user = await userByEmail(db, input.email);
  return { email: user.email, ...(await disableAccount(db, user.id)) };
}

export async function enableUser(
  db: Db,
  input: { email: string },
): Promise<{ email: string; changed: boolean }> {
  const user = await userByEmail(db, input.email);
  return { email: user.email, changed: await enableAccount(db, user.id) };
}
