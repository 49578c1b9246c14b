// Operator commands shared by the CLI (direct store access) and the admin socket of a running server.
import { emailSchema } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import { findUserByEmail } from '../db/queries/users.ts';
import { Problem } from '../problem.ts';
import { signUp } from '../services/accounts.ts';
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
