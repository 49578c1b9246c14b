// A cache config for tests: the machine's Postgres as origin, cached (auto, 60 s), no TLS to the
// origin and no rules, with whatever a test changes on top.
import { randomBytes } from 'node:crypto';
import type { EdgeCacheConfig } from '../../src/index.ts';

export const LOCAL_POSTGRES = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random id in the form the control plane gives caches (cch_ and 22 letters or digits). */
export function newCacheId(): string {
  return `cch_${[...randomBytes(22)].map((byte) => ALPHANUMERIC[byte % 62]).join('')}`;
}

export function cacheConfig(id: string, changes: Partial<EdgeCacheConfig> = {}): EdgeCacheConfig {
  return {
    id,
    type: 'postgres',
    hostname: LOCAL_POSTGRES.host,
    port: LOCAL_POSTGRES.port,
    defaultMode: 'auto',
    defaultTtlSeconds: 60,
    originTls: 'disable',
    rules: [],
    ...changes,
  };
}
