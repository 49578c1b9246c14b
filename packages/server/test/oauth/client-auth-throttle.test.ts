// Failed client authentication at the token endpoint is counted per client id and per address:
// past the limit the failures get 429 with Retry-After, while a client whose secret verifies is
// never refused, whoever else is failing from its address or with its id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { FAILED_CLIENT_AUTH_PER_MINUTE } from '../../src/oauth/client-auth-throttle.ts';
import { buildTestApp } from '../helpers/app.ts';
import { openTestStore } from '../helpers/stores.ts';
import { accessTokenFor, consentedGrant, type PartnerGrant } from '../helpers/tokens.ts';

describe('client authentication throttle', () => {
  let store: Store;
  let app: FastifyInstance;
  let victim: PartnerGrant;
  let bystander: PartnerGrant;
  let other: PartnerGrant;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store);
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'client-throttle@example.com',
      password: 'long enough pw',
    });
    const grantOf = () =>
      consentedGrant(app, store.db, {
        userId: user.id,
        workspaceId: personalWorkspace.id,
        scopes: ['caches:read'],
      });
    victim = await grantOf();
    bystander = await grantOf();
    other = await grantOf();
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  /** A refresh with a made-up token: 400 invalid_grant once the client authenticates. */
  const tokenRequest = (authorization: string, remoteAddress: string) =>
    app.inject({
      method: 'POST',
      url: '/oauth2/token',
      remoteAddress,
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
      payload: 'grant_type=refresh_token&refresh_token=made-up',
    });

  it('answers 429 with Retry-After once one address keeps failing, and still serves good clients from it', async () => {
    const address = '198.51.100.20';
    for (let i = 0; i < FAILED_CLIENT_AUTH_PER_MINUTE; i++) {
      const guess = await tokenRequest(basic(victim.clientId, `wrong-${i}`), address);
      expect(guess.statusCode).toBe(401);
      expect(guess.json().error).toBe('invalid_client');
    }
    const stopped = await tokenRequest(basic(victim.clientId, 'wrong-again'), address);
    expect(stopped.statusCode).toBe(429);
    expect(Number(stopped.headers['retry-after'])).toBeGreaterThan(0);
    expect(stopped.json()).toMatchObject({ error: 'invalid_client' });
    // Unknown client ids from the same address are failures of that address too.
    expect((await tokenRequest(basic('no-such-client', 'x'), address)).statusCode).toBe(429);

    // The victim's own backend behind the same address authenticates and is served.
    const good = await tokenRequest(basic(victim.clientId, victim.clientSecret), address);
    expect(good.statusCode).toBe(400);
    expect(good.json().error).toBe('invalid_grant');
    const { code, verifier } = await victim.mintCode();
    const exchanged = await app.inject({
      method: 'POST',
      url: '/oauth2/token',
      remoteAddress: address,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic(victim.clientId, victim.clientSecret),
      },
      payload: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: victim.redirectUri,
        code_verifier: verifier,
      }).toString(),
    });
    expect(exchanged.statusCode).toBe(200);
    expect(exchanged.json().access_token).toBeTruthy();
  });

  it('counts failures per client id across addresses, without touching other clients', async () => {
    for (let i = 0; i < FAILED_CLIENT_AUTH_PER_MINUTE; i++) {
      const guess = await tokenRequest(basic(bystander.clientId, 'wrong'), `203.0.113.${i}`);
      expect(guess.statusCode).toBe(401);
    }
    const stopped = await tokenRequest(basic(bystander.clientId, 'wrong'), '203.0.113.200');
    expect(stopped.statusCode).toBe(429);
    expect(Number(stopped.headers['retry-after'])).toBeGreaterThan(0);
    // The right secret still works from anywhere; another client's failures start from zero.
    expect(
      (await tokenRequest(basic(bystander.clientId, bystander.clientSecret), '203.0.113.201'))
        .statusCode,
    ).toBe(400);
    expect((await accessTokenFor(app, bystander)).access_token).toBeTruthy();
    expect((await tokenRequest(basic(other.clientId, 'wrong'), '203.0.113.202')).statusCode).toBe(
      401,
    );
  });
});
