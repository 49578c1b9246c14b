// Consent to an app as one step: the grant is created already bound to the workspace the user
// chose and recorded in that workspace's log, in one transaction; a second submission of the same
// consent (a double click, a replayed form) is refused instead of creating a second grant.
import type Provider from 'oidc-provider';
import type { Db } from '../db/store.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { listWorkspacesOfUser } from '../db/queries/workspaces.ts';
import { saveBoundGrant } from '../oauth/grant-binding.ts';
import { Problem } from '../problem.ts';
import { sha256 } from './crypto.ts';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface ConsentRequest {
  interaction: Interaction;
  userId: string;
  workspaceId: string;
  /** Caches of that workspace the user limited the app to; empty or absent for all of them. */
  cacheIds?: string[];
  /** What the app registered: consent never grants more. */
  app: { name: string; scopes: readonly string[] };
  /** The scopes the user saw on the page, for the audit log. */
  shownScopes: string[];
}

/** What the consent page asked for, as the engine reports it. */
interface MissingScopes {
  missingOIDCScope?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

export function alreadyDecided(): Problem {
  return new Problem(
    'oauth.consent_already_given',
    409,
    'This request was already answered. Go back to the app: it has your answer.',
  );
}

/** Creates the grant for an Allow on the consent page and returns its id. */
export async function grantConsent(
  db: Db,
  provider: Provider,
  request: ConsentRequest,
): Promise<string> {
  const { interaction, userId, workspaceId, app } = request;
  if (interaction.result?.consent) throw alreadyDecided();
  const workspaces = await listWorkspacesOfUser(db, userId);
  if (!workspaces.some((w) => w.id === workspaceId)) {
    throw new Problem('oauth.workspace_required', 422, 'Choose the workspace this app may access.');
  }

  const cacheIds = [...new Set(request.cacheIds ?? [])];
  if (cacheIds.length) {
    const found = await db
      .selectFrom('caches')
      .select('id')
      .where('workspace_id', '=', workspaceId)
      .where('id', 'in', cacheIds)
      .execute();
    if (found.length !== cacheIds.length) {
      throw new Problem(
        'oauth.caches_outside_workspace',
        422,
        'The caches you chose must belong to the workspace you chose.',
      );
    }
  }

  const clientId = String(interaction.params.client_id);
  // One interaction, one grant id: two submissions racing each other meet on the same row.
  const grantId = `grant_${sha256(`consent ${interaction.uid}`)}`;
  const grant = new provider.Grant({ accountId: userId, clientId });
  // jti is part of the Grant's payload (models/grant.js); the typings only omit it from the constructor.
  grant.jti = grantId;
  const missing = interaction.prompt.details as MissingScopes;
  const oidcScopes = (missing.missingOIDCScope ?? []).filter(
    (s) => s !== 'offline_access' || app.scopes.includes('offline_access'),
  );
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }

  await db.transaction().execute(async (tx) => {
    const binding = { db: tx, workspaceId, cacheIds: cacheIds.length ? cacheIds.sort() : null };
    if (!(await saveBoundGrant(grant, binding))) throw alreadyDecided();
    await insertAuditEvent(tx, {
      workspaceId,
      actorUserId: userId,
      action: 'grant.consented',
      target: grantId,
      data: {
        app: app.name,
        clientId,
        scopes: request.shownScopes,
        ...(cacheIds.length ? { cacheIds } : {}),
      },
    });
  });
  return grantId;
}
