// Which cache a new session asked for, the same for both protocols: an unknown or deleted cache
// and a cache of the other protocol are refused in the same words on both ports; a known one gives
// the session its cache, its access to the store and its origin.
import type { OriginTarget } from '../upstream/origin.ts';
import type { CacheState, EdgeRuntime } from '../runtime.ts';
import { CacheAccess } from './cache-access.ts';

export type Route =
  | { ok: true; cache: CacheState; access: CacheAccess; target: OriginTarget }
  | { ok: false; message: string };

/**
 * `types`: the cache types this port serves. `notAnId` words the refusal of a value that is not a
 * cache id at all (clients send their own names by default: it says where the id goes).
 */
export async function routeTo(
  runtime: EdgeRuntime,
  cacheId: string,
  types: readonly string[],
  notAnId: (shown: string) => string,
): Promise<Route> {
  const { state, config } = await runtime.cache(cacheId);
  if (state === null || config === null) {
    const shown = cacheId.slice(0, 64);
    return {
      ok: false,
      message: cacheId.startsWith('cch_')
        ? `there is no cache "${shown}": it was deleted or never existed`
        : notAnId(shown),
    };
  }
  if (!types.includes(config.type)) {
    return {
      ok: false,
      message: `cache "${cacheId}" is a ${config.type} cache: connect to it on the edge's ${config.type} port`,
    };
  }
  return {
    ok: true,
    cache: state,
    access: new CacheAccess(runtime, state),
    target: { hostname: config.hostname, port: config.port, originTls: config.originTls },
  };
}
