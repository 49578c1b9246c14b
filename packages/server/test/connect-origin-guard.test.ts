// The hosted connect page checks, right before its credential test connects, every address the
// host resolves to, and dials only a checked one: under ORIGIN_PRIVATE=deny it never opens a TCP
// connection to a loopback, private or other special-purpose address, by name or by literal.
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { openTestStore } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';

/** What DNS answers for each test name: all of them reach this machine's loopback if dialled. */
const RECORDS: Record<string, string[]> = {
  'loopback.test.example': ['127.0.0.1'],
  'mapped.test.example': ['::ffff:127.0.0.1'],
  'mixed.test.example': ['8.8.8.8', '127.0.0.1'],
  'documentation.test.example': ['192.0.2.2'],
  'translated.test.example': ['::ffff:0:7f00:1'],
};

async function resolveOrigin(hostname: string): Promise<string[]> {
  const answer = RECORDS[hostname];
  if (!answer)
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return answer;
}

describe('the connect page under ORIGIN_PRIVATE=deny', () => {
  let store: Store;
  let deny: FastifyInstance;
  let allow: FastifyInstance;
  let listener: net.Server;
  let port: number;
  let authorization: string;
  const dialled: string[] = [];

  beforeAll(async () => {
    store = await openTestStore('pglite');
    deny = await buildTestApp(store, { originPrivate: 'deny', resolveOrigin });
    allow = await buildTestApp(store, { originPrivate: 'allow', resolveOrigin });
    // Stands where a tenant's "database" would be on the operator's own machine: counts arrivals.
    listener = net.createServer((socket) => {
      dialled.push(socket.remoteAddress ?? '?');
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as AddressInfo).port;
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'tenant@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(deny, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['connections:read', 'connections:write'],
    });
    authorization = `Bearer ${(await accessTokenFor(deny, grant)).access_token}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => listener?.close(resolve));
    await deny?.close();
    await allow?.close();
    await store?.close();
  });

  /** Mints a session on `app` and submits the Postgres form for `host` at the listener's port. */
  async function testCredentials(app: FastifyInstance, host: string) {
    const minted = await app.inject({
      method: 'POST',
      url: '/v1/connect/sessions',
      headers: { authorization },
      payload: { type: 'postgresql', name: 'Orders', redirect_url: 'https://partner.example/cb' },
    });
    expect(minted.statusCode, minted.body).toBe(201);
    const token = minted.json().data.token as string;
    const form = await app.inject({ method: 'GET', url: `/connect/${token}?type=postgresql` });
    const csrf = /name="_csrf" value="([^"]*)"/.exec(form.body)?.[1] ?? '';
    return app.inject({
      method: 'POST',
      url: `/connect/${token}`,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'http://localhost:8080',
      },
      payload: new URLSearchParams({
        _csrf: csrf,
        type: 'postgresql',
        state: '',
        'f.host': host,
        'f.port': String(port),
        'f.database': 'orders',
        'f.user': 'app',
        'f.password': 'secret',
      }).toString(),
    });
  }

  it.each([
    'loopback.test.example',
    'mapped.test.example',
    'mixed.test.example',
    'documentation.test.example',
    'translated.test.example',
    '127.0.0.1',
    '::ffff:127.0.0.1',
    '::ffff:0:7f00:1',
    '192.0.2.2',
  ])('refuses %s with the reason and opens no connection', async (host) => {
    dialled.length = 0;
    const page = await testCredentials(deny, host);
    expect(page.statusCode).toBe(422);
    expect(page.body).toContain('ORIGIN_PRIVATE=deny');
    // Give a stray connection time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(dialled).toEqual([]);
  });

  it('does dial a loopback origin where the operator allows it (the listener does see connections)', async () => {
    dialled.length = 0;
    const page = await testCredentials(allow, 'loopback.test.example');
    expect(page.statusCode).toBe(422);
    expect(dialled.length).toBeGreaterThan(0);
  });
});
