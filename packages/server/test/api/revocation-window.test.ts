// A revocation this node never heard of (made by another node) wins within one second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { openTestStore } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

describe('revocation on another node', () => {
  let store: Store;
  let app: FastifyInstance;
  beforeAll(async () => {
    store = await openTestStore('postgres');
    app = await buildTestApp(store);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('stops a cached token within one second of its grant disappearing from the store', async () => {
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'node@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read'],
    });
    const { access_token } = await accessTokenFor(app, grant);
    const call = () =>
      app.inject({ url: '/v1/workspace', headers: { authorization: `Bearer ${access_token}` } });
    expect((await call()).statusCode).toBe(200);
    // As another node would: straight in the store, with no notification to this process.
    await store.db.deleteFrom('oauth_tokens').where('grant_id', '=', grant.grantId).execute();
    await store.db.deleteFrom('oauth_grants').where('id', '=', grant.grantId).execute();
    const revokedAt = Date.now();
    let status = (await call()).statusCode;
    while (status === 200 && Date.now() - revokedAt < 3000) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await call()).statusCode;
    }
    expect(status).toBe(401);
    expect(Date.now() - revokedAt).toBeLessThanOrEqual(1100);
  });
});
