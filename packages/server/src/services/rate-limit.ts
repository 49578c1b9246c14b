// Fixed-window counters for throttling (log-in attempts now, API credentials later).
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';

export interface WindowCount {
  count: number;
  resetAt: number;
}

export interface RateLimitStore {
  /** Adds one to the key's window and returns the new count. */
  hit(key: string, windowMs: number): Promise<WindowCount>;
  peek(key: string): Promise<WindowCount | undefined>;
  reset(key: string): Promise<void>;
}

/** Counters in this process: each node throttles on its own until the shared tier (Redis) lands. */
export function createMemoryRateLimitStore(now: () => number = Date.now): RateLimitStore {
  const windows = new Map<string, WindowCount>();
  let sweptAt = now();
  const sweep = () => {
    const t = now();
    if (t - sweptAt < 60_000) return;
    sweptAt = t;
    for (const [key, window] of windows) if (window.resetAt <= t) windows.delete(key);
  };
  return {
    async hit(key, windowMs) {
      sweep();
      const t = now();
      const current = windows.get(key);
      if (!current || current.resetAt <= t) {
        const fresh = { count: 1, resetAt: t + windowMs };
        windows.set(key, fresh);
        return { ...fresh };
      }
      current.count += 1;
      return { ...current };
    },
    async peek(key) {
      const current = windows.get(key);
      return current && current.resetAt > now() ? { ...current } : undefined;
    },
    async reset(key) {
      windows.delete(key);
    },
  };
}

/** The subset of an ioredis client the shared store uses. */
export interface RedisLike {
  eval(script: string, keys: number, ...args: (string | number)[]): Promise<unknown>;
  del(...keys: string[]): Promise<number>;
}

// INCR and the expiry of a new window in one step, so two nodes never both start a window.
const HIT_SCRIPT = `local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {c, redis.call('PTTL', KEYS[1])}`;
const PEEK_SCRIPT = `local c = redis.call('GET', KEYS[1])
if not c then return nil end
return {tonumber(c), redis.call('PTTL', KEYS[1])}`;

/**
 * Counters shared by every node through Redis (REDIS_URL), so a limit holds across the cluster.
 * When Redis fails the counters fail open (the request proceeds, a warning is logged): a throttle
 * outage must not take the API or log-in down with it.
 */
export function createRedisRateLimitStore(
  redis: RedisLike,
  options: { prefix?: string; onError?: (error: unknown) => void; now?: () => number } = {},
): RateLimitStore {
  const prefix = options.prefix ?? 'edgegate:rl:';
  const now = options.now ?? Date.now;
  const failOpen = (error: unknown): WindowCount => {
    options.onError?.(error);
    return { count: 0, resetAt: now() };
  };
  return {
    async hit(key, windowMs) {
      try {
        const [count, ttl] = (await redis.eval(HIT_SCRIPT, 1, prefix + key, windowMs)) as [
          number,
          number,
        ];
        return { count, resetAt: now() + Math.max(0, ttl) };
      } catch (error) {
        return failOpen(error);
      }
    },
    async peek(key) {
      try {
        const found = (await redis.eval(PEEK_SCRIPT, 1, prefix + key)) as [number, number] | null;
        return found ? { count: found[0], resetAt: now() + Math.max(0, found[1]) } : undefined;
      } catch (error) {
        failOpen(error);
        return undefined;
      }
    },
    async reset(key) {
      try {
        await redis.del(prefix + key);
      } catch (error) {
        failOpen(error);
      }
    },
  };
}

/**
 * @fastify/rate-limit's store interface over these counters, so the API's per-credential limit
 * counts where the throttles do (memory or Redis) and fails open, behind the same breaker, with them.
 */
export function rateLimitPluginStore(
  counters: RateLimitStore,
  now: () => number = Date.now,
): FastifyRateLimitStoreCtor {
  const store = (prefix: string): FastifyRateLimitStore => ({
    incr(key, callback, timeWindow) {
      counters.hit(prefix + key, timeWindow).then(
        (window) =>
          callback(null, { current: window.count, ttl: Math.max(0, window.resetAt - now()) }),
        (error: unknown) => callback(error as Error),
      );
    },
    // The plugin passes the merged route settings, whose `routeInfo` names the route.
    child(options) {
      const route = (options as { routeInfo?: { method?: string; url?: string } }).routeInfo;
      return store(`${prefix}${route?.method ?? ''}${route?.url ?? ''} `);
    },
  });
  return class {
    constructor() {
      return store('api ');
    }
  } as unknown as FastifyRateLimitStoreCtor;
}
