// Deletes what has expired (console sessions, OAuth artefacts, idempotency records) every few
// minutes, so tables and the indexes on the hot paths stay small.
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/store.ts';
import { deleteExpiredSessions } from '../db/queries/sessions.ts';
import { deleteExpiredOAuthRows } from '../db/queries/oauth-store.ts';
import { deleteExpiredIdempotencyKeys } from '../db/queries/idempotency.ts';
import { deleteMetricSamplesBefore } from '../db/queries/cache-metrics.ts';
import { deleteFinishedConnectSessions } from '../connect/sessions.ts';

// Edge metric samples are kept this long (the API's longest window).
export const METRICS_RETENTION_MS = 7 * 24 * 3600_000;

// Connect sessions stay readable (GET /v1/connect/sessions/{token}) a day after they stop mattering.
export const CONNECT_SESSION_RETENTION_MS = 24 * 3600_000;

export const HOUSEKEEPING_INTERVAL_MS = 10 * 60_000;

export async function sweepExpired(db: Db, now = new Date()): Promise<void> {
  await deleteExpiredSessions(db, now);
  await deleteExpiredOAuthRows(db, now);
  await deleteExpiredIdempotencyKeys(db, now);
  await deleteMetricSamplesBefore(db, new Date(now.getTime() - METRICS_RETENTION_MS));
  await deleteFinishedConnectSessions(db, new Date(now.getTime() - CONNECT_SESSION_RETENTION_MS));
}

/** Starts the periodic sweep; the returned function stops it. It never keeps the process alive. */
export function startHousekeeping(
  db: Db,
  logger: FastifyBaseLogger,
  intervalMs = HOUSEKEEPING_INTERVAL_MS,
): () => void {
  const timer = setInterval(() => {
    sweepExpired(db).catch((error: unknown) =>
      logger.warn({ err: error }, 'housekeeping sweep failed'),
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
