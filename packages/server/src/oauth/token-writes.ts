// Flushes the token endpoint's deferred writes once the engine has built its response: the code
// or refresh token is redeemed and the new tokens stored in one statement, so of two concurrent
// exchanges exactly one wins and a loser leaves nothing behind.
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/store.ts';
import { findRedeemedTokenGrant, redeemAndInsertTokens } from '../db/queries/oauth-store.ts';
import { revokeGrant } from '../services/grants.ts';
import type { RequestState } from './request-state.ts';

/** `db` revokes a replayed code's grant (a transaction); `pipelined` runs the single statements. */
export async function flushTokenWrites(
  db: Db,
  pipelined: Db,
  ctx: KoaContextWithOIDC,
): Promise<void> {
  const writes = (ctx.state as { edgegate?: RequestState }).edgegate?.tokenWrites;
  if (!writes || (!writes.consume && writes.inserts.length === 0)) return;
  // The engine answered with an error: nothing it prepared is kept, and nothing was redeemed.
  if (ctx.status !== 200) return;
  if (await redeemAndInsertTokens(pipelined, writes.consume?.idHash, writes.inserts)) return;
  // Someone redeemed it first, after this request looked it up. A refresh token redeemed
  // concurrently only loses the race; a code presented twice is a replay however close together
  // the two came (an attacker racing the real client is exactly that), so its grant is revoked and
  // the first exchange's tokens with it. (A code found already redeemed never gets here: the engine
  // revokes the grant itself.)
  if (writes.consume?.model === 'AuthorizationCode') {
    const grantId = await findRedeemedTokenGrant(pipelined, writes.consume.idHash);
    if (grantId) await revokeGrant(db, grantId, { reason: 'code_replay', actorUserId: null });
  }
  ctx.status = 400;
  ctx.set('cache-control', 'no-store');
  ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
}
