// Builds the control-plane app on a test store with a quiet logger.
import { pino } from 'pino';
import { buildApp } from '../../src/app.ts';
import type { Store } from '../../src/db/store.ts';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789';

export async function buildTestApp(store: Store, options: { publicUrl?: string } = {}) {
  const app = await buildApp({
    config: { publicUrl: options.publicUrl ?? 'http://localhost:8080', secret: TEST_SECRET },
    store,
    logger: pino({ level: 'silent' }),
  });
  await app.ready();
  return app;
}
