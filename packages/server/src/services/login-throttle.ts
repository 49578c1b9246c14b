// Limits failed log-ins per account and per client address, without locking out on success.
import { Problem } from '../problem.ts';
import type { RateLimitStore } from './rate-limit.ts';

export const LOGIN_LIMITS = {
  windowMs: 15 * 60_000,
  /** Attempts on one account in a window (a success starts it again): stops guessing one password. */
  perAccount: 5,
  /** Attempts from one address in a window: stops spraying many accounts. */
  perIp: 30,
};

export interface LoginThrottle {
  /**
   * Counts this attempt before the password is checked, so parallel guesses are counted too,
   * and refuses it when the account or the address is over its limit.
   */
  attempt(email: string, ip: string): Promise<void>;
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
    async attempt(email, ip) {
      const [account, address] = await Promise.all([
        store.hit(accountKey(email), limits.windowMs),
        store.hit(ipKey(ip), limits.windowMs),
      ]);
      if (account.count > limits.perAccount) throw refuse(account.resetAt);
      if (address.count > limits.perIp) throw refuse(address.resetAt);
    },
    async recordSuccess(email) {
      await store.reset(accountKey(email));
    },
  };
}
