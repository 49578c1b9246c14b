// How /v1 reads a credential and checks its scopes: the three accepted Authorization forms, 403
// insufficient_scope naming the scope, narrowing to caches, and child credentials never outliving
// their creator. Requests go through a real Fastify app; the principals are plain values.
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertCacheScope,
  cachesWithScope,
  childExpiry,
  insufficientScope,
  parseAuthorization,
  REALM,
  requireScope,
  requireWorkspaceScope,
  type Principal,
} from '../src/plugins/credential-auth.ts';
import { Problem } from '../src/problem.ts';

function principal(
  access: Record<string, string[] | null>,
  expiresAt: Date | null = null,
): Principal {
  return {
    kind: 'api_key',
    credentialId: 'key_1',
    userId: 'usr_1',
    workspaceId: 'wsp_1',
    workspace: { id: 'wsp_1', name: 'W', slug: 'w', createdAt: new Date(0) },
    clientId: null,
    access: new Map(
      Object.entries(access).map(([scope, caches]) => [scope, caches && new Set(caches)]),
    ),
    expiresAt,
  };
}

function problemOf(run: () => unknown): Problem {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(Problem);
    return error as Problem;
  }
  throw new Error('expected a Problem');
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('parseAuthorization', () => {
  it.each([
    ['Bearer abc.def', { kind: 'oauth', token: 'abc.def' }],
    ['bearer   abc  ', { kind: 'oauth', token: 'abc' }],
    ['Bearer egk_123', { kind: 'api_key', token: 'egk_123' }],
    [
      `Basic ${base64('ada@example.com:egk_123')}`,
      { kind: 'api_key', token: 'egk_123', email: 'ada@example.com' },
    ],
    [
      `basic ${base64('a:b@example.com:egk_9')} `,
      { kind: 'api_key', token: 'egk_9', email: 'a:b@example.com' },
    ],
    ['st_abc123:egst_x-y_z', { kind: 'service_token', id: 'st_abc123', token: 'egst_x-y_z' }],
    ['  st_abc123:egst_x  ', { kind: 'service_token', id: 'st_abc123', token: 'egst_x' }],
  ])('reads %j', (header, presented) => {
    expect(parseAuthorization(header)).toEqual(presented);
  });

  it.each([
    [undefined],
    [''],
    ['Bearer'],
    ['Bearer a b'],
    ['Token abc'],
    ['xBearer abc'],
    [`Basic ${base64('ada@example.com:not-a-key')}`],
    [`Basic ${base64(':egk_123')}`],
    [`Basic ${base64('egk_123')}`],
    ['Basic not base64!'],
    [`Basic ${base64('ada@example.com:egk_1')} extra`],
    ['st_abc:egk_123'],
    ['st_:egst_x'],
    ['st_abc:egst_'],
    ['st_abc:egst_x!'],
    ['xst_abc:egst_x'],
    ['st_abc:egst_x y'],
  ])('refuses %j', (header) => {
    expect(parseAuthorization(header)).toBeUndefined();
  });
});

describe('scope checks', () => {
  it('insufficient_scope is a 403 whose WWW-Authenticate names the scopes (RFC 6750 §3.1)', () => {
    const one = insufficientScope('metrics:read', 'You need it.');
    expect(one).toMatchObject({
      code: 'auth.insufficient_scope',
      status: 403,
      message: 'You need it.',
    });
    expect(one.headers).toEqual({
      'www-authenticate':
        'Bearer realm="edgegate", error="insufficient_scope", scope="metrics:read"',
    });
    expect(insufficientScope(['a:read', 'b:write'], 'x').headers['www-authenticate']).toBe(
      `${REALM}, error="insufficient_scope", scope="a:read b:write"`,
    );
  });

  it('a cache scope holds for every cache, for the named caches only, or not at all', () => {
    const p = principal({ 'caches:read': null, 'caches:write': ['cch_1'] });
    expect(() => assertCacheScope(p, 'caches:read', 'cch_9')).not.toThrow();
    expect(() => assertCacheScope(p, 'caches:write', 'cch_1')).not.toThrow();
    const other = problemOf(() => assertCacheScope(p, 'caches:write', 'cch_2'));
    expect(other).toMatchObject({ status: 403, message: expect.stringContaining('other caches') });
    expect(other.headers['www-authenticate']).toContain('scope="caches:write"');
    const none = problemOf(() => assertCacheScope(p, 'metrics:read', 'cch_1'));
    expect(none).toMatchObject({
      status: 403,
      message: 'This credential lacks the scope metrics:read.',
    });
  });

  it('lists the caches a scope reaches: null for all, the names, or none', () => {
    const p = principal({ 'caches:read': null, 'caches:write': ['cch_1', 'cch_2'] });
    expect(cachesWithScope(p, 'caches:read')).toBeNull();
    expect([...cachesWithScope(p, 'caches:write')!]).toEqual(['cch_1', 'cch_2']);
    expect([...cachesWithScope(p, 'metrics:read')!]).toEqual([]);
  });
});

describe('childExpiry', () => {
  const cap = new Date('2030-01-01T00:00:00.000Z');

  it('a creator that never expires: the child gets what it asks for, or never expires', () => {
    const p = principal({}, null);
    expect(childExpiry(p, '2040-01-01T00:00:00.000Z')).toEqual(
      new Date('2040-01-01T00:00:00.000Z'),
    );
    expect(childExpiry(p, null)).toBeNull();
    expect(childExpiry(p, undefined)).toBeNull();
    expect(childExpiry(p, '')).toBeNull();
  });

  it('a creator that expires: the child ends no later, and by default with it', () => {
    const p = principal({}, cap);
    expect(childExpiry(p, null)).toBe(cap);
    expect(childExpiry(p, '2029-06-01T00:00:00.000Z')).toEqual(
      new Date('2029-06-01T00:00:00.000Z'),
    );
    expect(childExpiry(p, cap.toISOString())).toEqual(cap);
    const later = problemOf(() => childExpiry(p, '2030-01-01T00:00:00.001Z'));
    expect(later).toMatchObject({ code: 'validation_failed', status: 422 });
    expect(later.message).toBe(
      'expiresAt: must not be later than 2030-01-01T00:00:00.000Z, when the credential creating it expires',
    );
    expect(later.errors).toEqual([
      {
        path: 'expiresAt',
        message:
          'must not be later than 2030-01-01T00:00:00.000Z, when the credential creating it expires',
      },
    ]);
  });
});

describe('requireScope and requireWorkspaceScope on a route', () => {
  let app: FastifyInstance;
  const principals: Record<string, Principal> = {
    all: principal({ 'caches:read': null }),
    narrowed: principal({ 'caches:read': ['cch_1'] }),
    none: principal({ 'metrics:read': null }),
  };

  beforeAll(async () => {
    app = Fastify();
    app.decorateRequest('principal', undefined);
    app.addHook('onRequest', async (request) => {
      request.principal = principals[String(request.headers['x-principal'])];
    });
    app.setErrorHandler((error: Problem, _request, reply) => {
      void reply
        .status(error.status)
        .headers(error.headers)
        .send({ code: error.code, detail: error.message });
    });
    app.get('/scope', async (request) => ({
      workspace: requireScope(request, 'caches:read').workspaceId,
    }));
    app.get('/workspace-scope', async (request) => ({
      workspace: requireWorkspaceScope(request, 'caches:read').workspaceId,
    }));
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
  });

  const call = (url: string, who?: string) =>
    app.inject({ url, headers: who ? { 'x-principal': who } : {} });

  it('answers 401 without a principal, with the realm', async () => {
    for (const url of ['/scope', '/workspace-scope']) {
      const response = await call(url);
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual({
        code: 'auth.missing_credentials',
        detail: 'Authentication required.',
      });
      expect(response.headers['www-authenticate']).toBe(REALM);
    }
  });

  it('answers 403 insufficient_scope to a principal without the scope', async () => {
    for (const url of ['/scope', '/workspace-scope']) {
      const response = await call(url, 'none');
      expect(response.statusCode).toBe(403);
      expect(response.json()).toEqual({
        code: 'auth.insufficient_scope',
        detail: 'This credential lacks the scope caches:read.',
      });
      expect(response.headers['www-authenticate']).toBe(
        `${REALM}, error="insufficient_scope", scope="caches:read"`,
      );
    }
  });

  it('lets a scope narrowed to some caches through requireScope but not requireWorkspaceScope', async () => {
    expect((await call('/scope', 'narrowed')).json()).toEqual({ workspace: 'wsp_1' });
    const refused = await call('/workspace-scope', 'narrowed');
    expect(refused.statusCode).toBe(403);
    expect(refused.json().detail).toBe(
      'This credential holds caches:read only for some caches, and this needs it for the whole workspace.',
    );
    expect((await call('/workspace-scope', 'all')).json()).toEqual({ workspace: 'wsp_1' });
  });
});
