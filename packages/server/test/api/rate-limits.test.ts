// Rate limits on /v1: per credential (429 with Retry-After), and per address for requests whose
// credential is missing or wrong, so guessing is stopped before it costs a lookup each.
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
});
