// `edgegate edge` answers /readyz for a load balancer or Kubernetes: ready while its listener is
// up, the store answers, the store's change feed (LISTEN) is connected and, with REDIS_URL, Redis
// answers; 503 naming the failing check otherwise, and ready again once the part is back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_DATABASE_URL, createTestDatabase } from '../../server/test/helpers/stores.ts';
import { spawnEdgegate, stopEdgegate, type Edgegate } from './helpers/spawn-edgegate.ts';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits until something accepts connections on the port (at most 5 s). */
async function listening(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    }).catch(() => false);
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function readiness(
  base: string,
): Promise<{ status: number; checks: Record<string, string> }> {
  const response = await fetch(`${base}/readyz`);
  return { status: response.status, checks: (await response.json()).checks };
}

/** Polls /readyz until `accept` holds (every 50 ms, for at most `ms`). */
async function until(
  base: string,
  accept: (answer: Awaited<ReturnType<typeof readiness>>) => boolean,
  ms = 10_000,
) {
  const deadline = Date.now() + ms;
  let last = await readiness(base);
  while (!accept(last)) {
    if (Date.now() > deadline) throw new Error(`readiness stayed ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    last = await readiness(base);
  }
  return last;
}

describe('edge readiness', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: ChildProcess;
  let edge: Edgegate;
  let base: string;

  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
    const redisPort = await freePort();
    redis = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', ''],
      {
        stdio: 'ignore',
      },
    );
    await listening(redisPort);
    edge = spawnEdgegate([
      'edge',
      '--database-url',
      database.url,
      '--data-dir',
      mkdtempSync(join(tmpdir(), 'eg-edge-ready-')),
      '--port',
      '0',
      '--edge-pg-port',
      '0',
      '--edge-mysql-port',
      '0',
      '--redis-url',
      `redis://127.0.0.1:${redisPort}`,
    ]);
    base = await edge.url;
  });
  afterAll(async () => {
    redis?.kill('SIGCONT');
    await stopEdgegate(edge);
    redis?.kill('SIGKILL');
    await database?.drop();
  });

  const scrape = async () => (await fetch(`${base}/metrics`)).text();

  it('is ready with every check passing, and says so in its metrics', async () => {
    // The node serves from its cache once in touch with the others through Redis (a heartbeat).
    await until(base, (answer) => answer.status === 200, 5000);
    expect(await readiness(base)).toEqual({
      status: 200,
      checks: { store: 'ok', changeFeed: 'ok', cluster: 'ok', redis: 'ok' },
    });
    const metrics = await scrape();
    expect(metrics).toContain('edgegate_store_change_feed_up 1');
    expect(metrics).toContain('edgegate_redis_up 1');
    expect(metrics).toContain('edgegate_edge_cluster_serving{reason=""} 1');
    expect(metrics).toContain('edgegate_edge_client_connections 0');
  });

  it('is not ready while its Redis does not answer, and ready again after', async () => {
    redis.kill('SIGSTOP');
    // Both say so: the shared tier's ping, and the cluster bus once its serving lease ran out.
    const down = await until(
      base,
      (answer) => answer.status === 503 && answer.checks.cluster !== 'ok',
    );
    expect(down.checks.redis).toMatch(/Redis does not answer/);
    expect(down.checks.cluster).toMatch(/not serving from the cache/);
    expect(down.checks.store).toBe('ok');
    expect(await scrape()).toContain('edgegate_redis_up 0');
    redis.kill('SIGCONT');
    await until(base, (answer) => answer.status === 200);
    expect(await scrape()).toContain('edgegate_redis_up 1');
  }, 30_000);

  it('is not ready while its change feed reconnects, and ready again after', async () => {
    const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
         WHERE datname = $1 AND query LIKE 'LISTEN%'`,
        [new URL(database.url).pathname.slice(1)],
      );
      expect(rows.length).toBe(1);
    } finally {
      await admin.end();
    }
    // The feed is reopened a second later: readiness says so in between.
    const down = await until(base, (answer) => answer.status === 503, 1_500);
    expect(down.checks.changeFeed).toMatch(/reconnecting/);
    await until(base, (answer) => answer.status === 200);
    expect(await scrape()).toContain('edgegate_store_change_feed_up 1');
  }, 30_000);
});

describe('an edge started while its Redis is down', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: ChildProcess | undefined;
  let edge: Edgegate;

  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  afterAll(async () => {
    await stopEdgegate(edge);
    redis?.kill('SIGKILL');
    await database?.drop();
  });

  it('starts, says it is not ready, and is ready once Redis answers', async () => {
    const redisPort = await freePort();
    edge = spawnEdgegate([
      'edge',
      '--database-url',
      database.url,
      '--data-dir',
      mkdtempSync(join(tmpdir(), 'eg-edge-no-redis-')),
      '--port',
      '0',
      '--edge-pg-port',
      '0',
      '--edge-mysql-port',
      '0',
      '--redis-url',
      `redis://127.0.0.1:${redisPort}`,
    ]);
    const base = await edge.url;
    const down = await readiness(base);
    expect(down.status).toBe(503);
    expect(down.checks).toMatchObject({ store: 'ok', changeFeed: 'ok' });
    expect(down.checks.redis).toMatch(/Redis does not answer/);
    expect(down.checks.cluster).toMatch(/not serving from the cache .*Redis is unreachable/);

    redis = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', ''],
      { stdio: 'ignore' },
    );
    await until(base, (answer) => answer.status === 200, 20_000);
  }, 40_000);
});
