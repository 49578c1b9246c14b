// Flushes the token endpoint's deferred writes once the engine has built its response: the code
// or refresh token is redeemed and the new tokens stored in one statement, so of two concurrent
// exchanges exactly one wins and a loser leaves nothing behind.
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/store.ts';
import { findToken, redeemAndInsertTokens } from '../db/queries/oauth-store.ts';
import { destroyGrant } from '../services/grants.ts';
import type { RequestState } from './request-state.ts';

export async function flushTokenWrites(db: Db, ctx: KoaContextWithOIDC): Promise<void> {
  const writes = (ctx.state as { edgegate?: RequestState }).edgegate?.tokenWrites;
  if (!writes || (!writes.consume && writes.inserts.length === 0)) return;
  // The engine answered with an error: nothing it prepared is kept, and nothing was redeemed.
  if (ctx.status !== 200) return;
  if (await redeemAndInsertTokens(db, writes.consume?.idHash, writes.inserts)) return;
  // Someone redeemed it first. A code used twice is a replay: the whole grant is revoked.
  // A refresh token redeemed concurrently (within the grace window) only loses the race.
  if (writes.consume?.model === 'AuthorizationCode') {
    const row = await findToken(db, writes.consume.idHash, 'AuthorizationCode');
    if (row?.grant_id) await destroyGrant(db, row.grant_id);
  }
  ctx.status = 400;
  ctx.set('cache-control', 'no-store');
  ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
}
