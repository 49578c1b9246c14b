// Optimistic concurrency for PATCH: ETag carries the row version, If-Match must name it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Problem } from '../../../problem.ts';

// Strong: one row version always serialises to the same bytes, and If-Match compares strongly
// (RFC 9110 §13.1.1), so a weak tag there would never match.
export function etagOf(id: string, version: number): string {
  return `"${id}.${version}"`;
}

export function setEtag(reply: FastifyReply, id: string, version: number): void {
  reply.header('etag', etagOf(id, version));
}

/** A PATCH with If-Match must match the current version; without one it applies unconditionally. */
export function checkIfMatch(request: FastifyRequest, id: string, version: number): void {
  const ifMatch = request.headers['if-match'];
  if (ifMatch === undefined || ifMatch.trim() === '*') return;
  const wanted = ifMatch.split(',').map((tag) => tag.trim());
  if (!wanted.includes(etagOf(id, version))) {
    throw new Problem(
      'precondition_failed',
      412,
      'The resource changed since you read it (If-Match does not match its ETag). Read it again and retry.',
    );
  }
}
