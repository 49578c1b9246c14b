// Flushes the token endpoint's deferred writes once the engine has built its response: the code
// or refresh token is redeemed and the new tokens stored in one statement, so of two concurrent
// exchanges exactly one wins and a loser leaves nothing behind.
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/store.ts';
import { findReplayedTokenGrant, redeemAndInsertTokens } from '../db/queries/oauth-store.ts';
import { revokeGrant } from '../services/grants.ts';
import type { RequestState } from './request-state.ts';
import { CODE_RACE_WINDOW_MS } from './adapter.ts';

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
  // concurrently only loses the race, and so does a code redeemed less than CODE_RACE_WINDOW_MS
  // ago; a code redeemed earlier is a replay that revokes the grant. (A code found already
  // redeemed past that window never gets here: the engine revokes the grant itself.)
  if (writes.consume?.model === 'AuthorizationCode') {
    const grantId = await findReplayedTokenGrant(
      pipelined,
      writes.consume.idHash,
      CODE_RACE_WINDOW_MS,
    );
    if (grantId) await revokeGrant(db, grantId, { reason: 'code_replay', actorUserId: null });
  }
  ctx.status = 400;
  ctx.set('cache-control', 'no-store');
  ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
}
