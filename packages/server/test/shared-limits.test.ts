// With REDIS_URL every node counts against the same limits: two control planes on one store
// and one Redis (the machine's, 127.0.0.1:6379) share a credential's API rate limit and the
// failed-authentication throttle; when Redis is down the throttles let requests through.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { createRedisRateLimitStore } from '../src/services/rate-limit.ts';
import { FAILED_AUTH_PER_MINUTE } from '../src/plugins/credential-auth.ts';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('limits shared through Redis', () => {
  let store: Store;
  let redis: Redis;
  let nodes: FastifyInstance[];
  let token: string;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // Each run counts under its own prefix, so a re-run within the minute starts from zero.
    const counters = createRedisRateLimitStore(redis, {
      prefix: `edgegate-test:${randomBytes(4).toString('hex')}:`,
    });
    nodes = await Promise.all(
      [1, 2].map(() =>
        buildTestApp(store, { apiRateLimit: 6, shared: { redis, rateLimitStore: counters } }),
      ),
    );
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'shared@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(nodes[0]!, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    token = `Bearer ${(await accessTokenFor(nodes[0]!, grant)).access_token}`;
  });
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((node) => node.close()));
    redis?.disconnect();
    await store?.close();
  });

  it('counts a credential once across nodes', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const node = nodes[i % 2]!;
      const response = await node.inject({
        url: '/v1/caches',
        headers: { authorization: token },
      });
      statuses.push(response.statusCode);
    }
    // Six in a minute for the credential, wherever they land; alone, each node would allow six.
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
  });

  it('stops an address that keeps failing authentication on every node', async () => {
    const address = `10.9.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    for (let i = 0; i < FAILED_AUTH_PER_MINUTE; i++) {
      const response = await nodes[i % 2]!.inject({
        url: '/v1/caches',
        remoteAddress: address,
        headers: { authorization: 'Bearer wrong' },
      });
      expect(response.statusCode).toBe(401);
    }
    const stopped = await nodes[1]!.inject({
      url: '/v1/caches',
      remoteAddress: address,
      headers: { authorization: token },
    });
    expect(stopped.statusCode).toBe(429);
    expect(stopped.json().type).toContain('rate_limited');
  });

  it('fails open when Redis does not answer', async () => {
    const down = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    down.on('error', () => {});
    const errors: unknown[] = [];
    const counters = createRedisRateLimitStore(down, { onError: (e) => errors.push(e) });
    expect((await counters.hit('k', 60_000)).count).toBe(0);
    expect(await counters.peek('k')).toBeUndefined();
    expect(errors.length).toBe(2);
    down.disconnect();
  });
});
