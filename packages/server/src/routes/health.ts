// Liveness (/healthz) and readiness (/readyz: the store answers) for orchestrators.
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Db } from '../db/store.ts';
import { Problem } from '../problem.ts';

export function registerHealthRoutes(app: FastifyInstance, db: Db) {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
  app.get('/readyz', { logLevel: 'warn' }, async () => {
    try {
      await sql`select 1`.execute(db);
    } catch (error) {
      throw new Problem(
        'store.unreachable',
        503,
        `The store does not answer: ${(error as Error).message}`,
      );
    }
    return { status: 'ready' };
  });
}
