// How the API answers a partner's bearer token (RFC 6750): 401 with a challenge when it is
// missing or bad, 403 insufficient_scope naming the scope it lacks, always problem+json.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { sha256 } from '../../src/services/crypto.ts';
import { registerProblemHandler } from '../../src/plugins/problem-handler.ts';
import { requireCredential, requireScope } from '../../src/plugins/credential-auth.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  obtainTokens,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe('bearer authentication', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let resourceServer: FastifyInstance;
  let resourceUrl: string;
  let user: CookieFetch;
  let workspaceId: string;
  let partner: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    partner = await registerPartner(store.db, await userIdOf(store.db, 'owner@partner.example'), {
      scopes: ['caches:read', 'caches:write'],
      redirectUris: ['https://partner.example/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspaceId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;

    // A resource server as a /v1 route would be built: the real guard and scope check.
    resourceServer = Fastify();
    registerProblemHandler(resourceServer);
    await resourceServer.register(async (api) => {
      requireCredential(api, store.db);
      api.get('/caches', async (request) => ({
        workspaceId: requireScope(request, 'caches:read').workspaceId,
      }));
      api.post('/caches', async (request) => ({
        workspaceId: requireScope(request, 'caches:write').workspaceId,
      }));
    });
    resourceUrl = await resourceServer.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await resourceServer?.close();
    await app?.close();
    await store?.close();
  });

  async function expectProblem(response: Response, status: number, type: string) {
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({
      type: `https://edgegate.dev/problems/${type}`,
      status,
      detail: expect.any(String),
    });
  }

  it('answers a request without a token with 401 and a Bearer challenge', async () => {
    const response = await fetch(`${url}/v1/workspace`);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="edgegate"');
    await expectProblem(response, 401, 'auth.missing_credentials');
  });

  it('answers a token it does not know with 401 invalid_token', async () => {
    const response = await fetch(`${url}/v1/workspace`, {
      headers: { authorization: 'Bearer not-a-real-token' },
    });
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="edgegate", error="invalid_token"',
    );
    await expectProblem(response, 401, 'auth.invalid_token');
  });

  it('answers an expired access token with 401 invalid_token', async () => {
    const tokens = await obtainTokens(url, user, partner, { scope: 'caches:read', workspaceId });
    await store.db
      .updateTable('oauth_tokens')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id_hash', '=', sha256(tokens.access_token))
      .execute();
    const response = await fetch(`${url}/v1/workspace`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    await expectProblem(response, 401, 'auth.invalid_token');
  });

  it('does not take a refresh token as an access token', async () => {
    const tokens = await obtainTokens(url, user, partner, { scope: 'caches:read', workspaceId });
    const response = await fetch(`${url}/v1/workspace`, {
      headers: { authorization: `Bearer ${tokens.refresh_token}` },
    });
    await expectProblem(response, 401, 'auth.invalid_token');
  });

  it('answers a token without the needed scope with 403 insufficient_scope naming it', async () => {
    const tokens = await obtainTokens(url, user, partner, { scope: 'caches:read', workspaceId });
    const headers = { authorization: `Bearer ${tokens.access_token}` };

    const read = await fetch(`${resourceUrl}/caches`, { headers });
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({ workspaceId });

    const write = await fetch(`${resourceUrl}/caches`, { method: 'POST', headers });
    const challenge = write.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer realm="edgegate"/);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="caches:write"');
    await expectProblem(write, 403, 'auth.insufficient_scope');
  });
});
