// With REDIS_URL every node counts against the same limits: two control planes on one store
// and one Redis (the machine's, 127.0.0.1:6379) share a credential's API rate limit and the
// failed-authentication throttle; when Redis is down the throttles let requests through, and a
// control plane whose own Redis (a throwaway one) stops keeps answering at once.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { createRedisRateLimitStore } from '../src/services/rate-limit.ts';
import { FAILED_AUTH_PER_MINUTE } from '../src/plugins/credential-auth.ts';
import { FAILED_CLIENT_AUTH_PER_MINUTE } from '../src/oauth/client-auth-throttle.ts';
import { freePort } from './helpers/listening-app.ts';
import { createTestDatabase, openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('limits shared through Redis', () => {
  let store: Store;
  let redis: Redis;
  let nodes: FastifyInstance[];
  let token: string;
  let newGrant: () => ReturnType<typeof consentedGrant>;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // Each run counts under its own prefix, so a re-run within the minute starts from zero.
    const counters = createRedisRateLimitStore(redis, {
      prefix: `edgegate-test:${randomBytes(4).toString('hex')}:`,
    });
    nodes = await Promise.all(
      [1, 2].map(() =>
        buildTestApp(store, { apiRateLimit: 6, shared: { rateLimitStore: counters } }),
      ),
    );
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'shared@example.com',
      password: 'long enough pw',
    });
    newGrant = () =>
      consentedGrant(nodes[0]!, store.db, {
        userId: user.id,
        workspaceId: personalWorkspace.id,
        scopes: ['caches:read'],
      });
    token = `Bearer ${(await accessTokenFor(nodes[0]!, await newGrant())).access_token}`;
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
      headers: { authorization: 'Bearer wrong-again' },
    });
    expect(stopped.statusCode).toBe(429);
    expect(stopped.json().type).toContain('rate_limited');
    // A credential that verifies is served from the same address on either node.
    const fresh = `Bearer ${(await accessTokenFor(nodes[0]!, await newGrant())).access_token}`;
    for (const node of nodes) {
      const served = await node.inject({
        url: '/v1/caches',
        remoteAddress: address,
        headers: { authorization: fresh },
      });
      expect(served.statusCode).toBe(200);
    }
  });

  it('counts failed client authentication at the token endpoint on every node', async () => {
    const address = `10.8.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    const attempt = (node: FastifyInstance) =>
      node.inject({
        method: 'POST',
        url: '/oauth2/token',
        remoteAddress: address,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('no-such-client:wrong').toString('base64')}`,
        },
        payload: 'grant_type=refresh_token&refresh_token=made-up',
      });
    for (let i = 0; i < FAILED_CLIENT_AUTH_PER_MINUTE; i++)
      expect((await attempt(nodes[i % 2]!)).statusCode).toBe(401);
    const stopped = await attempt(nodes[0]!);
    expect(stopped.statusCode).toBe(429);
    expect(Number(stopped.headers['retry-after'])).toBeGreaterThan(0);
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

describe('a control plane whose Redis goes away', () => {
  let redisServer: ChildProcess;
  let redisPort: number;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: RunningServer;
  const warnings: string[] = [];

  beforeAll(async () => {
    // A throwaway Redis of our own: this test stops it, the machine's stays up.
    redisPort = await freePort();
    redisServer = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const probe = new Redis(redisPort, '127.0.0.1', {
      lazyConnect: true,
      retryStrategy: () => null,
    });
    probe.on('error', () => {});
    for (let attempt = 0; ; attempt++) {
      try {
        await probe.connect();
        break;
      } catch (error) {
        if (attempt === 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    probe.disconnect();
    database = await createTestDatabase();
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    server = await startServer(
      loadConfig({
        DATABASE_URL: database.url,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-redis-down-')),
        PORT: '0',
        EDGEGATE_SECRET: 'a'.repeat(48),
        LOG_LEVEL: 'warn',
      }),
      { logger, planes: 'server' },
    );
  });
  afterAll(async () => {
    await server?.close();
    redisServer?.kill('SIGKILL');
    await database?.drop();
  });

  it('serves requests within a bound after its Redis stops, valid credentials and invalid ones', async () => {
    const app = server.app!;
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email: 'redis-down@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    const authorization = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
    const list = () => app.inject({ url: '/v1/caches', headers: { authorization } });
    expect((await list()).statusCode).toBe(200);
    // The limits really live in this Redis: it holds the counter of that request.
    const look = new Redis(redisPort, '127.0.0.1');
    expect(await look.keys('edgegate:rl:api *')).not.toEqual([]);
    look.disconnect();
    expect(warnings.filter((line) => line.includes('Redis'))).toEqual([]);

    const exited = new Promise((resolve) => redisServer.once('exit', resolve));
    redisServer.kill('SIGKILL');
    await exited;
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const ok = await list();
      expect(ok.statusCode, ok.body).toBe(200);
      const refused = await app.inject({
        url: '/v1/caches',
        headers: { authorization: 'Bearer not-a-token' },
      });
      expect(refused.statusCode, refused.body).toBe(401);
      // Measured here: a few ms a round; waiting on reconnect attempts took ~20 s a request.
      expect(Date.now() - started).toBeLessThan(2_000);
    }
    expect(warnings.some((line) => line.includes('a throttle let a request through'))).toBe(true);
  });
});

describe('a control plane whose Redis stops answering (paused with SIGSTOP)', () => {
  let redisServer: ChildProcess;
  let redisPort: number;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: RunningServer;
  const logs: string[] = [];

  beforeAll(async () => {
    redisPort = await freePort();
    redisServer = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    await waitForRedis(redisPort);
    database = await createTestDatabase();
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    server = await startServer(
      loadConfig({
        DATABASE_URL: database.url,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-redis-paused-')),
        PORT: '0',
        EDGEGATE_SECRET: 'a'.repeat(48),
      }),
      { logger, planes: 'server' },
    );
  });
  afterAll(async () => {
    redisServer?.kill('SIGCONT');
    await server?.close();
    redisServer?.kill('SIGKILL');
    await database?.drop();
  });

  it('answers API requests in well under a second, says not ready, and recovers when Redis does', async () => {
    const app = server.app!;
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email: 'redis-paused@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    const authorization = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
    const list = () => fetch(`${server.url}/v1/caches`, { headers: { authorization } });
    expect((await list()).status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { redis: 'ok' } });

    // The process is still there and its socket open: only answers stop coming.
    redisServer.kill('SIGSTOP');
    const timings: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = Date.now();
      const ok = await list();
      expect(ok.status, await ok.text()).toBe(200);
      const refused = await fetch(`${server.url}/v1/caches`, {
        headers: { authorization: 'Bearer not-a-token' },
      });
      expect(refused.status).toBe(401);
      timings.push(Date.now() - started);
    }
    // The first round may wait out one command timeout (500 ms); after it the breaker is open and a
    // round takes milliseconds (without it, each of its two requests would wait 500 ms again).
    expect(Math.max(...timings)).toBeLessThan(1_000);
    expect(Math.max(...timings.slice(1))).toBeLessThan(400);
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.headers.get('content-type')).toContain('application/problem+json');
    expect((await notReady.json()).checks.redis).toMatch(/Redis does not answer/);
    expect(logs.some((line) => line.includes('Redis is unavailable'))).toBe(true);

    redisServer.kill('SIGCONT');
    for (let attempt = 0; ; attempt++) {
      const again = await fetch(`${server.url}/readyz`);
      if (again.status === 200) break;
      if (attempt === 50) throw new Error(`still not ready: ${await again.text()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(logs.some((line) => line.includes('Redis answers again'))).toBe(true);
    // Counting is shared again: a request now leaves its counter in Redis.
    const look = new Redis(redisPort, '127.0.0.1');
    const keys = await look.keys('edgegate:rl:api *');
    if (keys.length > 0) await look.del(...keys);
    expect((await list()).status).toBe(200);
    expect(await look.keys('edgegate:rl:api *')).not.toEqual([]);
    look.disconnect();
  }, 60_000);
});

async function waitForRedis(port: number): Promise<void> {
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => {});
  for (let attempt = 0; ; attempt++) {
    try {
      await probe.connect();
      break;
    } catch (error) {
      if (attempt === 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  probe.disconnect();
}
