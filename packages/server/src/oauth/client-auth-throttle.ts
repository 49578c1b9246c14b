// Caps failed client authentication (token, introspection, revocation, device authorization):
// failures are counted per client id and per address, and once either passes its limit further
// failures are answered 429 with Retry-After. The engine authenticates first, so a request whose
// credentials verify is never refused: only the answer to a failure changes.
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { createMemoryRateLimitStore, type RateLimitStore } from '../services/rate-limit.ts';

/** Failed client authentications one client id, or one address, may cause a minute. */
export const FAILED_CLIENT_AUTH_PER_MINUTE = 60;
const WINDOW_MS = 60_000;

export function clientAuthThrottle(
  counters: RateLimitStore = createMemoryRateLimitStore(),
): Parameters<Provider['use']>[0] {
  return async (ctx, next) => {
    await next();
    const body = ctx.body as { error?: unknown } | undefined;
    if (ctx.status !== 401 || body?.error !== 'invalid_client') return;
    const clientId = presentedClientId(ctx as KoaContextWithOIDC);
    const windows = await Promise.all([
      counters.hit(`failed-client-auth ip ${ctx.ip}`, WINDOW_MS),
      ...(clientId ? [counters.hit(`failed-client-auth id ${clientId}`, WINDOW_MS)] : []),
    ]);
    const over = windows.filter((w) => w.count > FAILED_CLIENT_AUTH_PER_MINUTE);
    if (over.length === 0) return;
    const resetAt = Math.max(...over.map((w) => w.resetAt));
    const retryAfter = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000));
    ctx.status = 429;
    ctx.remove('www-authenticate');
    ctx.set('retry-after', String(retryAfter));
    ctx.body = {
      error: 'invalid_client',
      error_description: `too many failed client authentications; retry after ${retryAfter} s`,
    };
  };
}

/** The client id the request named, in HTTP Basic (form-encoded, RFC 6749 §2.3.1) or the body. */
function presentedClientId(ctx: KoaContextWithOIDC): string | undefined {
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(ctx.get('authorization'));
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      try {
        return decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' ')).slice(0, 200);
      } catch {
        return undefined;
      }
    }
  }
  const fromBody = (ctx.oidc?.params as { client_id?: unknown } | undefined)?.client_id;
  return typeof fromBody === 'string' && fromBody ? fromBody.slice(0, 200) : undefined;
}
