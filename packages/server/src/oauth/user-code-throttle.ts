// Caps user-code guesses at the device page: every POST to it counts against the client's address
// in a fixed window, so the 20^8 codes cannot be walked through while one is live (10 minutes).
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { createMemoryRateLimitStore, type RateLimitStore } from '../services/rate-limit.ts';
import { isEnginePath } from './engine-paths.ts';
import { tooManyCodeAttempts } from './pages.ts';

export const USER_CODE_ATTEMPTS = 20;
export const USER_CODE_WINDOW_MS = 10 * 60_000;

export function userCodeThrottle(
  codeVerificationPath: string,
  attempts: RateLimitStore = createMemoryRateLimitStore(),
): Parameters<Provider['use']>[0] {
  return async (ctx, next) => {
    if (ctx.method === 'POST' && isEnginePath(ctx, codeVerificationPath)) {
      const window = await attempts.hit(`user-code ${ctx.ip}`, USER_CODE_WINDOW_MS);
      if (window.count > USER_CODE_ATTEMPTS) {
        const retryAfter = Math.max(1, Math.ceil((window.resetAt - Date.now()) / 1000));
        return tooManyCodeAttempts(ctx as KoaContextWithOIDC, retryAfter);
      }
    }
    return next();
  };
}
