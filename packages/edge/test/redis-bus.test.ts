// The cluster bus against real Redis servers of the test's own: versions and messages, a node that
// loses Redis (restarted, paused, never there) stops serving at once and comes back by itself
// having dropped what it held, and the same against a three-master Redis Cluster.
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CacheEpochs, EpochTable } from '../src/cache/epochs.ts';
import { ResultCache } from '../src/cache/result-cache.ts';
import { RedisBus, versionsKey } from '../src/cluster/redis-bus.ts';
import { cancelKeyName, RedisCancelDirectory } from '../src/cluster/redis-cancel-directory.ts';
import type { EdgeLogger } from '../src/runtime.ts';
import { freePort, startRedisCluster, ThrowawayRedis } from './helpers/throwaway-redis.ts';

const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

const buses: RedisBus[] = [];
function bus(url: string): RedisBus {
  const created = new RedisBus({ url, epochs: new EpochTable(), logger: silent });
  buses.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(buses.splice(0).map((each) => each.close()));
});

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeoutMs)
      throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now() - started;
}

/** An entry of `cacheId` reading `table`, stored in a result store over `epochs`. */
function storeEntry(epochs: EpochTable, cacheId: string, table: string): ResultCache {
  const results = new ResultCache({ maxBytes: 1 << 20, epochs });
  const entry = results.set({
    key: `${cacheId}:${table}`,
    epochs: new CacheEpochs(epochs, cacheId),
    tables: [table],
    response: Buffer.from('answer'),
    fingerprint: 'f',
    transactionPolicy: 'never',
    ttlMs: 60_000,
    askedEpoch: epochs.current,
  });
  expect(entry).not.toBeNull();
  return results;
}

describe('RedisBus on one Redis', () => {
  let redis: ThrowawayRedis;
  afterAll(async () => {
    await redis?.stop();
  });

  it('a publish bumps the versions in one hash per cache and every other node drops those tables', async () => {
    redis = await ThrowawayRedis.start();
    const a = bus(redis.url);
    const b = bus(redis.url);
    await until(() => a.serving && b.serving, 3000, 'both nodes serve');
    const onB = storeEntry(b.epochs, 'cch_one', 'orders');
    const other = storeEntry(b.epochs, 'cch_one', 'customers');
    const onA = storeEntry(a.epochs, 'cch_one', 'orders');

    // The delay itself is measured end to end (packages/cli/test/cluster.test.ts); the waits here
    // only allow for a loaded machine.
    await a.publish('cch_one', ['orders', 'orders']);
    await a.publish('cch_one', ['orders', 'lines']);
    const direct = new Redis(redis.port, '127.0.0.1');
    expect(await direct.hgetall(versionsKey('cch_one'))).toEqual({ orders: '2', lines: '1' });
    await until(() => onB.get('cch_one:orders') === undefined, 500, 'B drops orders');
    expect(other.get('cch_one:customers')).toBeDefined();
    // A stamped its own epochs when the write committed (the session does): its message is not
    // applied twice.
    expect(onA.get('cch_one:orders')).toBeDefined();

    await a.publish('cch_one', 'all');
    expect(await direct.hget(versionsKey('cch_one'), '*')).toBe('1');
    await until(() => other.get('cch_one:customers') === undefined, 500, 'B drops every table');
    direct.disconnect();
  });

  it('a restarted Redis stops every node at once; each comes back by itself having dropped what it held', async () => {
    const a = bus(redis.url);
    const b = bus(redis.url);
    await until(() => a.serving && b.serving, 3000, 'both nodes serve');
    const held = storeEntry(b.epochs, 'cch_restart', 'orders');
    await redis.kill();
    await until(() => !a.serving && !b.serving, 500, 'both stop serving');
    expect(b.reason).toMatch(/Redis/);
    await redis.restart();
    await until(() => a.serving && b.serving, 5000, 'both serve again');
    expect(b.reason).toBeNull();
    expect(held.get('cch_restart:orders')).toBeUndefined();
    // And they hear each other again.
    const again = storeEntry(b.epochs, 'cch_restart', 'orders');
    await a.publish('cch_restart', ['orders']);
    await until(() => again.get('cch_restart:orders') === undefined, 500, 'B drops orders');
  });

  it('a paused Redis stops every node within the lease; the writer answers within its bound; all resume after', async () => {
    const a = bus(redis.url);
    const b = bus(redis.url);
    await until(() => a.serving && b.serving, 3000, 'both nodes serve');
    const held = storeEntry(b.epochs, 'cch_paused', 'orders');
    redis.pause();
    try {
      const paused = performance.now();
      const published = a.publish('cch_paused', ['orders']).then(
        () => 'published',
        () => 'failed',
      );
      // The lease (500 ms) and a heartbeat (100 ms), with room for a loaded machine.
      await until(() => !b.serving, 1000, 'B stops serving');
      expect(b.reason).toMatch(/heartbeat|answer/);
      expect(await published).toBe('failed');
      const answeredAfter = performance.now() - paused;
      // The publish timeout (1 s) and at most one lease more.
      expect(answeredAfter).toBeGreaterThan(900);
      expect(answeredAfter).toBeLessThan(2000);
      expect(a.serving).toBe(false);
    } finally {
      redis.resume();
    }
    await until(() => a.serving && b.serving, 5000, 'both serve again');
    expect(held.get('cch_paused:orders')).toBeUndefined();
    // The write Redis did not take in time is in its versions now (replayed, or run late).
    const direct = new Redis(redis.port, '127.0.0.1');
    expect(Number(await direct.hget(versionsKey('cch_paused'), 'orders'))).toBeGreaterThanOrEqual(
      1,
    );
    direct.disconnect();
  });

  it('a node whose Redis is not there at start relays, then serves once Redis answers', async () => {
    const port = await freePort();
    const late = bus(`redis://127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(late.serving).toBe(false);
    expect(late.reason).toMatch(/unreachable|ECONNREFUSED/);
    await expect(late.publish('cch_late', ['t'])).rejects.toThrow();
    const server = await ThrowawayRedis.startOn(port);
    try {
      await until(() => late.serving, 5000, 'the node serves');
      const direct = new Redis(port, '127.0.0.1');
      // The write it could not publish was bumped before it served.
      expect(await direct.hget(versionsKey('cch_late'), 't')).toBe('1');
      direct.disconnect();
    } finally {
      await server.stop();
    }
  });
});

describe('RedisCancelDirectory', () => {
  it('a key remembered on one node is found on another, forgotten only by its holder, and written again after Redis lost it', async () => {
    const redis = await ThrowawayRedis.start();
    const a = bus(redis.url);
    const b = bus(redis.url);
    const onA = new RedisCancelDirectory(() => a.redis, silent);
    const onB = new RedisCancelDirectory(() => b.redis, silent);
    a.onSynced(() => onA.renew());
    try {
      await until(() => a.serving && b.serving, 3000, 'both nodes serve');
      const target = { hostname: '127.0.0.1', port: 5432, originTls: 'disable' as const };
      onA.remember('0000002a0000beef', target);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await onB.lookup('0000002a0000beef')).toEqual(target);
      expect(await onB.lookup('00000000ffffffff')).toBeUndefined();
      const direct = new Redis(redis.port, '127.0.0.1');
      const ttl = await direct.ttl(cancelKeyName('0000002a0000beef'));
      expect(ttl).toBeGreaterThan(3500);

      // Two nodes gave out the same MySQL id: the earlier session's end leaves the later one's key.
      const mysqlA = { ...target, port: 3306, cacheId: 'cch_a', connectionId: 7 };
      const mysqlB = { ...target, port: 3306, cacheId: 'cch_a', connectionId: 9 };
      onA.remember('mysql:1073741900', mysqlA);
      await new Promise((resolve) => setTimeout(resolve, 20));
      onB.remember('mysql:1073741900', mysqlB);
      await new Promise((resolve) => setTimeout(resolve, 20));
      onA.forget('mysql:1073741900');
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await onA.lookup('mysql:1073741900')).toEqual(mysqlB);
      onB.forget('mysql:1073741900');
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await onA.lookup('mysql:1073741900')).toBeUndefined();

      // A restarted Redis lost the keys: the node writes its own again once back in touch.
      await redis.restart();
      await until(() => a.serving, 5000, 'A serves again');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await onB.lookup('0000002a0000beef')).toEqual(target);
      direct.disconnect();
    } finally {
      onA.close();
      onB.close();
      await Promise.all(buses.splice(0).map((each) => each.close()));
      await redis.stop();
    }
  });
});

describe('RedisBus on a Redis Cluster', () => {
  it('finds the cluster, keeps each cache in one slot, and every node hears every master', async () => {
    const cluster = await startRedisCluster();
    try {
      const url = `redis://127.0.0.1:${cluster.nodes[0]!.port}`;
      const a = bus(url);
      const b = bus(url);
      await until(() => a.serving && b.serving, 5000, 'both nodes serve');
      expect(a.cluster).toBe(true);
      const client = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }]);
      // Caches whose hashes land on different masters.
      const caches = Array.from({ length: 12 }, (_, i) => `cch_cluster_${i}`);
      const owners = new Set<string>();
      for (const id of caches) {
        const slot = Number(await client.cluster('KEYSLOT', versionsKey(id)));
        owners.add(slot < 5461 ? 'first' : slot < 10923 ? 'second' : 'third');
      }
      expect(owners.size).toBe(3);
      for (const id of caches) {
        const held = storeEntry(b.epochs, id, 'orders');
        await a.publish(id, ['orders', 'lines']);
        await until(() => held.get(`${id}:orders`) === undefined, 500, `B drops ${id}`);
        expect(await client.hgetall(versionsKey(id))).toEqual({ orders: '1', lines: '1' });
      }
      client.disconnect();
    } finally {
      await Promise.all(buses.splice(0).map((each) => each.close()));
      await cluster.stop();
    }
  });
});
