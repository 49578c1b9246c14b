// Every /v1 endpoint with every kind of credential (SPEC §5): an OAuth access token, an API key
// as Bearer and as Basic email:key, and a service token. Each walks the same sequence of calls
// over its own resources; the few answers that differ by kind are the documented rules (only
// people own API keys; service tokens are managed by first-party credentials only).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { API_SCOPES } from '@edgegate/contract';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { createApiKey } from '../../src/services/api-keys.ts';
import { consolePrincipal } from '../../src/routes/console/principal.ts';
import { openTestStore } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant, serviceTokenFor } from '../helpers/tokens.ts';

type Kind = 'oauth' | 'apiKeyBearer' | 'apiKeyBasic' | 'serviceToken';
const KINDS: Kind[] = ['oauth', 'apiKeyBearer', 'apiKeyBasic', 'serviceToken'];

/** What differs by credential kind, and why. */
const EXPECTED: Record<string, Partial<Record<Kind, number>>> = {
  // An API key belongs to a person; a service token has none to bind it to.
  'GET /v1/apikeys': { serviceToken: 403 },
  'POST /v1/apikeys': { serviceToken: 403 },
  'DELETE /v1/apikeys/{id}': { serviceToken: 403 },
  // Service tokens outlive app authorizations: partner apps cannot manage them, and a service
  // token cannot mint or revoke its peers (a person, an admin, does).
  'GET /v1/service-tokens': { oauth: 403, serviceToken: 403 },
  'POST /v1/service-tokens': { oauth: 403, serviceToken: 403 },
  'DELETE /v1/service-tokens/{id}': { oauth: 403, serviceToken: 403 },
};

describe('every endpoint with every credential kind', () => {
  let store: Store;
  let app: FastifyInstance;
  const headers = {} as Record<Kind, string>;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store);
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'matrix@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: [...API_SCOPES],
    });
    headers.oauth = `Bearer ${(await accessTokenFor(app, grant)).access_token}`;
    const { principal } = await consolePrincipal(store.db, user, personalWorkspace.slug);
    const { key } = await createApiKey(store.db, principal, { name: 'matrix' });
    headers.apiKeyBearer = `Bearer ${key}`;
    headers.apiKeyBasic = `Basic ${Buffer.from(`matrix@example.com:${key}`).toString('base64')}`;
    headers.serviceToken = await serviceTokenFor(store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: [...API_SCOPES],
    });
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it.each(KINDS)('%s reaches every endpoint', async (kind) => {
    const seen: string[] = [];
    const call = async (method: string, url: string, payload?: unknown, ok = 200) => {
      const route = `${method} ${url
        .replace(/\/(cch|rul|ak|st|conn|wh)_[A-Za-z0-9]+/g, '/{id}')
        .replace(/\/sessions\/\d+$/, '/sessions/{id}')
        .replace(/\?.*$/, '')}`;
      const response = await app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: headers[kind] },
        ...(payload === undefined ? {} : { payload: payload as object }),
      });
      const expected = EXPECTED[route]?.[kind] ?? ok;
      expect(response.statusCode, `${kind}: ${route} → ${response.body}`).toBe(expected);
      if (response.statusCode >= 400)
        expect(response.headers['content-type']).toContain('application/problem+json');
      seen.push(route);
      return response.statusCode < 300 && response.body ? response.json() : undefined;
    };

    await call('GET', '/v1/workspace');
    const cache = (
      await call(
        'POST',
        '/v1/caches',
        { name: `m-${kind}`, type: 'postgres', hostname: 'db.example.com', port: 5432 },
        201,
      )
    ).data;
    await call('GET', '/v1/caches');
    await call('GET', `/v1/caches/${cache.id}`);
    await call('PATCH', `/v1/caches/${cache.id}`, { defaultTtlSeconds: 30 });
    const rule = (
      await call(
        'POST',
        `/v1/caches/${cache.id}/rules`,
        { kind: 'table', key: 'orders', mode: 'manual', ttlSeconds: 5 },
        201,
      )
    ).data;
    await call('GET', `/v1/caches/${cache.id}/rules`);
    await call('GET', `/v1/caches/${cache.id}/rules/${rule.id}`);
    await call('PATCH', `/v1/caches/${cache.id}/rules/${rule.id}`, { ttlSeconds: 9 });
    await call('DELETE', `/v1/caches/${cache.id}/rules/${rule.id}`, undefined, 204);
    await call('GET', `/v1/caches/${cache.id}/metrics`);
    // This app runs no edge: the sessions routes say so (501) for every kind alike.
    await call('GET', `/v1/caches/${cache.id}/sessions`, undefined, 501);
    await call('DELETE', `/v1/caches/${cache.id}/sessions/1073741825`, undefined, 501);
    await call('POST', '/v1/connection-strings', {
      cacheId: cache.id,
      connectionString: 'postgres://app:pw@db.example.com:5432/shop',
    });
    await call('GET', '/v1/apikeys');
    const key = await call('POST', '/v1/apikeys', { name: `k-${kind}` }, 201);
    if (key) await call('DELETE', `/v1/apikeys/${key.data.id}`, undefined, 204);
    else await call('DELETE', '/v1/apikeys/ak_missing', undefined, 404);
    await call('GET', '/v1/service-tokens');
    const token = await call(
      'POST',
      '/v1/service-tokens',
      { name: `t-${kind}`, accesses: [{ scope: 'caches:read' }] },
      201,
    );
    if (token) await call('DELETE', `/v1/service-tokens/${token.data.id}`, undefined, 204);
    else await call('DELETE', '/v1/service-tokens/st_missing', undefined, 404);
    await call('GET', '/v1/connection-types');
    const session = (
      await call(
        'POST',
        '/v1/connect/sessions',
        { type: 'postgresql', name: 'n', redirect_url: 'https://partner.example/cb' },
        201,
      )
    ).data;
    await call('GET', `/v1/connect/sessions/${session.token}`);
    // A code that was never issued: the exchange answers 404 for every kind alike.
    await call('POST', '/v1/connect/exchange', { code: 'egcc_never-issued' }, 404);
    await call('GET', '/v1/connections');
    await call('GET', '/v1/connections/conn_missing', undefined, 404);
    await call('DELETE', '/v1/connections/conn_missing', undefined, 404);
    await call('POST', '/v1/connections/conn_missing/cache', {}, 404);
    await call('GET', '/v1/events');
    const hook = (await call('POST', '/v1/webhooks', { url: 'https://db.example.com/hooks' }, 201))
      .data;
    await call('GET', '/v1/webhooks');
    await call('GET', `/v1/webhooks/${hook.id}/deliveries`);
    await call('POST', `/v1/webhooks/${hook.id}/rotate-secret`, { overlapSeconds: 0 });
    await call('POST', `/v1/webhooks/${hook.id}/test`, {}, 202);
    await call('DELETE', `/v1/webhooks/${hook.id}`, undefined, 204);
    await call('DELETE', `/v1/caches/${cache.id}`, undefined, 204);

    // Every documented /v1 operation was called.
    const spec = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(spec.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map(
        (method) => `${method.toUpperCase()} ${path.replace(/\{[^}]+\}/g, '{id}')}`,
      ),
    );
    const called = new Set(
      seen.map((route) =>
        route.replace(/\/connect\/sessions\/egct_[^/]+/, '/connect/sessions/{id}'),
      ),
    );
    expect(documented.filter((route) => !called.has(route))).toEqual([]);
  });
});
