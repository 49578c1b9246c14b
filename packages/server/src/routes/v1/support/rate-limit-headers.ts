// The per-credential request quota of /v1, counted before validation (so a refused request counts
// too) and advertised on every answer with the IETF RateLimit fields, draft-ietf-httpapi-
// ratelimit-headers-10: `RateLimit-Policy: "credential";q=<quota>;w=<window>` and
// `RateLimit: "credential";r=<remaining>;t=<seconds until the window resets>`; a 429 adds
// `Retry-After`.
import type { FastifyInstance } from 'fastify';
import { Problem } from '../../../problem.ts';

export const RATE_LIMIT_WINDOW_SECONDS = 60;
/** The policy's name in both fields (a Structured Fields string). */
export const RATE_LIMIT_POLICY = 'credential';

export function registerRateLimitHeaders(v1: FastifyInstance, perMinute: number): void {
  const limit = v1.createRateLimit();
  const policy = `"${RATE_LIMIT_POLICY}";q=${perMinute};w=${RATE_LIMIT_WINDOW_SECONDS}`;
  v1.addHook('preValidation', async (request, reply) => {
    const counted = await limit(request);
    // No allow-list is configured, so every request is counted.
    if (counted.isAllowed) return;
    reply.header('ratelimit-policy', policy);
    if (!counted.isExceeded) {
      reply.header(
        'ratelimit',
        `"${RATE_LIMIT_POLICY}";r=${counted.remaining};t=${counted.ttlInSeconds}`,
      );
      return;
    }
    const retryAfter = Math.max(counted.ttlInSeconds, 1);
    reply.header('ratelimit', `"${RATE_LIMIT_POLICY}";r=0;t=${retryAfter}`);
    throw new Problem(
      'rate_limited',
      429,
      `Too many requests for this credential: at most ${perMinute} a minute. Retry after ${retryAfter} s.`,
      { headers: { 'retry-after': String(retryAfter) } },
    );
  });
}
