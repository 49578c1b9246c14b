// Fixed-window counters for throttling (log-in attempts now, API credentials later).
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
