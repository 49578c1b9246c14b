// Idempotency-Key on POST: the same key with the same body gets the first response again for
// 24 h; the same key with a different body is refused; a retry while the first is running waits.
import { createHash } from 'node:crypto';
import { deriveKey, seal, unseal } from '../services/crypto.ts';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../db/store.ts';
import {
  claimIdempotencyKey,
  completeIdempotencyRecord,
  findIdempotencyRecord,
  releaseIdempotencyKey,
} from '../db/queries/idempotency.ts';
import { Problem } from '../problem.ts';

const TTL_MS = 24 * 3600_000;
const REPLAYED_HEADERS = ['content-type', 'location', 'etag', 'cache-control', 'www-authenticate'];
/** Answers that depend on the credential or the moment, not on the request: never replayed. */
const NOT_REPLAYED = new Set([401, 403, 429]);

declare module 'fastify' {
  interface FastifyRequest {
    idempotency: { credential: string; key: string } | undefined;
  }
  interface FastifyContextConfig {
    /** false for a POST with no side effect (nothing to repeat safely, so nothing is stored). */
    idempotency?: boolean;
  }
}

export function registerIdempotency(app: FastifyInstance, db: Db, rootSecret: string) {
  // Stored responses can hold secrets shown once (a new API key), so they are sealed at rest.
  const sealKey = deriveKey(rootSecret, 'idempotency records');
  app.decorateRequest('idempotency', undefined);

  app.addHook('preHandler', async (request, reply) => {
    const key = request.headers['idempotency-key'];
    if (request.method !== 'POST' || key === undefined || !request.principal) return;
    if (request.routeOptions.config?.idempotency === false) return;
    if (
      typeof key !== 'string' ||
      key.length < 1 ||
      key.length > 255 ||
      !/^[\x21-\x7e]+$/.test(key)
    ) {
      throw new Problem(
        'idempotency.invalid_key',
        400,
        'Idempotency-Key must be 1–255 visible ASCII characters.',
      );
    }
    const credential = `${request.principal.kind}:${request.principal.credentialId}`;
    const requestHash = createHash('sha256')
      .update(`${request.method} ${request.url}\n${JSON.stringify(request.body ?? null)}`)
      .digest('hex');
    if (
      await claimIdempotencyKey(db, {
        credential,
        key,
        requestHash,
        expiresAt: new Date(Date.now() + TTL_MS),
      })
    ) {
      request.idempotency = { credential, key };
      return;
    }
    const record = await findIdempotencyRecord(db, credential, key);
    if (!record)
      throw new Problem(
        'idempotency.in_progress',
        409,
        'A request with this Idempotency-Key is still running. Retry shortly.',
        { headers: { 'retry-after': '1' } },
      );
    if (record.request_hash !== requestHash) {
      throw new Problem(
        'idempotency.key_reused',
        422,
        'This Idempotency-Key was already used with a different request. Use a new key for a new request.',
      );
    }
    if (record.status === null || record.body === null) {
      throw new Problem(
        'idempotency.in_progress',
        409,
        'A request with this Idempotency-Key is still running. Retry shortly.',
        {
          headers: { 'retry-after': '1' },
        },
      );
    }
    return reply
      .code(record.status)
      .headers({ ...(record.headers ?? {}), 'idempotent-replayed': 'true' })
      .send(unseal(sealKey, record.body));
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const claim = request.idempotency;
    if (!claim) return payload;
    request.idempotency = undefined;
    // A server error is not an answer worth repeating: the client may retry with the same key.
    if (
      reply.statusCode >= 500 ||
      NOT_REPLAYED.has(reply.statusCode) ||
      typeof payload !== 'string'
    ) {
      await releaseIdempotencyKey(db, claim.credential, claim.key);
      return payload;
    }
    const headers: Record<string, string> = {};
    for (const name of REPLAYED_HEADERS) {
      const value = reply.getHeader(name);
      if (typeof value === 'string') headers[name] = value;
    }
    await completeIdempotencyRecord(db, claim.credential, claim.key, {
      status: reply.statusCode,
      headers,
      body: seal(sealKey, payload),
    });
    return payload;
  });
}
