// `partner-cli caches create`: a cache in front of an origin database. No origin password is ever
// asked for: applications send their own credentials through the edge.
import type { CacheCreate } from '@edgegate/sdk';
import type { Io } from '../io.ts';
import { openSession } from '../session.ts';
import type { Settings } from '../settings.ts';
import { originOf } from './caches-list.ts';

export const CACHE_TYPES = [
  'postgres',
  'mysql',
  'mariadb',
  'mssql',
] as const satisfies readonly CacheCreate['type'][];

export async function createCache(
  settings: Settings,
  io: Io,
  input: CacheCreate,
  options: { json: boolean },
) {
  const client = await openSession(settings);
  const cache = await client.caches.create(input);
  if (options.json) {
    io.out(JSON.stringify(cache, null, 2));
    return;
  }
  io.out(`Created cache “${cache.name}” (${cache.id}) for ${cache.type} at ${originOf(cache)}.`);
  io.out(
    cache.type === 'postgres'
      ? `Connect through the edge with application_name=${cache.id} in the connection string.`
      : `Connect through the edge with the user name prefixed by ${cache.id}-.`,
  );
}
