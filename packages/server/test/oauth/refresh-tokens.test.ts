// Refresh tokens rotate on every use: concurrent refreshes lose quietly inside the grace window,
// and reuse of a rotated token after it revokes the whole grant.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { sha256 } from '../../src/services/crypto.ts';
import { openTestStore, storeKinds } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  apiStatus,
  discover,
  introspect,
  obtainTokens,
  personalWorkspaceOf,
  refreshRequest,
  registerPartner,
  revocationReasons,
  signUpBrowser,
  tokenOutcome,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe.each(storeKinds)('refresh tokens on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspaceId: string;
  let partner: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore(kind);
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    partner = await registerPartner(store.db, await userIdOf(store.db, 'owner@partner.example'), {
      redirectUris: ['https://partner.example/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspaceId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  async function connect() {
    return obtainTokens(url, user, partner, { scope: 'caches:read', workspaceId });
  }

  async function refreshed(refreshToken: string) {
    const as = await discover(url);
    return oauth.processRefreshTokenResponse(
      as,
      { client_id: partner.clientId },
      await refreshRequest(url, partner, refreshToken),
    );
  }

  /** Moves the moment a refresh token was used back in time, past the grace window. */
  async function usedSecondsAgo(refreshToken: string, seconds: number) {
    await store.db
      .updateTable('oauth_tokens')
      .set({ consumed_at: new Date(Date.now() - seconds * 1000) })
      .where('id_hash', '=', sha256(refreshToken))
      .execute();
  }

  it('rotates the refresh token on every use, keeping the workspace', async () => {
    const tokens = await connect();
    const next = await refreshed(tokens.refresh_token!);
    expect(next.refresh_token).toBeTruthy();
    expect(next.refresh_token).not.toBe(tokens.refresh_token);
    expect(next.access_token).not.toBe(tokens.access_token);
    expect(next.workspace_id).toBe(workspaceId);
    expect(await apiStatus(url, next.access_token)).toBe(200);
  });

  it('of two concurrent refreshes exactly one succeeds and the grant survives', async () => {
    const tokens = await connect();
    const responses = await Promise.all([
      refreshRequest(url, partner, tokens.refresh_token!),
      refreshRequest(url, partner, tokens.refresh_token!),
    ]);
    const winner = responses.find((r) => r.status === 200);
    const loser = responses.find((r) => r.status !== 200);
    expect(winner).toBeDefined();
    expect(await tokenOutcome(loser!)).toBe('invalid_grant');

    const as = await discover(url);
    const won = await oauth.processRefreshTokenResponse(
      as,
      { client_id: partner.clientId },
      winner!,
    );
    expect(await apiStatus(url, won.access_token)).toBe(200);
    expect((await introspect(url, partner, won.access_token)).active).toBe(true);
    const after = await refreshed(won.refresh_token!);
    expect(await apiStatus(url, after.access_token)).toBe(200);
  });

  it('refuses a rotated refresh token reused within the grace window without revoking', async () => {
    const tokens = await connect();
    const next = await refreshed(tokens.refresh_token!);
    expect(await tokenOutcome(refreshRequest(url, partner, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
    expect(await apiStatus(url, next.access_token)).toBe(200);
    expect(await tokenOutcome(refreshRequest(url, partner, next.refresh_token!))).toBe('ok');
  });

  it('reuse of a rotated refresh token after the grace window revokes the grant', async () => {
    const tokens = await connect();
    const next = await refreshed(tokens.refresh_token!);
    expect(await apiStatus(url, next.access_token)).toBe(200);
    await usedSecondsAgo(tokens.refresh_token!, 10);
    const before = await revocationReasons(store.db, workspaceId);

    expect(await tokenOutcome(refreshRequest(url, partner, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
    expect(await revocationReasons(store.db, workspaceId)).toEqual([
      ...before,
      'refresh_token_reuse',
    ]);

    expect(await apiStatus(url, next.access_token)).toBe(401);
    expect(await introspect(url, partner, next.access_token)).toEqual({ active: false });
    expect(await tokenOutcome(refreshRequest(url, partner, next.refresh_token!))).toBe(
      'invalid_grant',
    );
  });
});
