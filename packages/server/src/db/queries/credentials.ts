// SQL that resolves a presented credential to its workspace, owner and rights, in one query each.
import type { Db } from '../store.ts';
import { safeEqual } from '../../services/crypto.ts';

export async function findOAuthCredential(db: Db, tokenHash: string, now: Date) {
  return db
    .selectFrom('oauth_tokens as t')
    .innerJoin('oauth_grants as g', 'g.id', 't.grant_id')
    .innerJoin('memberships as m', (join) =>
      join.onRef('m.workspace_id', '=', 'g.workspace_id').onRef('m.user_id', '=', 'g.user_id'),
    )
    .innerJoin('workspaces as w', 'w.id', 'm.workspace_id')
    .innerJoin('users as u', 'u.id', 'g.user_id')
    .select([
      'g.id as credentialId',
      'g.user_id as userId',
      'g.cache_ids as cacheIds',
      'w.id as workspaceId',
      'w.name as workspaceName',
      'w.slug as workspaceSlug',
      'w.created_at as workspaceCreatedAt',
      't.payload',
    ])
    .where('t.id_hash', '=', tokenHash)
    .where('t.kind', '=', 'AccessToken')
    .where('t.expires_at', '>', now)
    .where('g.expires_at', '>', now)
    .where('u.disabled_at', 'is', null)
    .executeTakeFirst();
}

/** An API key works only while its user still belongs to its workspace and is not disabled. */
export async function findApiKeyCredential(db: Db, tokenHash: string, now: Date) {
  return db
    .selectFrom('api_keys as k')
    .innerJoin('memberships as m', (join) =>
      join.onRef('m.workspace_id', '=', 'k.workspace_id').onRef('m.user_id', '=', 'k.user_id'),
    )
    .innerJoin('workspaces as w', 'w.id', 'k.workspace_id')
    .innerJoin('users as u', 'u.id', 'k.user_id')
    .select([
      'k.id as credentialId',
      'k.user_id as userId',
      'u.email',
      'k.scopes',
      'k.cache_ids as cacheIds',
      'k.created_by_client_id as clientId',
      'k.expires_at as expiresAt',
      'w.id as workspaceId',
      'w.name as workspaceName',
      'w.slug as workspaceSlug',
      'w.created_at as workspaceCreatedAt',
    ])
    .where('k.token_hash', '=', tokenHash)
    .where('u.disabled_at', 'is', null)
    .where((eb) => eb.or([eb('k.expires_at', 'is', null), eb('k.expires_at', '>', now)]))
    .executeTakeFirst();
}

export async function findServiceTokenCredential(db: Db, id: string, tokenHash: string, now: Date) {
  const token = await db
    .selectFrom('service_tokens as s')
    .innerJoin('workspaces as w', 'w.id', 's.workspace_id')
    .select([
      's.id as credentialId',
      's.expires_at as expiresAt',
      's.token_hash as tokenHash',
      'w.id as workspaceId',
      'w.name as workspaceName',
      'w.slug as workspaceSlug',
      'w.created_at as workspaceCreatedAt',
    ])
    .where('s.id', '=', id)
    .where((eb) => eb.or([eb('s.expires_at', 'is', null), eb('s.expires_at', '>', now)]))
    .executeTakeFirst();
  if (!token || !safeEqual(token.tokenHash, tokenHash)) return undefined;
  const accesses = await db
    .selectFrom('service_token_accesses')
    .select(['scope', 'cache_id as cacheId'])
    .where('token_id', '=', id)
    .execute();
  return { ...token, accesses };
}

export async function touchCredential(
  db: Db,
  kind: 'api_key' | 'service_token',
  id: string,
  at: Date,
) {
  const table = kind === 'api_key' ? 'api_keys' : 'service_tokens';
  await db.updateTable(table).set({ last_used_at: at }).where('id', '=', id).execute();
}
