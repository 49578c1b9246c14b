// Rate limits on /v1: per credential (429 with Retry-After), and per address for requests whose
// credential is missing or wrong; a credential that verifies is never refused by the latter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { FAILED_AUTH_PER_MINUTE } from '../../src/plugins/credential-auth.ts';
import { signUp } from '../../src/services/accounts.ts';
import { buildTestApp } from '../helpers/app.ts';
import { openTestStore } from '../helpers/stores.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

describe('/v1 rate limits', () => {
  let store: Store;
  let app: FastifyInstance;
  let token: string;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store, { apiRateLimit: 5 });
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'limits@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    token = (await accessTokenFor(app, grant)).access_token;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  const get = (authorization: string | undefined, remoteAddress = '192.0.2.1') =>
    app.inject({
      method: 'GET',
      url: '/v1/workspace',
      remoteAddress,
      headers: authorization ? { authorization } : {},
    });

  it('answers 429 problem+json with Retry-After once a credential spends its minute', async () => {
    for (let i = 0; i < 5; i++) expect((await get(`Bearer ${token}`)).statusCode).toBe(200);
    const limited = await get(`Bearer ${token}`);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toContain('application/problem+json');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.json()).toMatchObject({ status: 429 });
  });

  it('advertises the quota on every answer with the IETF RateLimit fields, 429 included', async () => {
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'limits-headers@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    const bearer = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      // A refused request (400, an invalid query) counts and is answered with the fields too.
      const response =
        i === 2
          ? await app.inject({
              method: 'GET',
              url: '/v1/caches?limit=0',
              headers: { authorization: bearer },
            })
          : await get(bearer);
      expect(response.statusCode).toBe(i === 2 ? 400 : 200);
      expect(response.headers['ratelimit-policy']).toBe('"credential";q=5;w=60');
      const match = /^"credential";r=(\d+);t=(\d+)$/.exec(String(response.headers.ratelimit));
      expect(match, String(response.headers.ratelimit)).not.toBeNull();
      remaining.push(Number(match![1]));
      expect(Number(match![2])).toBeGreaterThan(0);
      expect(Number(match![2])).toBeLessThanOrEqual(60);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const limited = await get(bearer);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['ratelimit-policy']).toBe('"credential";q=5;w=60');
    const reset = /^"credential";r=0;t=(\d+)$/.exec(String(limited.headers.ratelimit));
    expect(reset, String(limited.headers.ratelimit)).not.toBeNull();
    expect(limited.headers['retry-after']).toBe(reset![1]);
  });

  it('stops an address that keeps sending bad credentials, and no one else', async () => {
    for (let i = 0; i < FAILED_AUTH_PER_MINUTE; i++) {
      const guess = await get(`Bearer egk_wrong${i}`, '198.51.100.7');
      expect(guess.statusCode).toBe(401);
    }
    const stopped = await get(`Bearer egk_wrong-again`, '198.51.100.7');
    expect(stopped.statusCode).toBe(429);
    expect(Number(stopped.headers['retry-after'])).toBeGreaterThan(0);
    // Missing credentials count too, and another address is not affected.
    expect((await get(undefined, '198.51.100.7')).statusCode).toBe(429);
    expect((await get(undefined, '198.51.100.8')).statusCode).toBe(401);
  });

  it('never refuses a valid credential from a throttled address, only the failures', async () => {
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'behind-proxy@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    const valid = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
    const proxy = '198.51.100.30';
    let throttled = 0;
    for (let i = 0; i < FAILED_AUTH_PER_MINUTE + 20; i++) {
      const status = (await get(`Bearer egk_flood${i}`, proxy)).statusCode;
      if (status === 429) throttled++;
      else expect(status).toBe(401);
    }
    expect(throttled).toBe(20);
    const partner = await get(valid, proxy);
    expect(partner.statusCode).toBe(200);
    expect(partner.json().data.id).toBe(personalWorkspace.id);
    const guess = await get('Bearer egk_one-more-guess', proxy);
    expect(guess.statusCode).toBe(429);
    expect(Number(guess.headers['retry-after'])).toBeGreaterThan(0);
    expect((await get(undefined, proxy)).statusCode).toBe(429);
  });
});
