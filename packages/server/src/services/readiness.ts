// Readiness (/readyz) of a control plane or an edge: named checks that must all pass, and a drain
// switch that makes the process not ready from the moment it is told to stop.
import { sql } from 'kysely';
import type { Db } from '../db/store.ts';

/** A check resolves when its part works and throws, saying why, when it does not. */
export type ReadinessCheck = () => Promise<void>;

export interface ReadinessReport {
  ready: boolean;
  /** `ok`, or why the part is not ready; `draining` names the shutdown. */
  checks: Record<string, string>;
}

export interface Readiness {
  /** From now on not ready: the process is stopping and a load balancer should stop sending. */
  drain(): void;
  readonly draining: boolean;
  check(): Promise<ReadinessReport>;
}

// A part that does not answer within this is reported as not ready (a probe must not hang).
const CHECK_TIMEOUT_MS = 2_000;

export function createReadiness(checks: Record<string, ReadinessCheck>): Readiness {
  let draining = false;
  return {
    drain() {
      draining = true;
    },
    get draining() {
      return draining;
    },
    async check() {
      const results = await Promise.all(
        Object.entries(checks).map(async ([name, check]) => [name, await outcome(check)] as const),
      );
      const report: Record<string, string> = Object.fromEntries(results);
      if (draining) report.shutdown = 'draining: the process is stopping';
      return { ready: !draining && results.every(([, result]) => result === 'ok'), checks: report };
    },
  };
}

async function outcome(check: ReadinessCheck): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      check().then(
        () => 'ok',
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The store answers a query. */
export function storeAnswers(db: Db): ReadinessCheck {
  return async () => {
    await sql`select 1`.execute(db);
  };
}
