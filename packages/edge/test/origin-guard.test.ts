// The edge checks the origin's address at every connect, whether the cache names it by an IP literal
// or by a host name (DNS may have changed since the API checked it).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeCacheConfig } from '../src/index.ts';
import { cacheConfig, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';
import { originAddressGuard } from '../src/upstream/address-ranges.ts';

const cache = (hostname: string) => cacheConfig(newCacheId(), { hostname });

// As ORIGIN_PRIVATE=deny would: loopback is refused.
const notLoopback = (address: string) => address !== '127.0.0.1' && address !== '::1';
const literal = cache('127.0.0.1');
const bracketed = cache('[::1]');
const named = cache('localhost');
let edge: RunningEdge;

beforeAll(async () => {
  edge = await startEdge({
    source: new StaticConfigSource([literal, bracketed, named]),
    guard: notLoopback,
  });
});

afterAll(async () => {
  await edge?.close();
});

async function connect(config: EdgeCacheConfig): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: edge.port,
    user: 'postgres',
    database: 'test',
    application_name: config.id,
  });
  await client.connect();
  await client.end();
  return client;
}

describe('the origin address guard at the edge', () => {
  it('refuses an origin given as an IP literal the guard rejects', async () => {
    await expect(connect(literal)).rejects.toMatchObject({
      code: '08001',
      message: 'the origin 127.0.0.1 is a private or reserved address',
    });
    await expect(connect(bracketed)).rejects.toMatchObject({
      code: '08001',
      message: 'the origin [::1] is a private or reserved address',
    });
  });

  it('refuses an origin whose name resolves only to rejected addresses', async () => {
    await expect(connect(named)).rejects.toMatchObject({
      code: '08001',
      message: 'the origin localhost resolves only to private or reserved addresses',
    });
  });
});

describe('the shared classification at the edge (ORIGIN_PRIVATE)', () => {
  const documentation = cache('192.0.2.2');
  const translated = cache('[::ffff:0:7f00:1]');
  const loopback = cache('127.0.0.1');
  const caches = [documentation, translated, named, loopback];
  let deny: RunningEdge;
  let allow: RunningEdge;

  beforeAll(async () => {
    deny = await startEdge({
      source: new StaticConfigSource(caches),
      guard: originAddressGuard('deny'),
    });
    allow = await startEdge({
      source: new StaticConfigSource(caches),
      guard: originAddressGuard('allow'),
    });
  });
  afterAll(async () => {
    await deny?.close();
    await allow?.close();
  });

  const connectTo = async (edgePort: number, config: EdgeCacheConfig) => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: edgePort,
      user: 'postgres',
      database: 'test',
      application_name: config.id,
      connectionTimeoutMillis: 5_000,
    });
    await client.connect();
    await client.end();
  };

  it('refuses documentation, IPv4-translated and loopback origins under deny, before connecting', async () => {
    for (const config of [documentation, translated, loopback]) {
      const started = performance.now();
      await expect(connectTo(deny.port, config), config.hostname).rejects.toMatchObject({
        code: '08001',
        message: `the origin ${config.hostname} is a private or reserved address`,
      });
      // A refusal, not a connection attempt to an unroutable address that timed out.
      expect(performance.now() - started).toBeLessThan(2_000);
    }
    await expect(connectTo(deny.port, named)).rejects.toMatchObject({ code: '08001' });
  });

  it('connects to a loopback origin under allow', async () => {
    await expect(connectTo(allow.port, loopback)).resolves.toBeUndefined();
    await expect(connectTo(allow.port, named)).resolves.toBeUndefined();
  });
});
