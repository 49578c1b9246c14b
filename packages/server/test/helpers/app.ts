// Builds the control-plane app on a test store with a quiet logger.
import { pino } from 'pino';
import { buildApp, type AppDeps } from '../../src/app.ts';
import type { Store } from '../../src/db/store.ts';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789';

/** Origins tests may name: public ones resolve to a documentation address, as DNS would. */
export async function testResolver(hostname: string): Promise<string[]> {
  const fixed: Record<string, string[]> = {
    'db.example.com': ['203.0.113.10'],
    'metadata.example.com': ['169.254.169.254'],
    'internal.example.com': ['10.0.0.5'],
    localhost: ['127.0.0.1'],
    // A name whose lookup takes a while, as real DNS can: for races around the lookup.
    'slow.localhost.example': ['127.0.0.1'],
  };
  if (hostname === 'slow.localhost.example') await new Promise((r) => setTimeout(r, 300));
  const answer = fixed[hostname];
  if (!answer)
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return answer;
}

export async function buildTestApp(
  store: Store,
  options: {
    publicUrl?: string;
    originPrivate?: 'allow' | 'deny';
    apiRateLimit?: number;
    webhooks?: { retryBaseMs?: number; pollMs?: number; timeoutMs?: number; maxAgeMs?: number };
    shared?: Pick<AppDeps, 'rateLimitStore'>;
    connectTestTimeoutMs?: number;
    /** The edge's TLS files, as EDGE_TLS_CERT/EDGE_TLS_KEY would give them; null for none. */
    edgeTls?: { certFile: string; keyFile: string } | null;
    /** DNS for origins instead of testResolver's fixed names. */
    resolveOrigin?: (hostname: string) => Promise<string[]>;
  } = {},
) {
  const app = await buildApp({
    config: {
      publicUrl: options.publicUrl ?? 'http://localhost:8080',
      secret: TEST_SECRET,
      originPrivate: options.originPrivate ?? 'allow',
      apiRateLimit: options.apiRateLimit ?? 10_000,
      ...(options.edgeTls === undefined ? {} : { edgeTls: options.edgeTls }),
    },
    store,
    logger: pino({ level: 'silent' }),
    resolveOrigin: options.resolveOrigin ?? testResolver,
    ...(options.webhooks ? { webhooks: options.webhooks } : {}),
    ...(options.connectTestTimeoutMs ? { connectTestTimeoutMs: options.connectTestTimeoutMs } : {}),
    ...options.shared,
  });
  await app.ready();
  return app;
}
