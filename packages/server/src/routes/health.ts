// Liveness (/healthz, with the version running) and readiness (/readyz: every check of the process
// passes) for orchestrators.
import type { FastifyInstance } from 'fastify';
import type { Readiness } from '../services/readiness.ts';
import { Problem } from '../problem.ts';
import { VERSION } from '../version.ts';

export function registerHealthRoutes(app: FastifyInstance, readiness: Readiness) {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok', version: VERSION }));
  app.get('/readyz', { logLevel: 'warn' }, async () => {
    const { ready, checks } = await readiness.check();
    if (!ready) throw notReady(checks);
    return { status: 'ready', checks };
  });
}

/** The 503 of /readyz: which checks failed, and the whole report. */
export function notReady(checks: Record<string, string>): Problem {
  const failing = Object.entries(checks)
    .filter(([, result]) => result !== 'ok')
    .map(([name, result]) => `${name}: ${result}`);
  return new Problem('not_ready', 503, `Not ready (${failing.join('; ')}).`, {
    extensions: { checks },
  });
}
