// A circuit breaker in front of the shared tier (REDIS_URL): once a command fails for want of
// Redis (refused, reset, timed out), every command fails at once until a background PING answers,
// so a Redis outage costs the API one command timeout, not one per request.
import type { Redis } from 'ioredis';
import type { RedisLike } from './rate-limit.ts';

export interface GuardedRedis extends RedisLike {
  /** `open` while Redis is failing: commands then fail at once, without reaching it. */
  readonly state: 'closed' | 'open';
  /** Answers when Redis does (through the breaker), for readiness. */
  ping(): Promise<void>;
  /** Stops probing and closes the connection. */
  disconnect(): void;
}

export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

export interface BreakerOptions {
  /** How often an open breaker sends a PING to see whether Redis is back (default 1 s). */
  probeMs?: number;
  /** Told when the breaker opens (with the error that opened it) and when it closes. */
  onChange?: (state: 'open' | 'closed', error?: unknown) => void;
}

// A Lua or argument error is Redis answering: it says nothing about Redis being away.
function isOutage(error: unknown): boolean {
  return !(error instanceof Error && error.name === 'ReplyError');
}

export function guardRedis(redis: Redis, options: BreakerOptions = {}): GuardedRedis {
  const probeMs = options.probeMs ?? 1_000;
  let state: 'closed' | 'open' = 'closed';
  let probe: NodeJS.Timeout | undefined;
  let stopped = false;

  const close = (): void => {
    clearInterval(probe);
    probe = undefined;
    state = 'closed';
    options.onChange?.('closed');
  };
  const open = (error: unknown): void => {
    if (state === 'open' || stopped) return;
    state = 'open';
    options.onChange?.('open', error);
    let probing = false;
    probe = setInterval(() => {
      if (probing) return;
      probing = true;
      redis
        .ping()
        .then(() => state === 'open' && !stopped && close())
        .catch(() => {})
        .finally(() => (probing = false));
    }, probeMs);
    probe.unref();
  };
  const run = async <T>(command: () => Promise<T>): Promise<T> => {
    if (state === 'open') throw new RedisUnavailableError('Redis is unavailable (circuit open)');
    try {
      return await command();
    } catch (error) {
      if (isOutage(error)) open(error);
      throw error;
    }
  };

  return {
    get state() {
      return state;
    },
    eval: (script, keys, ...args) => run(() => redis.eval(script, keys, ...args)),
    del: (...keys) => run(() => redis.del(...keys)),
    ping: async () => {
      await run(() => redis.ping());
    },
    disconnect() {
      stopped = true;
      clearInterval(probe);
      redis.disconnect();
    },
  };
}
