// A JSON string with a lone UTF-16 surrogate (`"\ud800"`) cannot be stored as sent (UTF-8 has no
// encoding for it): every JSON body of the API refuses it with 422 instead of storing U+FFFD.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { buildTestApp } from '../helpers/app.ts';
import { openTestStore } from '../helpers/stores.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

describe('lone surrogates in JSON bodies', () => {
  let store: Store;
  let app: FastifyInstance;
  let token: string;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store);
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'surrogates@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read', 'caches:write', 'connections:read', 'connections:write'],
    });
    token = (await accessTokenFor(app, grant)).access_token;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  /** Sends `json` byte for byte: the escapes reach the server's JSON parser as written. */
  const post = (url: string, json: string) =>
    app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      payload: json,
    });

  const cacheBody = (name: string) =>
    `{"name":"${name}","type":"postgres","hostname":"db.example.com","port":5432}`;
  const sessionBody = (name: string) =>
    `{"type":"postgresql","name":"${name}","redirect_url":"https://partner.example/connected"}`;

  it('refuses a lone surrogate in a cache name with 422 and stores nothing', async () => {
    for (const name of ['a\\ud800b', '\\udfff', 'x\\ud83d', '\\ude00x']) {
      const response = await post('/v1/caches', cacheBody(name));
      expect(response.statusCode, name).toBe(422);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json()).toMatchObject({
        status: 422,
        errors: [{ path: 'name' }],
      });
    }
    const stored = await store.db.selectFrom('caches').select('name').execute();
    expect(stored).toEqual([]);
    // A surrogate pair is a real character (here an emoji) and is kept.
    const paired = await post('/v1/caches', cacheBody('orders \\ud83d\\ude00'));
    expect(paired.statusCode).toBe(201);
    expect(paired.json().data.name).toBe('orders 😀');
  });

  it('refuses a lone surrogate in a connect session name, and in a nested key', async () => {
    const response = await post('/v1/connect/sessions', sessionBody('Orders \\ud800'));
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toEqual([expect.objectContaining({ path: 'name' })]);
    const nested = await post(
      '/v1/connect/sessions',
      `{"type":"postgresql","name":"ok","redirect_url":"https://partner.example/connected","connection":{"\\udc00":1}}`,
    );
    expect(nested.statusCode).toBe(422);
    const good = await post('/v1/connect/sessions', sessionBody('Orders'));
    expect(good.statusCode, good.body).toBe(201);
  });
});
