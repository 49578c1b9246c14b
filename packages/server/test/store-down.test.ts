// When the store cannot be reached, the API says so the way HTTP clients and load balancers
// understand: 503 with Retry-After and a problem body, not a 500, and readiness fails; when the
// store is back, requests succeed again. The store is the machine's Postgres behind a TCP relay
// that this test closes (every connection dropped, new ones refused) and opens again.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { signUp } from '../src/services/accounts.ts';
import { createTestDatabase } from './helpers/stores.ts';
import { postgresRelay } from './helpers/postgres-relay.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';

describe('the API while the store is unreachable', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let relay: ReturnType<typeof postgresRelay>;
  let server: RunningServer;
  let authorization: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url);
    relay = postgresRelay(target);
    const port = await relay.up();
    const viaRelay = new URL(database.url);
    viaRelay.host = `127.0.0.1:${port}`;
    server = await startServer(
      loadConfig({
        DATABASE_URL: viaRelay.toString(),
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-store-down-')),
        PORT: '0',
        EDGEGATE_SECRET: 'b'.repeat(48),
      }),
      { logger: pino({ level: 'silent' }), planes: 'server' },
    );
    const app = server.app!;
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email: 'store-down@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    authorization = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
  });
  afterAll(async () => {
    await relay?.up().catch(() => undefined);
    await server?.close();
    await database?.drop();
  });

  it('answers 503 with Retry-After and a problem body, fails readiness, and recovers', async () => {
    const list = () => fetch(`${server.url}/v1/caches`, { headers: { authorization } });
    expect((await list()).status).toBe(200);

    await relay.down();
    // A credential is remembered for a second: past it, the request needs the store.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    for (const request of [
      list,
      () => fetch(`${server.url}/v1/caches`, { headers: { authorization: 'Bearer egk_unknown' } }),
      () => fetch(`${server.url}/v1/workspace`, { headers: { authorization } }),
    ]) {
      const started = Date.now();
      const response = await request();
      const body = await response.text();
      expect(response.status, body).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(JSON.parse(body)).toMatchObject({
        type: 'https://edgegate.dev/problems/store.unavailable',
        status: 503,
      });
      expect(Date.now() - started).toBeLessThan(6_000);
    }
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect((await notReady.json()).checks.store).not.toBe('ok');
    // A console page gets the same status, as a page.
    const page = await fetch(`${server.url}/workspaces`, {
      headers: { cookie: 'eg_session=whatever', accept: 'text/html' },
    });
    expect(page.status).toBe(503);

    await relay.up();
    for (let attempt = 0; ; attempt++) {
      const response = await list();
      if (response.status === 200) break;
      if (attempt === 50) throw new Error(`still ${response.status}: ${await response.text()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  }, 60_000);
});
