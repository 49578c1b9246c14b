// Sign-up, log-in and log-out through the console, on both stores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { openTestStore, storeKinds } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { ConsoleClient, csrfTokenOf } from './helpers/console-client.ts';
import { LOGIN_LIMITS } from '../src/services/login-throttle.ts';

describe.each(storeKinds)('accounts on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('signs up, creates a personal workspace and signs in', async () => {
    const client = new ConsoleClient(app);
    const location = await client.signUp('Ada@Example.com', 'correct horse battery', 'Ada');
    expect(location).toBe('/w/adas-workspace');
    const page = await client.get(location);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Ada&#39;s workspace');
    expect(page.body).toContain('ada@example.com');
    const user = await store.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', 'ada@example.com')
      .executeTakeFirstOrThrow();
    expect(user.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  });

  it('sets a session cookie that scripts cannot read and stores only its digest', async () => {
    const client = new ConsoleClient(app);
    const response = await client.post('/signup', {
      email: 'cookie@example.com',
      password: 'correct horse battery',
    });
    const session = response.cookies.find((c) => c.name === 'eg_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    expect(session?.secure).toBeFalsy();
    const rows = await store.db.selectFrom('sessions').select('id_hash').execute();
    expect(rows.map((r) => r.id_hash)).not.toContain(session?.value);
  });

  it('marks cookies Secure when PUBLIC_URL is https', async () => {
    const secureApp = await buildTestApp(store, { publicUrl: 'https://edgegate.example.com' });
    try {
      const response = await new ConsoleClient(secureApp).post('/signup', {
        email: 'secure@example.com',
        password: 'correct horse battery',
      });
      expect(response.cookies.find((c) => c.name === 'eg_session')?.secure).toBe(true);
    } finally {
      await secureApp.close();
    }
  });

  it('refuses a taken email and keeps what was typed, never the password', async () => {
    const client = new ConsoleClient(app);
    await client.signUp('taken@example.com');
    const again = await new ConsoleClient(app).post('/signup', {
      email: 'taken@example.com',
      password: 'another long password',
      name: 'Grace',
    });
    expect(again.statusCode).toBe(409);
    expect(again.body).toContain('An account with this email already exists');
    expect(again.body).toContain('value="taken@example.com"');
    expect(again.body).toContain('value="Grace"');
    expect(again.body).not.toContain('another long password');
  });

  it('explains each invalid field', async () => {
    const response = await new ConsoleClient(app).post('/signup', {
      email: 'not-an-email',
      password: 'short',
    });
    expect(response.statusCode).toBe(422);
    expect(response.body).toContain('Enter a valid email address');
    expect(response.body).toContain('Password must be at least 10 characters');
    expect(response.body).toContain('aria-invalid="true"');
  });

  it('logs in and out; the old session cookie stops working', async () => {
    const client = new ConsoleClient(app);
    await client.signUp('out@example.com');
    await client.post('/logout', {}, { from: '/workspaces' });
    expect((await client.get('/workspaces')).headers.location).toBe('/login?next=%2Fworkspaces');

    const login = await client.logIn('OUT@example.com');
    expect(login.statusCode).toBe(303);
    expect(login.headers.location).toBe('/workspaces');
    const stolen = client.cookies.get('eg_session');
    await client.post('/logout', {}, { from: '/workspaces' });
    const replay = await app.inject({
      url: '/workspaces',
      headers: { cookie: `eg_session=${stolen}` },
    });
    expect(replay.statusCode).toBe(303);
  });

  it('says a wrong password is wrong and keeps the email', async () => {
    await new ConsoleClient(app).signUp('wrong@example.com');
    const response = await new ConsoleClient(app, { ip: '10.0.0.2' }).logIn(
      'wrong@example.com',
      'not the password',
    );
    expect(response.statusCode).toBe(401);
    expect(response.body).toContain('The email or password is incorrect.');
    expect(response.body).toContain('value="wrong@example.com"');
    expect(response.body).not.toContain('not the password');
    expect(response.cookies.find((c) => c.name === 'eg_session')).toBeUndefined();
  });

  it('returns to a same-site page after log-in, never to another site', async () => {
    await new ConsoleClient(app).signUp('next@example.com');
    const local = await new ConsoleClient(app).post('/login', {
      email: 'next@example.com',
      password: 'correct horse battery',
      next: '/workspaces?x=1',
    });
    expect(local.headers.location).toBe('/workspaces?x=1');
    const evil = await new ConsoleClient(app).post('/login', {
      email: 'next@example.com',
      password: 'correct horse battery',
      next: '//evil.example.com/',
    });
    expect(evil.headers.location).toBe('/workspaces');
    for (const next of [
      '/\t/evil.example',
      '/\n/evil.example',
      '/\\evil.example',
      '/%09/evil.example',
      'https://evil.example/',
    ]) {
      const tricky = await new ConsoleClient(app, { ip: '10.9.0.1' }).post('/login', {
        email: 'next@example.com',
        password: 'correct horse battery',
        next,
      });
      const location = tricky.headers.location as string;
      expect(new URL(location, 'https://edgegate.example').origin, JSON.stringify(next)).toBe(
        'https://edgegate.example',
      );
      expect(location).not.toMatch(/[\t\n\\]/);
    }
  });

  it('never sends a logged-in user, or one logging in, to another site through next', async () => {
    const hostile = [
      '//evil.example',
      '/.//evil.example',
      '/..//evil.example',
      '/%2e//evil.example',
      '/%2e%2e//evil.example',
      '/./\\evil.example',
      '/\\evil.example',
      '/%2F%2Fevil.example',
      '/%2F/evil.example',
      '/%5C/evil.example',
      '/%5c%5cevil.example',
      '/\t/evil.example',
      '/.\n//evil.example',
      '/%09/evil.example',
      '/%0A/evil.example',
      'https://evil.example/',
      'https:/evil.example',
      'https:evil.example',
      '\\\\evil.example',
      ' //evil.example',
    ];
    await new ConsoleClient(app).signUp('hostile-next@example.com');
    const loggedIn = new ConsoleClient(app, { ip: '10.9.1.1' });
    await loggedIn.logIn('hostile-next@example.com');
    for (const next of hostile) {
      const viaGet = await loggedIn.get(`/login?next=${encodeURIComponent(next)}`);
      const viaPost = await new ConsoleClient(app, { ip: '10.9.1.2' }).post('/login', {
        email: 'hostile-next@example.com',
        password: 'correct horse battery',
        next,
      });
      expect([viaGet.statusCode, viaPost.statusCode], JSON.stringify(next)).toEqual([303, 303]);
      expect([viaGet.headers.location, viaPost.headers.location], JSON.stringify(next)).toEqual([
        '/workspaces',
        '/workspaces',
      ]);
    }
    const good = '/w/some-workspace/caches?tab=rules#top';
    expect((await loggedIn.get(`/login?next=${encodeURIComponent(good)}`)).headers.location).toBe(
      good,
    );
    const goodPost = await new ConsoleClient(app, { ip: '10.9.1.3' }).post('/login', {
      email: 'hostile-next@example.com',
      password: 'correct horse battery',
      next: '/a/./b/../c',
    });
    expect(goodPost.headers.location).toBe('/a/c');
  });

  it('rejects forms without a valid CSRF token or from another origin', async () => {
    const client = new ConsoleClient(app);
    await client.signUp('csrf@example.com');
    const missing = await client.post('/workspaces', { name: 'No token' }, { csrf: null });
    expect(missing.statusCode).toBe(403);
    expect(missing.body).toContain('This form has expired or did not come from Edgegate');
    const forged = await client.post('/workspaces', { name: 'Forged' }, { csrf: 'x'.repeat(43) });
    expect(forged.statusCode).toBe(403);
    const otherUser = new ConsoleClient(app);
    await otherUser.signUp('csrf2@example.com');
    const foreign = await client.post(
      '/workspaces',
      { name: 'Foreign token' },
      { csrf: csrfTokenOf((await otherUser.get('/workspaces')).body) },
    );
    expect(foreign.statusCode).toBe(403);
    const crossSite = await app.inject({
      method: 'POST',
      url: '/workspaces',
      payload: new URLSearchParams({
        _csrf: csrfTokenOf((await client.get('/workspaces')).body),
        name: 'X',
      }).toString(),
      headers: {
        cookie: client.cookieHeader,
        origin: 'https://evil.example.com',
        'content-type': 'application/x-www-form-urlencoded',
      },
    });
    expect(crossSite.statusCode).toBe(403);
    const names = await store.db.selectFrom('workspaces').select('name').execute();
    expect(names.map((n) => n.name)).not.toEqual(
      expect.arrayContaining(['No token', 'Forged', 'Foreign token', 'X']),
    );
  });

  it('refuses a console form from an opaque origin (Origin: null) even with the CSRF token', async () => {
    const client = new ConsoleClient(app);
    await client.signUp('opaque-origin@example.com');
    const submit = (origin: string, name: string) =>
      client.get('/workspaces').then((page) =>
        app.inject({
          method: 'POST',
          url: '/workspaces',
          payload: new URLSearchParams({ _csrf: csrfTokenOf(page.body), name }).toString(),
          headers: {
            cookie: client.cookieHeader,
            origin,
            'content-type': 'application/x-www-form-urlencoded',
          },
        }),
      );
    const opaque = await submit('null', 'From an opaque origin');
    expect(opaque.statusCode).toBe(403);
    expect(opaque.body).toContain('This form was submitted from another site.');
    const ours = await submit('http://localhost:8080', 'From our own page');
    expect(ours.statusCode).toBe(303);
    const names = (await store.db.selectFrom('workspaces').select('name').execute()).map(
      (n) => n.name,
    );
    expect(names).toContain('From our own page');
    expect(names).not.toContain('From an opaque origin');
  });

  it('tells browsers to send a real Origin with our own forms (same-origin referrer policy)', async () => {
    const page = await new ConsoleClient(app).get('/login');
    expect(page.headers['referrer-policy']).toBe('same-origin');
  });

  it('throttles repeated failures per account, even with the right password', async () => {
    await new ConsoleClient(app).signUp('victim@example.com');
    for (let i = 0; i < 5; i++) {
      const r = await new ConsoleClient(app, { ip: `10.1.0.${i}` }).logIn(
        'victim@example.com',
        `guess ${i} guess`,
      );
      expect(r.statusCode).toBe(401);
    }
    const blocked = await new ConsoleClient(app, { ip: '10.1.0.99' }).logIn('victim@example.com');
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(blocked.body).toContain('Too many failed log-in attempts');
  });

  it('counts parallel guesses too: a burst cannot outrun the limit', async () => {
    await new ConsoleClient(app).signUp('burst@example.com');
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        new ConsoleClient(app, { ip: `10.3.0.${i}` }).logIn(
          'burst@example.com',
          `guess ${i} guess`,
        ),
      ),
    );
    const codes = results.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 401)).toHaveLength(LOGIN_LIMITS.perAccount);
    expect(codes.filter((c) => c === 429)).toHaveLength(12 - LOGIN_LIMITS.perAccount);
  });

  it('throttles one address spraying many accounts', async () => {
    const ip = '10.2.0.1';
    for (let i = 0; i < LOGIN_LIMITS.perIp; i++) {
      const r = await new ConsoleClient(app, { ip }).logIn(
        `nobody${i}@example.com`,
        'whatever whatever',
      );
      expect(r.statusCode).toBe(401);
    }
    await new ConsoleClient(app).signUp('spray@example.com');
    const blocked = await new ConsoleClient(app, { ip }).logIn('spray@example.com');
    expect(blocked.statusCode).toBe(429);
    const elsewhere = await new ConsoleClient(app, { ip: '10.2.0.2' }).logIn('spray@example.com');
    expect(elsewhere.statusCode).toBe(303);
  });
});
