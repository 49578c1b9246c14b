// Limits failed log-ins per account and per client address, without locking out on success.
import { Problem } from '../problem.ts';
import type { RateLimitStore } from './rate-limit.ts';

export const LOGIN_LIMITS = {
  windowMs: 15 * 60_000,
  /** Failures one account may see in a window: stops guessing one person's password. */
  perAccount: 5,
  /** Failures one address may cause in a window: stops spraying many accounts. */
  perIp: 20,
};

export interface LoginThrottle {
  assertAllowed(email: string, ip: string): Promise<void>;
  recordFailure(email: string, ip: string): Promise<void>;
  recordSuccess(email: string): Promise<void>;
}

export function createLoginThrottle(store: RateLimitStore, limits = LOGIN_LIMITS): LoginThrottle {
  const accountKey = (email: string) => `login:account:${email.toLowerCase()}`;
  const ipKey = (ip: string) => `login:ip:${ip}`;
  const refuse = (resetAt: number) => {
    const seconds = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000));
    const minutes = Math.ceil(seconds / 60);
    return new Problem(
      'auth.too_many_attempts',
      429,
      `Too many failed log-in attempts. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`,
      { headers: { 'retry-after': String(seconds) } },
    );
  };
  return {
    async assertAllowed(email, ip) {
      const [account, address] = await Promise.all([
        store.peek(accountKey(email)),
        store.peek(ipKey(ip)),
      ]);
      if (account && account.count >= limits.perAccount) throw refuse(account.resetAt);
      if (address && address.count >= limits.perIp) throw refuse(address.resetAt);
    },
    async recordFailure(email, ip) {
      await Promise.all([
        store.hit(accountKey(email), limits.windowMs),
        store.hit(ipKey(ip), limits.windowMs),
      ]);
    },
    async recordSuccess(email) {
      await store.reset(accountKey(email));
    },
  };
}
