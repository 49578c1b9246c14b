// A control plane listening on a free loopback port whose PUBLIC_URL is that port (OAuth issuer).
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/app.ts';
import type { Store } from '../../src/db/store.ts';
import { TEST_SECRET } from './app.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startListeningApp(
  store: Store,
  options: { accessTokenTtlSeconds?: number } = {},
): Promise<{ app: FastifyInstance; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const app = await buildApp({
    config: {
      publicUrl: url,
      secret: TEST_SECRET,
      accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 3600,
    },
    store,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
  });
  await app.listen({ port, host: '127.0.0.1' });
  return { app, url };
}
