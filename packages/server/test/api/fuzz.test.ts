// Hundreds of malformed requests against every writing endpoint: each answer is a 4xx
// problem+json, never a 5xx, and the store is unchanged afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Store } from '../../src/db/store.ts';
import { signUp } from '../../src/services/accounts.ts';
import { openTestStore } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';
import { accessTokenFor, consentedGrant } from '../helpers/tokens.ts';

/** Deterministic, so a failure can be replayed. */
function prng(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  Number.MAX_SAFE_INTEGER + 2,
  '',
  ' ',
  'x'.repeat(100_000),
  '🦄🚀 ünïcødé',
  '\u0000\u202e',
  '<script>alert(1)</script>',
  "'; drop table caches; --",
  [],
  [1, 2, 3],
  {},
  { nested: { deep: [null] } },
];

function malformedBodies(valid: Record<string, unknown>, count: number, seed: number): unknown[] {
  const random = prng(seed);
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const keys = Object.keys(valid);
  const bodies: unknown[] = [
    null,
    [],
    'a string',
    42,
    {},
    ...ODD_VALUES.filter((v) => typeof v !== 'object'),
  ];
  while (bodies.length < count) {
    const body: Record<string, unknown> = { ...valid };
    const mutations = 1 + Math.floor(random() * 3);
    for (let i = 0; i < mutations; i++) {
      const roll = random();
      if (roll < 0.5) body[pick(keys)] = pick(ODD_VALUES);
      else if (roll < 0.75) delete body[pick(keys)];
      else
        body[pick(['password', 'username', 'id', '__proto__', 'workspaceId', 'extra'])] =
          pick(ODD_VALUES);
    }
    bodies.push(body);
  }
  return bodies;
}

describe('malformed input never breaks the API', () => {
  let store: Store;
  let app: FastifyInstance;
  let token: string;
  let cacheId: string;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    app = await buildTestApp(store);
    const { user, personalWorkspace } = await signUp(store.db, {
      email: 'fuzz@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(app, store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read', 'caches:write', 'cacheRules:read', 'cacheRules:write'],
    });
    token = (await accessTokenFor(app, grant)).access_token;
    const created = await app.inject({
      method: 'POST',
      url: '/v1/caches',
      headers: { authorization: `Bearer ${token}` },
      payload: { name: 'Fuzz target', type: 'postgres', hostname: 'db.example.com', port: 5432 },
    });
    cacheId = created.json().data.id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  async function snapshot() {
    const tables = ['caches', 'cache_rules', 'api_keys', 'service_tokens', 'audit_events'];
    const counts: Record<string, unknown> = {};
    for (const table of tables) {
      counts[table] = (
        await sql<{ n: string }>`select count(*)::text as n from ${sql.table(table)}`.execute(
          store.db,
        )
      ).rows[0]?.n;
    }
    counts.cache = (
      await app.inject({
        url: `/v1/caches/${cacheId}`,
        headers: { authorization: `Bearer ${token}` },
      })
    ).body;
    return counts;
  }

  const endpoints = () => [
    {
      method: 'POST' as const,
      url: '/v1/caches',
      valid: { name: 'n', type: 'postgres', hostname: 'db.example.com', port: 5432 },
    },
    {
      method: 'PATCH' as const,
      url: `/v1/caches/${cacheId}`,
      valid: { name: 'n', port: 5432, defaultTtlSeconds: 30 },
    },
    {
      method: 'POST' as const,
      url: `/v1/caches/${cacheId}/rules`,
      valid: { kind: 'table', key: 'orders', mode: 'manual', ttlSeconds: 30 },
    },
    {
      method: 'POST' as const,
      url: '/v1/connection-strings',
      valid: { cacheId, connectionString: 'postgres://u:p@db.example.com:5432/app' },
    },
    { method: 'POST' as const, url: '/v1/apikeys', valid: { name: 'k', scopes: ['caches:read'] } },
    {
      method: 'POST' as const,
      url: '/v1/service-tokens',
      valid: { name: 't', accesses: [{ scope: 'caches:read' }] },
    },
  ];

  it('answers every malformed body with a 4xx problem and changes nothing', async () => {
    const before = await snapshot();
    let sent = 0;
    let created = 0;
    for (const [index, endpoint] of endpoints().entries()) {
      for (const body of malformedBodies(endpoint.valid, 150, 1000 + index)) {
        const response = await app.inject({
          method: endpoint.method,
          url: endpoint.url,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          payload: JSON.stringify(body),
        });
        sent += 1;
        const context = `${endpoint.method} ${endpoint.url} ${JSON.stringify(body).slice(0, 200)}`;
        // A mutation can leave a body valid (e.g. a changed name on PATCH); those must not break either.
        if (response.statusCode < 300) {
          if (endpoint.url === '/v1/caches') created += 1;
          continue;
        }
        expect(response.statusCode, context).toBeGreaterThanOrEqual(400);
        expect(response.statusCode, context).toBeLessThan(500);
        expect(response.headers['content-type'], context).toContain('application/problem+json');
        expect(response.json().detail, context).toBeTruthy();
      }
    }
    expect(sent).toBeGreaterThanOrEqual(900);
    const after = await snapshot();
    expect(Number(after.caches)).toBe(Number(before.caches) + created);
    // Valid mutations may create keys or tokens; the invariant is that nothing broke: the cache
    // the PATCHes aimed at is still there and reads fine.
    expect(JSON.parse(String(after.cache)).data.id).toBe(cacheId);
  });

  it('answers a malformed URL and an over-long id with a problem too', async () => {
    for (const url of ['/v1/caches/%', `/v1/caches/${'x'.repeat(600)}`]) {
      const response = await app.inject({ url, headers: { authorization: `Bearer ${token}` } });
      expect(response.statusCode, url).toBeGreaterThanOrEqual(400);
      expect(response.statusCode, url).toBeLessThan(500);
      expect(response.headers['content-type'], url).toContain('application/problem+json');
    }
  });

  it('answers broken JSON, wrong content types and oversized bodies with 4xx problems', async () => {
    const before = await snapshot();
    const cases = [
      { payload: '{"name": ', type: 'application/json' },
      { payload: 'name=x&type=postgres', type: 'application/x-www-form-urlencoded' },
      { payload: 'plain text', type: 'text/plain' },
      { payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }), type: 'application/json' },
    ];
    for (const c of cases) {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/caches',
        headers: { authorization: `Bearer ${token}`, 'content-type': c.type },
        payload: c.payload,
      });
      expect(response.statusCode, c.type).toBeGreaterThanOrEqual(400);
      expect(response.statusCode, c.type).toBeLessThan(500);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
    expect(await snapshot()).toEqual(before);
  });
});
