// The shared second level on a real Redis Cluster (three masters of the test's own): one cache's
// version hash and entries share a hash slot, so its scripts run on one node, and the freshness
// check holds there as on a single Redis.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedResults } from '../src/index.ts';
import { entryKey, versionsKey } from '../src/cluster/shared-results.ts';
import { newCacheId } from './helpers/cache-config.ts';
import { freePort } from './helpers/shared-node.ts';

let dir: string;
const servers: ChildProcess[] = [];
let ports: number[] = [];
let cluster: Cluster;

async function waitForPing(port: number): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (ping.stdout.trim() === 'PONG') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`redis-server on ${port} did not start`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'eg-l2-cluster-'));
  ports = [await freePort(), await freePort(), await freePort()];
  for (const port of ports) {
    servers.push(
      spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore' },
      ),
    );
  }
  for (const port of ports) await waitForPing(port);
  const created = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  expect(created.status, created.stdout + created.stderr).toBe(0);
  cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      if ((await cluster.cluster('INFO')).includes('cluster_state:ok')) break;
    } catch {
      // Not yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 30_000);

afterAll(() => {
  cluster?.disconnect();
  for (const server of servers) server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('on a Redis Cluster', () => {
  it('stores, serves and invalidates by the versions, with a cache in one slot', async () => {
    const shared = new SharedResults(
      new Cluster(ports.map((port) => ({ host: '127.0.0.1', port }))),
    );
    await shared.ready();
    try {
      for (let n = 0; n < 5; n++) {
        const id = newCacheId();
        const slot = await cluster.cluster('KEYSLOT', versionsKey(id));
        expect(await cluster.cluster('KEYSLOT', entryKey(id, `key ${n}`))).toBe(slot);
        const first = await shared.lookup(id, 'mysql', `key ${n}`, ['db.t']);
        expect(first.kind).toBe('miss');
        const versions = first.kind === 'miss' ? first.versions : '';
        const entry = { response: Buffer.from(`rows ${n}`), statusOffsets: [], ttlMs: 5_000 };
        expect(await shared.store(id, 'mysql', `key ${n}`, ['db.t'], versions, entry)).toBe(true);
        const hit = await shared.lookup(id, 'mysql', `key ${n}`, ['db.t']);
        expect(hit.kind === 'hit' && hit.entry.response.toString()).toBe(`rows ${n}`);
        await cluster.hincrby(versionsKey(id), 'db.t', 1);
        expect((await shared.lookup(id, 'mysql', `key ${n}`, ['db.t'])).kind).toBe('miss');
      }
      expect(shared.counts.errors).toBe(0);
    } finally {
      shared.close();
    }
  });

  it('REDIS_URL naming one seed node is found to be a cluster, and works as one', async () => {
    const shared = await SharedResults.connect(`redis://127.0.0.1:${ports[1]}`);
    await shared.ready();
    try {
      // Enough caches that their slots fall on every node.
      const ids = Array.from({ length: 12 }, () => newCacheId());
      const nodes = new Set<string>();
      for (const id of ids) {
        const slot = Number(await cluster.cluster('KEYSLOT', versionsKey(id)));
        nodes.add(String(slot < 5461 ? 0 : slot < 10923 ? 1 : 2));
        const miss = await shared.lookup(id, 'postgres', 'q', ['t']);
        expect(miss.kind).toBe('miss');
        const versions = miss.kind === 'miss' ? miss.versions : '';
        const entry = { response: Buffer.from(id), statusOffsets: [], ttlMs: 5_000 };
        expect(await shared.store(id, 'postgres', 'q', ['t'], versions, entry)).toBe(true);
        const hit = await shared.lookup(id, 'postgres', 'q', ['t']);
        expect(hit.kind === 'hit' && hit.entry.response.toString()).toBe(id);
      }
      expect(nodes.size).toBeGreaterThan(1);
      expect(shared.counts.errors).toBe(0);
    } finally {
      shared.close();
    }
  });
});
