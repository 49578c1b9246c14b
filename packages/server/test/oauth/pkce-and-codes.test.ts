// Authorization codes as a partner meets them: PKCE S256 without downgrade, state and iss in the
// callback, a short life and exactly one use, even when exchanges race.
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
  callbackParams,
  clientAuthOf,
  insecure,
  introspect,
  obtainCode,
  personalWorkspaceOf,
  refreshRequest,
  registerPartner,
  revocationReasons,
  signUpBrowser,
  startAuthorization,
  textOf,
  tokenOutcome,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe.each(storeKinds)('authorization codes on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspaceId: string;
  let workspaceSlug: string;
  let web: RegisteredPartner;
  let publicApp: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore(kind);
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    const ownerId = await userIdOf(store.db, 'owner@partner.example');
    web = await registerPartner(store.db, ownerId, {
      redirectUris: ['https://partner.example/callback'],
    });
    publicApp = await registerPartner(store.db, ownerId, {
      name: 'Partner SPA',
      clientType: 'public',
      redirectUris: ['https://spa.partner.example/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    ({ id: workspaceId, slug: workspaceSlug } = await personalWorkspaceOf(
      store.db,
      'ada@example.com',
    ));
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  /** Exchanges the callback's code with an explicit verifier (or none). */
  async function exchange(
    partner: RegisteredPartner,
    flow: { as: oauth.AuthorizationServer; callbackUrl: URL; state: string },
    verifier: string | typeof oauth.nopkce,
  ) {
    return oauth.authorizationCodeGrantRequest(
      flow.as,
      { client_id: partner.clientId },
      clientAuthOf(partner),
      callbackParams(flow.as, partner, flow),
      partner.redirectUri,
      verifier,
      insecure,
    );
  }

  it('refuses a public client that sends no code_challenge, with an error on its redirect', async () => {
    const started = await startAuthorization(url, user, publicApp, {
      scope: 'caches:read',
      pkce: 'none',
    });
    expect(started.leftTo?.origin + started.leftTo!.pathname).toBe(publicApp.redirectUri);
    expect(started.leftTo!.searchParams.get('error')).toBe('invalid_request');
    expect(started.leftTo!.searchParams.get('error_description')).toMatch(/PKCE/);
    expect(started.leftTo!.searchParams.get('state')).toBe(started.state);
    expect(started.leftTo!.searchParams.get('iss')).toBe(url);
    expect(started.leftTo!.searchParams.has('code')).toBe(false);
  });

  it('refuses code_challenge_method=plain', async () => {
    for (const partner of [publicApp, web]) {
      const started = await startAuthorization(url, user, partner, {
        scope: 'caches:read',
        pkce: 'plain',
      });
      expect(started.leftTo!.searchParams.get('error')).toBe('invalid_request');
      expect(started.leftTo!.searchParams.get('error_description')).toMatch(
        /code_challenge_method/,
      );
      expect(started.leftTo!.searchParams.has('code')).toBe(false);
    }
  });

  it('lets a confidential client connect without PKCE', async () => {
    const flow = await obtainCode(url, user, web, {
      scope: 'caches:read',
      pkce: 'none',
      workspaceId,
    });
    const response = await exchange(web, flow, oauth.nopkce);
    const tokens = await oauth.processAuthorizationCodeResponse(
      flow.as,
      { client_id: web.clientId },
      response,
    );
    expect(tokens.workspace_id).toBe(workspaceId);
  });

  it('echoes state and names the issuer in the callback (RFC 9207)', async () => {
    const flow = await obtainCode(url, user, publicApp, { scope: 'caches:read', workspaceId });
    expect(flow.callbackUrl.origin + flow.callbackUrl.pathname).toBe(publicApp.redirectUri);
    expect(flow.callbackUrl.searchParams.get('state')).toBe(flow.state);
    expect(flow.callbackUrl.searchParams.get('iss')).toBe(url);
    expect(flow.callbackUrl.searchParams.get('code')).toBeTruthy();
  });

  it('does not exchange a code issued with a challenge without its verifier', async () => {
    const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
    expect(await tokenOutcome(exchange(web, flow, oauth.nopkce))).toBe('invalid_grant');
  });

  it('does not exchange a code issued without a challenge when a verifier is sent', async () => {
    const flow = await obtainCode(url, user, web, {
      scope: 'caches:read',
      pkce: 'none',
      workspaceId,
    });
    const verifier = oauth.generateRandomCodeVerifier();
    expect(await tokenOutcome(exchange(web, flow, verifier))).toBe('invalid_grant');
  });

  it('refuses a wrong code_verifier', async () => {
    for (const partner of [publicApp, web]) {
      const flow = await obtainCode(url, user, partner, { scope: 'caches:read', workspaceId });
      const wrong = oauth.generateRandomCodeVerifier();
      expect(await tokenOutcome(exchange(partner, flow, wrong))).toBe('invalid_grant');
    }
  });

  it('issues codes that expire within 60 seconds', async () => {
    const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
    const checkedAt = Date.now();
    const codes = await store.db
      .selectFrom('oauth_tokens')
      .select(['expires_at', 'consumed_at'])
      .where('kind', '=', 'AuthorizationCode')
      .where('consumed_at', 'is', null)
      .execute();
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes)
      expect(code.expires_at.getTime()).toBeLessThanOrEqual(checkedAt + 60_000);
    expect(await tokenOutcome(exchange(web, flow, flow.codeVerifier))).toBe('ok');
  });

  /** Moves the moment a code was exchanged back in time: a replay long after the exchange. */
  async function redeemedSecondsAgo(code: string, seconds: number) {
    await store.db
      .updateTable('oauth_tokens')
      .set({ consumed_at: new Date(Date.now() - seconds * 1000) })
      .where('id_hash', '=', sha256(code))
      .execute();
  }

  async function exchanged(flow: Awaited<ReturnType<typeof obtainCode>>) {
    const response = await exchange(web, flow, flow.codeVerifier);
    return oauth.processAuthorizationCodeResponse(flow.as, { client_id: web.clientId }, response);
  }

  it("a code replayed after its exchange fails and revokes the grant's tokens", async () => {
    const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
    const tokens = await exchanged(flow);
    expect(await apiStatus(url, tokens.access_token)).toBe(200);
    await redeemedSecondsAgo(flow.callbackUrl.searchParams.get('code')!, 2);

    const before = await revocationReasons(store.db, workspaceId);
    expect(await tokenOutcome(exchange(web, flow, flow.codeVerifier))).toBe('invalid_grant');

    expect(await apiStatus(url, tokens.access_token)).toBe(401);
    expect(await introspect(url, web, tokens.access_token)).toEqual({ active: false });
    expect(await tokenOutcome(refreshRequest(url, web, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
    expect(await revocationReasons(store.db, workspaceId)).toEqual([...before, 'code_replay']);
    const activity = textOf(await (await user.request(`${url}/w/${workspaceSlug}`)).text());
    expect(activity).toContain('grant.revoked');
  });

  /** The first exchange's tokens no longer work anywhere: API, introspection, refresh. */
  async function expectRevoked(tokens: { access_token: string; refresh_token?: string }) {
    expect(await apiStatus(url, tokens.access_token)).toBe(401);
    expect(await introspect(url, web, tokens.access_token)).toEqual({ active: false });
    expect(await introspect(url, web, tokens.refresh_token!)).toEqual({ active: false });
    expect(await tokenOutcome(refreshRequest(url, web, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
  }

  it("a code used again right after its exchange fails and revokes the first exchange's tokens", async () => {
    const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
    const tokens = await exchanged(flow);
    expect(await apiStatus(url, tokens.access_token)).toBe(200);
    const before = await revocationReasons(store.db, workspaceId);

    expect(await tokenOutcome(exchange(web, flow, flow.codeVerifier))).toBe('invalid_grant');

    await expectRevoked(tokens);
    expect(await revocationReasons(store.db, workspaceId)).toEqual([...before, 'code_replay']);
  });

  it.each([2, 3])(
    'of %i concurrent exchanges of one code at most one gets tokens, and the grant is revoked',
    async (n) => {
      const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
      const before = await revocationReasons(store.db, workspaceId);
      const responses = await Promise.all(
        Array.from({ length: n }, () => exchange(web, flow, flow.codeVerifier)),
      );
      const winners = responses.filter((r) => r.status === 200);
      expect(winners).toHaveLength(1);
      const losers = await Promise.all(
        responses.filter((r) => r.status !== 200).map((r) => tokenOutcome(r)),
      );
      expect(losers).toEqual(Array.from({ length: n - 1 }, () => 'invalid_grant'));

      const won = await oauth.processAuthorizationCodeResponse(
        flow.as,
        { client_id: web.clientId },
        winners[0]!,
      );
      await expectRevoked(won);
      expect(await revocationReasons(store.db, workspaceId)).toEqual([...before, 'code_replay']);
    },
  );
});
