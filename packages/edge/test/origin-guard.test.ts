// The edge checks the origin's address at every connect, whether the cache names it by an IP literal
// or by a host name (DNS may have changed since the API checked it).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeCacheConfig } from '../src/index.ts';
import { cacheConfig, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

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
