// X-Request-Id: a sane incoming id is kept (so one id follows a request through proxies and
// nodes), anything else is replaced by a UUIDv7; every answer carries it, every log line names it.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

export const REQUEST_ID_HEADER = 'x-request-id';

// Printable, no spaces or quotes, at most 128 characters: safe in logs and headers.
const ACCEPTED_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/**
 * A UUIDv7 (RFC 9562): 48 bits of milliseconds, then 74 random bits. Unique across nodes without
 * coordination, and sorts by time in logs.
 */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Fastify's `genReqId`: the client's id when it is sane, else a new one. */
export function requestIdOf(request: IncomingMessage): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && ACCEPTED_ID.test(incoming) ? incoming : uuidv7();
}

export function registerRequestIdHeader(app: FastifyInstance): void {
  // On the raw response, so routes that write it themselves (the OAuth engine's) carry it too.
  app.addHook('onRequest', async (request, reply) => {
    reply.raw.setHeader(REQUEST_ID_HEADER, request.id);
  });
}
