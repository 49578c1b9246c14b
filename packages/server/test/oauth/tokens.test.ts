// What the token endpoint hands out: access-token lifetime, who gets a refresh token, the
// grant's absolute lifetime, and that no bearer value is ever stored in plaintext.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { sha256 } from '../../src/services/crypto.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  apiStatus,
  approveDevice,
  callbackParams,
  discover,
  exchangeCode,
  insecure,
  obtainCode,
  obtainTokens,
  personalWorkspaceOf,
  pollDeviceCode,
  refreshRequest,
  registerPartner,
  signUpBrowser,
  startAuthorization,
  startDeviceAuthorization,
  tokenOutcome,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe('tokens', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspaceId: string;
  let web: RegisteredPartner;
  let offlineCli: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    const ownerId = await userIdOf(store.db, 'owner@partner.example');
    web = await registerPartner(store.db, ownerId, {
      redirectUris: ['https://partner.example/callback'],
    });
    offlineCli = await registerPartner(store.db, ownerId, {
      name: 'Partner CLI',
      clientType: 'public',
      scopes: ['caches:read', 'offline_access'],
      redirectUris: ['http://127.0.0.1/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspaceId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('issues access tokens for one hour by default', async () => {
    const tokens = await obtainTokens(url, user, web, { scope: 'caches:read', workspaceId });
    expect(tokens.expires_in).toBe(3600);
  });

  it('issues access tokens for the configured lifetime', async () => {
    const short = await startListeningApp(store, { accessTokenTtlSeconds: 120 });
    try {
      const browser = await signUpBrowser(short.url, 'grace@example.com');
      const personal = await personalWorkspaceOf(store.db, 'grace@example.com');
      const tokens = await obtainTokens(short.url, browser, web, {
        scope: 'caches:read',
        workspaceId: personal.id,
      });
      expect(tokens.expires_in).toBe(120);
      const row = await store.db
        .selectFrom('oauth_tokens')
        .select('expires_at')
        .where('id_hash', '=', sha256(tokens.access_token))
        .executeTakeFirstOrThrow();
      expect(row.expires_at.getTime()).toBeLessThanOrEqual(Date.now() + 120_000);
    } finally {
      await short.app.close();
    }
  });

  it('always gives a confidential client a refresh token', async () => {
    const tokens = await obtainTokens(url, user, web, { scope: 'caches:read', workspaceId });
    expect(tokens.refresh_token).toBeTruthy();
  });

  it('gives a public client a refresh token only when it asks for offline_access', async () => {
    const online = await obtainTokens(url, user, offlineCli, {
      scope: 'caches:read',
      workspaceId,
    });
    expect(online.refresh_token).toBeUndefined();

    const offline = await obtainTokens(url, user, offlineCli, {
      scope: 'caches:read offline_access',
      workspaceId,
    });
    expect(offline.refresh_token).toBeTruthy();
    expect(await tokenOutcome(refreshRequest(url, offlineCli, offline.refresh_token!))).toBe('ok');
  });

  it('stops refreshing once the grant reaches its absolute lifetime', async () => {
    const tokens = await obtainTokens(url, user, web, { scope: 'caches:read', workspaceId });
    const { grant_id: grantId } = await store.db
      .selectFrom('oauth_tokens')
      .select('grant_id')
      .where('id_hash', '=', sha256(tokens.refresh_token!))
      .executeTakeFirstOrThrow();
    const grant = await store.db
      .selectFrom('oauth_grants')
      .select('expires_at')
      .where('id', '=', grantId!)
      .executeTakeFirstOrThrow();
    expect(grant.expires_at.getTime()).toBeLessThanOrEqual(Date.now() + 90 * 86_400_000);

    const past = Math.floor(Date.now() / 1000) - 60;
    await store.db
      .updateTable('oauth_grants')
      .set({
        expires_at: new Date(past * 1000),
        payload: sql`jsonb_set(payload, '{exp}', to_jsonb(${past}::int))`,
      })
      .where('id', '=', grantId!)
      .execute();

    expect(await tokenOutcome(refreshRequest(url, web, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
    expect(await apiStatus(url, tokens.access_token)).toBe(401);
  });

  /** Rows of the OAuth tables that hold `secret` in plaintext, as a key or inside a payload. */
  async function plaintextCopies(secret: string): Promise<number> {
    const found = await sql<{ n: number }>`
      SELECT (SELECT count(*) FROM oauth_tokens
               WHERE id_hash = ${secret} OR position(${secret} in payload::text) > 0)
           + (SELECT count(*) FROM oauth_payloads
               WHERE id = ${secret} OR position(${secret} in payload::text) > 0)
           + (SELECT count(*) FROM oauth_grants WHERE position(${secret} in payload::text) > 0)
           AS n`.execute(store.db);
    return Number(found.rows[0]!.n);
  }

  it('stores codes, access and refresh tokens only as hashes', async () => {
    const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
    const code = flow.callbackUrl.searchParams.get('code')!;
    const tokens = await exchangeCode(url, web, flow);
    const next = await refreshRequest(url, web, tokens.refresh_token!);
    const rotated = (await next.json()) as { access_token: string; refresh_token: string };

    const secrets = [
      code,
      tokens.access_token,
      tokens.refresh_token!,
      rotated.access_token,
      rotated.refresh_token,
    ];
    const hashes = await store.db.selectFrom('oauth_tokens').select('id_hash').execute();
    for (const secret of secrets) {
      expect(hashes.map((h) => h.id_hash)).toContain(sha256(secret));
      expect(await plaintextCopies(secret)).toBe(0);
    }
  });

  it('stores device codes only as hashes, from issue through approval to redemption', async () => {
    const { as, device } = await startDeviceAuthorization(
      url,
      offlineCli,
      'caches:read offline_access',
    );
    const stored = () =>
      store.db
        .selectFrom('oauth_payloads')
        .select('consumed_at')
        .where('model', '=', 'DeviceCode')
        .where('id', '=', sha256(device.device_code))
        .executeTakeFirst();
    expect(await stored()).toBeDefined();
    expect(await plaintextCopies(device.device_code)).toBe(0);

    await approveDevice(url, user, device.verification_uri_complete!, workspaceId);
    expect(await plaintextCopies(device.device_code)).toBe(0);

    const tokens = await oauth.processDeviceCodeResponse(
      as,
      { client_id: offlineCli.clientId },
      await pollDeviceCode(url, offlineCli, device.device_code),
    );
    expect(tokens.workspace_id).toBe(workspaceId);
    expect((await stored())?.consumed_at).toBeInstanceOf(Date);
    for (const secret of [device.device_code, tokens.access_token, tokens.refresh_token!]) {
      expect(await plaintextCopies(secret)).toBe(0);
    }
    expect(await tokenOutcome(pollDeviceCode(url, offlineCli, device.device_code))).toBe(
      'invalid_grant',
    );
  });

  it('authenticates confidential clients with client_secret_basic only', async () => {
    const as = await discover(url);
    expect(as.token_endpoint_auth_methods_supported).toEqual(['client_secret_basic', 'none']);

    const exchange = async (auth: oauth.ClientAuth) => {
      const flow = await obtainCode(url, user, web, { scope: 'caches:read', workspaceId });
      return oauth.authorizationCodeGrantRequest(
        as,
        { client_id: web.clientId },
        auth,
        callbackParams(as, web, flow),
        web.redirectUri,
        flow.codeVerifier,
        insecure,
      );
    };
    expect(await tokenOutcome(exchange(oauth.ClientSecretPost(web.clientSecret!)))).toBe(
      'invalid_client',
    );
    expect(await tokenOutcome(exchange(oauth.ClientSecretBasic(web.clientSecret!)))).toBe('ok');
  });

  it('honours offline_access on the authorization endpoint however its path is spelled', async () => {
    const as = await discover(url);
    const tokens = await obtainTokens(url, user, offlineCli, {
      scope: 'caches:read offline_access',
      workspaceId,
      endpoint: `${as.authorization_endpoint}/`,
    });
    expect(tokens.refresh_token).toBeTruthy();
  });

  it('takes authorization requests by GET only', async () => {
    const started = await startAuthorization(url, user, offlineCli, {
      scope: 'caches:read offline_access',
    });
    const response = await user.request(`${url}/oauth2/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: started.url.searchParams.toString(),
    });
    expect(response.status).toBe(404);
    expect(response.headers.get('location')).toBeNull();
  });
});
