// How console pages call the services the /v1 API calls: acting as the signed-in member, with the
// refusals a person can fix turned into form errors.
import { API_SCOPES } from '@edgegate/contract';
import type { Db } from '../../db/store.ts';
import type { User } from '../../db/schema.ts';
import type { MemberWorkspace } from '../../db/queries/workspaces.ts';
import type { Principal } from '../../plugins/credential-auth.ts';
import { Problem } from '../../problem.ts';
import type { FieldErrors } from '../../views/layout.ts';
import { getWorkspaceForMember } from '../../services/workspaces.ts';
import { fieldErrors } from './render.ts';

/**
 * The member's workspace (404 for anyone else) and a principal with the member's full rights in it:
 * every API scope on every cache (audited as `via: console`); services that need more than scopes
 * check it themselves (service tokens: the member's admin role).
 */
export async function consolePrincipal(
  db: Db,
  user: User,
  slug: string,
): Promise<{ workspace: MemberWorkspace; principal: Principal }> {
  const workspace = await getWorkspaceForMember(db, slug, user.id);
  const principal: Principal = {
    kind: 'console',
    credentialId: user.id,
    userId: user.id,
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
  return { workspace, principal };
}

/**
 * A refusal the person can fix in the form (bad input, a duplicate, a stale edit) as the form's
 * errors and the status to answer with; anything else is rethrown to the error page.
 */
export function formRefusal(error: unknown): {
  status: number;
  errors: FieldErrors;
  message: string | undefined;
} {
  if (!(error instanceof Problem) || ![400, 409, 412, 422].includes(error.status)) throw error;
  const errors = fieldErrors(error);
  return {
    status: error.status,
    errors,
    message: Object.keys(errors).length ? undefined : error.message,
  };
}
