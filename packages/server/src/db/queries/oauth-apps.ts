// SQL for OAuth apps and their client secrets.
import type { Db } from '../store.ts';
import type { OAuthApp } from '../schema.ts';
import { deleteGrantsWhere } from './oauth-store.ts';

export interface NewOAuthApp {
  id: string;
  clientId: string;
  ownerUserId: string | null;
  ownerWorkspaceId: string | null;
  name: string;
  description: string;
  logoUrl: string | null;
  homepageUrl: string | null;
  redirectUris: string[];
  scopes: string[];
  clientType: 'confidential' | 'public';
  createdBy: string;
}

export async function insertOAuthApp(db: Db, app: NewOAuthApp): Promise<OAuthApp> {
  return db
    .insertInto('oauth_apps')
    .values({
      id: app.id,
      client_id: app.clientId,
      owner_user_id: app.ownerUserId,
      owner_workspace_id: app.ownerWorkspaceId,
      name: app.name,
      description: app.description,
      logo_url: app.logoUrl,
      homepage_url: app.homepageUrl,
      redirect_uris: app.redirectUris,
      scopes: app.scopes,
      client_type: app.clientType,
      created_by: app.createdBy,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function insertAppSecret(
  db: Db,
  secret: { id: string; appId: string; secretHash: string },
) {
  await db
    .insertInto('oauth_app_secrets')
    .values({ id: secret.id, app_id: secret.appId, secret_hash: secret.secretHash })
    .execute();
}

/** Gives every open-ended secret of the app an end: the overlap after a rotation. */
export async function expireAppSecrets(db: Db, appId: string, at: Date) {
  await db
    .updateTable('oauth_app_secrets')
    .set({ expires_at: at })
    .where('app_id', '=', appId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]))
    .execute();
}

export async function findAppById(db: Db, id: string): Promise<OAuthApp | undefined> {
  return db.selectFrom('oauth_apps').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findAppByClientId(db: Db, clientId: string): Promise<OAuthApp | undefined> {
  return db
    .selectFrom('oauth_apps')
    .selectAll()
    .where('client_id', '=', clientId)
    .executeTakeFirst();
}

export async function listLiveSecretHashes(db: Db, appId: string, now: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('oauth_app_secrets')
    .select('secret_hash')
    .where('app_id', '=', appId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at', 'desc')
    .execute();
  return rows.map((r) => r.secret_hash);
}

export async function listSecretsOfApp(db: Db, appId: string) {
  return db
    .selectFrom('oauth_app_secrets')
    .select(['id', 'created_at as createdAt', 'expires_at as expiresAt'])
    .where('app_id', '=', appId)
    .orderBy('created_at', 'desc')
    .execute();
}

export async function listAppsOwnedByUser(db: Db, userId: string): Promise<OAuthApp[]> {
  return db
    .selectFrom('oauth_apps')
    .selectAll()
    .where('owner_user_id', '=', userId)
    .orderBy('created_at')
    .execute();
}

export async function listAppsOwnedByWorkspace(db: Db, workspaceId: string): Promise<OAuthApp[]> {
  return db
    .selectFrom('oauth_apps')
    .selectAll()
    .where('owner_workspace_id', '=', workspaceId)
    .orderBy('created_at')
    .execute();
}

/** Deletes the app after revoking every grant of it (each recorded in its workspace's log). */
export async function deleteApp(db: Db, appId: string) {
  await deleteGrantsWhere(db, (grants) => grants.where('app_id', '=', appId), {
    reason: 'app_deleted',
    actorUserId: null,
  });
  await db.deleteFrom('oauth_apps').where('id', '=', appId).execute();
}
