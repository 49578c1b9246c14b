// @edgegate/sdk against a real, listening Edgegate: a partner connects with PKCE (consent driven
// over HTTP as a browser would), manages caches with the typed client, survives token expiry
// and rotation, learns of revocation, runs the hosted connect flow and verifies the webhook that
// follows; a desktop app signs in on a loopback redirect and a headless one with the device flow.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { builtinModules } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import {
  EdgegateApiError,
  EdgegateAuthError,
  EdgegateClient,
  OAuthError,
  WebhookSignatureError,
  connectPageUrl,
  createAuthorizationUrl,
  createConnectSession,
  exchangeCode,
  exchangeConnectCode,
  revoke,
  signWebhook,
  toEdgeConnectionString,
  verifyWebhook,
  type AppScope,
  type TokenSet,
} from '@edgegate/sdk';
import { deviceLogin, loopbackLogin, type DevicePrompt } from '@edgegate/sdk/node';
import type { Store } from '../src/db/store.ts';
import type { CookieFetch } from './helpers/browserless.ts';
import { openTestStore } from './helpers/stores.ts';
import { startListeningApp } from './helpers/listening-app.ts';
import {
  approveDevice,
  followToCallback,
  formOf,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  submitConsent,
  textOf,
  userIdOf,
  type RegisteredPartner,
} from './helpers/oauth-flow.ts';

const WEB_SCOPES: AppScope[] = [
  'caches:read',
  'caches:write',
  'cacheRules:read',
  'cacheRules:write',
  'connections:read',
  'connections:write',
  'metrics:read',
];

/** A local HTTP server that records each request and answers it as `answer` says. */
interface StubAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

async function startStub(answer: (nth: number) => StubAnswer) {
  const requests: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] =
    [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      const { status, headers = {}, body } = answer(requests.length);
      res.writeHead(status, headers).end(body === undefined ? undefined : JSON.stringify(body));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string) {
  for (let i = 0; i < 100; i++) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('@edgegate/sdk against a running Edgegate', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspace: { id: string; slug: string };
  let web: RegisteredPartner;
  let cli: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    const ownerId = await userIdOf(store.db, 'owner@partner.example');
    web = await registerPartner(store.db, ownerId, {
      name: 'Partner Dashboards',
      redirectUris: ['https://partner.example/callback'],
      scopes: WEB_SCOPES,
    });
    cli = await registerPartner(store.db, ownerId, {
      name: 'Partner CLI',
      clientType: 'public',
      scopes: ['caches:read', 'caches:write', 'offline_access'],
      redirectUris: ['http://127.0.0.1/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspace = await personalWorkspaceOf(store.db, 'ada@example.com');
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  /** The user, logged in, opens `authorizationUrl`, allows their workspace, and lands on the callback. */
  async function consent(authorizationUrl: string, decision: 'allow' | 'deny' = 'allow') {
    const { response } = await user.follow(authorizationUrl, `${url}/`);
    const page = await response.text();
    expect(response.status, page.slice(0, 300)).toBe(200);
    const decided = await submitConsent(url, user, page, { decision, workspace: workspace.id });
    return followToCallback(url, user, decided);
  }

  /** The web partner's whole connect: authorization URL, consent, callback checks, code exchange. */
  async function connectWebPartner(): Promise<TokenSet> {
    const request = await createAuthorizationUrl({
      baseUrl: url,
      clientId: web.clientId,
      redirectUri: web.redirectUri,
      scopes: WEB_SCOPES,
    });
    const callback = await consent(request.url);
    return exchangeCode({
      baseUrl: url,
      clientId: web.clientId,
      clientSecret: web.clientSecret!,
      redirectUri: web.redirectUri,
      code: callback.searchParams.get('code')!,
      codeVerifier: request.codeVerifier,
      state: callback.searchParams.get('state'),
      expectedState: request.state,
      iss: callback.searchParams.get('iss'),
    });
  }

  function clientFor(
    tokens: TokenSet,
    options: Partial<ConstructorParameters<typeof EdgegateClient>[0]> = {},
  ) {
    return new EdgegateClient({
      baseUrl: url,
      credentials: {
        oauth: { ...tokens, clientId: web.clientId, clientSecret: web.clientSecret! },
      },
      ...options,
    });
  }

  it('builds an authorization URL with PKCE S256, state and the workspace hint', async () => {
    const request = await createAuthorizationUrl({
      issuer: `${url}/`,
      clientId: web.clientId,
      redirectUri: web.redirectUri,
      scopes: ['caches:read', 'metrics:read'],
      workspaceHint: workspace.slug,
    });
    const sent = new URL(request.url);
    expect(`${sent.origin}${sent.pathname}`).toBe(`${url}/oauth2/auth`);
    expect(Object.fromEntries(sent.searchParams)).toEqual({
      response_type: 'code',
      client_id: web.clientId,
      redirect_uri: web.redirectUri,
      scope: 'caches:read metrics:read',
      state: request.state,
      code_challenge: createHash('sha256').update(request.codeVerifier).digest('base64url'),
      code_challenge_method: 'S256',
      workspace: workspace.slug,
    });
    expect(request.codeVerifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const other = await createAuthorizationUrl({
      baseUrl: url,
      clientId: web.clientId,
      redirectUri: web.redirectUri,
      scopes: ['caches:read'],
    });
    expect(other.state).not.toBe(request.state);
    expect(other.codeVerifier).not.toBe(request.codeVerifier);
  });

  it('connects a partner and manages caches, rules and connection strings with the client', async () => {
    const tokens = await connectWebPartner();
    expect(tokens.workspaceId).toBe(workspace.id);
    expect(tokens.refreshToken).toBeTruthy();
    expect(tokens.scope.split(' ').sort()).toEqual([...WEB_SCOPES].sort());
    expect(tokens.expiresAt).toBeGreaterThan(Date.now() + 3500_000);

    const client = clientFor(tokens);
    expect((await client.workspace.get()).id).toBe(workspace.id);

    const created = [];
    for (const name of ['orders', 'billing', 'search']) {
      created.push(
        await client.caches.create({ name, type: 'postgres', hostname: '127.0.0.1', port: 5432 }),
      );
    }
    const pages = [];
    for await (const page of client.caches.pages({ limit: 2 })) pages.push(page);
    expect(pages.map((page) => page.data.length)).toEqual([2, 1]);
    expect(pages.at(-1)!.nextCursor).toBeNull();
    expect(pages.flatMap((page) => page.data.map((cache) => cache.name)).sort()).toEqual([
      'billing',
      'orders',
      'search',
    ]);

    const cache = created[0]!;
    expect(await client.caches.get(cache.id)).toEqual(cache);
    const updated = await client.caches.update(cache.id, { defaultTtlSeconds: 120 });
    expect(updated.defaultTtlSeconds).toBe(120);

    const rule = await client.rules.create(cache.id, {
      kind: 'table',
      key: 'public.orders',
      mode: 'manual',
      ttlSeconds: 30,
    });
    expect((await client.rules.list(cache.id)).data.map((r) => r.id)).toEqual([rule.id]);
    expect((await client.rules.update(cache.id, rule.id, { mode: 'off' })).mode).toBe('off');
    expect((await client.rules.get(cache.id, rule.id)).mode).toBe('off');
    await client.rules.delete(cache.id, rule.id);
    expect((await client.rules.list(cache.id)).data).toEqual([]);

    const metrics = await client.caches.metrics(cache.id, { window: '15m' });
    expect(metrics).toMatchObject({ cacheId: cache.id, window: '15m', queries: 0 });

    const origin = 'postgres://app:s3cr%40t@db.internal:5432/orders?sslmode=require';
    const { connectionString } = await client.connectionStrings.create({
      cacheId: cache.id,
      connectionString: origin,
    });
    const local = toEdgeConnectionString({
      cacheId: cache.id,
      cacheType: 'postgres',
      connectionString: origin,
      edgeHost: 'localhost',
      edgePort: 6432,
    });
    expect(local).toBe(connectionString);
    expect(connectionString).toBe(
      `postgres://app:s3cr%40t@localhost:6432/orders?sslmode=require&application_name=${cache.id}`,
    );

    const key = await client.apiKeys.create({ name: 'partner backend', scopes: ['caches:read'] });
    expect(key.key).toMatch(/^egk_/);
    const byKey = new EdgegateClient({ baseUrl: url, credentials: { apiKey: key.key } });
    expect((await byKey.caches.list({ limit: 100 })).data).toHaveLength(3);
    expect((await client.apiKeys.list()).data.map((k) => k.id)).toContain(key.id);
    await client.apiKeys.delete(key.id);

    await client.caches.delete(cache.id);
    const gone = await client.caches.get(cache.id).catch((error: unknown) => error);
    expect(gone).toBeInstanceOf(EdgegateApiError);
    expect((gone as EdgegateApiError).status).toBe(404);
  });

  it('surfaces problem+json as EdgegateApiError with type, status and field errors', async () => {
    const client = clientFor(await connectWebPartner());
    const error = await client.caches
      .create({ name: 'bad', type: 'postgres', hostname: '127.0.0.1', port: 70000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgegateApiError);
    const problem = error as EdgegateApiError;
    expect(problem.status).toBe(422);
    expect(problem.type).toBe('https://edgegate.dev/problems/validation_failed');
    expect(problem.title).toBe('Unprocessable content');
    expect(problem.errors).toEqual([{ path: 'port', message: 'must be between 1 and 65535' }]);
    expect(problem.detail).toContain('port');

    const missing = await client.rules.list('cch_doesnotexist').catch((e: unknown) => e);
    expect(missing).toMatchObject({ name: 'EdgegateApiError', status: 404 });
  });

  it('shares one refresh among concurrent calls with an expired token and hands the new pair to onTokens', async () => {
    const tokens = await connectWebPartner();
    const tokenRequests: string[] = [];
    const counting: typeof fetch = (input, init) => {
      if (String(input) === `${url}/oauth2/token`) tokenRequests.push(String(init?.body));
      return fetch(input, init);
    };
    const rotated: TokenSet[] = [];
    const client = clientFor(
      { ...tokens, expiresAt: Date.now() - 1000 },
      { fetch: counting, onTokens: (next) => void rotated.push(next) },
    );
    const answers = await Promise.all([
      client.workspace.get(),
      client.workspace.get(),
      client.caches.list(),
      client.caches.list(),
      client.connections.list(),
    ]);
    expect(answers[0].id).toBe(workspace.id);
    expect(tokenRequests).toHaveLength(1);
    expect(tokenRequests[0]).toContain('grant_type=refresh_token');
    expect(rotated).toHaveLength(1);
    expect(rotated[0]!.accessToken).not.toBe(tokens.accessToken);
    expect(rotated[0]!.refreshToken).not.toBe(tokens.refreshToken);
    expect(rotated[0]!.workspaceId).toBe(workspace.id);
    expect(rotated[0]!.expiresAt).toBeGreaterThan(Date.now() + 3500_000);

    // A token the API calls invalid (401 invalid_token) is refreshed once too, however many
    // calls were refused with it.
    tokenRequests.length = 0;
    const refused = clientFor(
      { ...rotated[0]!, accessToken: 'not-a-live-token', expiresAt: Date.now() + 3600_000 },
      { fetch: counting, onTokens: (next) => void rotated.push(next) },
    );
    const again = await Promise.all([refused.workspace.get(), refused.workspace.get()]);
    expect(again.map((w) => w.id)).toEqual([workspace.id, workspace.id]);
    expect(tokenRequests).toHaveLength(1);
    expect(rotated).toHaveLength(2);
  });

  it('throws EdgegateAuthError once the authorization is revoked', async () => {
    const tokens = await connectWebPartner();
    const tokenRequests: string[] = [];
    const counting: typeof fetch = (input, init) => {
      if (String(input) === `${url}/oauth2/token`) tokenRequests.push(String(init?.body));
      return fetch(input, init);
    };
    const client = clientFor(tokens, { fetch: counting });
    expect((await client.workspace.get()).id).toBe(workspace.id);

    await revoke({
      baseUrl: url,
      clientId: web.clientId,
      clientSecret: web.clientSecret!,
      token: tokens.refreshToken!,
      tokenTypeHint: 'refresh_token',
    });
    const error = await client.workspace.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgegateAuthError);
    expect((error as EdgegateAuthError).cause).toBeInstanceOf(OAuthError);
    expect(((error as EdgegateAuthError).cause as OAuthError).error).toBe('invalid_grant');
    expect(tokenRequests).toHaveLength(1);
    // Known dead: later calls fail at once, without another refresh.
    await expect(client.caches.list()).rejects.toBeInstanceOf(EdgegateAuthError);
    expect(tokenRequests).toHaveLength(1);
  });

  it('refuses a callback whose state or issuer is not the expected one', async () => {
    const common = {
      baseUrl: url,
      clientId: web.clientId,
      clientSecret: web.clientSecret!,
      redirectUri: web.redirectUri,
      code: 'unused',
      codeVerifier: 'unused',
    };
    await expect(
      exchangeCode({ ...common, state: 'forged', expectedState: 'mine' }),
    ).rejects.toMatchObject({ name: 'OAuthError', error: 'state_mismatch' });
    await expect(
      exchangeCode({
        ...common,
        iss: 'https://evil.example',
        state: 'mine',
        expectedState: 'mine',
      }),
    ).rejects.toMatchObject({ name: 'OAuthError', error: 'issuer_mismatch' });
  });

  it('waits out 429 with Retry-After and retries with the same Idempotency-Key', async () => {
    const cache = { id: 'cch_x', name: 'orders' };
    const stub = await startStub((nth): StubAnswer =>
      nth === 1
        ? {
            status: 429,
            headers: { 'retry-after': '1', 'content-type': 'application/problem+json' },
            body: {
              type: 'https://edgegate.dev/problems/rate_limited',
              title: 'Too many requests',
              status: 429,
            },
          }
        : { status: 201, headers: { 'content-type': 'application/json' }, body: { data: cache } },
    );
    try {
      const client = new EdgegateClient({ baseUrl: stub.url, credentials: { apiKey: 'egk_test' } });
      const started = Date.now();
      const created = await client.caches.create({
        name: 'orders',
        type: 'postgres',
        hostname: '127.0.0.1',
        port: 5432,
      });
      expect(created).toEqual(cache);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      expect(stub.requests).toHaveLength(2);
      const keys = stub.requests.map((r) => r.headers['idempotency-key']);
      expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(keys[1]).toBe(keys[0]);
      expect(stub.requests.map((r) => r.headers.authorization)).toEqual([
        'Bearer egk_test',
        'Bearer egk_test',
      ]);

      // A new logical call gets a new key; with no retries left, the 429 is the caller's.
      const impatient = new EdgegateClient({
        baseUrl: stub.url,
        credentials: { serviceToken: { id: 'st_1', token: 'egst_2' } },
        maxRetries: 0,
      });
      stub.requests.length = 0;
      const refused = await impatient.caches
        .create({ name: 'x', type: 'postgres', hostname: '127.0.0.1', port: 5432 })
        .catch((e: unknown) => e);
      expect(refused).toMatchObject({ name: 'EdgegateApiError', status: 429 });
      expect((refused as EdgegateApiError).headers.get('retry-after')).toBe('1');
      expect(stub.requests[0]!.headers.authorization).toBe('st_1:egst_2');
      expect(stub.requests[0]!.headers['idempotency-key']).not.toBe(keys[0]);
    } finally {
      await stub.close();
    }
  });

  it('runs the hosted connect flow and delivers a webhook that verifyWebhook accepts', async () => {
    const client = clientFor(await connectWebPartner());
    const receiver = await startStub(() => ({ status: 200 }));
    try {
      const hook = await client.webhooks.create({
        url: `${receiver.url}/edgegate`,
        events: ['connection.created'],
      });
      expect(hook.secret).toMatch(/^whsec_/);
      expect((await client.webhooks.list()).data.map((w) => w.id)).toEqual([hook.id]);
      expect((await client.connectionTypes.list()).map((t) => t.id)).toContain('postgresql');

      const session = await createConnectSession(client, {
        type: 'postgresql',
        name: 'Orders DB',
        redirect_url: 'https://partner.example/connected',
      });
      expect((await client.connect.getSession(session.token)).status).toBe('pending');

      // The user fills in the hosted page (no browser needed: it works without JavaScript).
      const pageUrl = connectPageUrl(session, 'click-1');
      expect(new URL(pageUrl).searchParams.get('state')).toBe('click-1');
      const page = await fetch(pageUrl);
      expect(page.status).toBe(200);
      const form = formOf(await page.text(), 'connect-form');
      expect(form.fields.state).toBe('click-1');
      const submitted = await fetch(new URL(form.action, url), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url },
        body: new URLSearchParams({
          ...form.fields,
          type: 'postgresql',
          'f.host': '127.0.0.1',
          'f.port': '5432',
          'f.database': 'test',
          'f.user': 'postgres',
          'f.password': 'unused with trust auth',
        }).toString(),
      });
      const done = await submitted.text();
      expect(submitted.status, textOf(done).slice(0, 300)).toBe(200);
      const href = /<a href="([^"]+)" id="continue"/.exec(done)?.[1]?.replace(/&amp;/g, '&');
      const landed = new URL(href!);
      expect(`${landed.origin}${landed.pathname}`).toBe('https://partner.example/connected');
      expect(landed.searchParams.get('state')).toBe('click-1');

      const connected = await exchangeConnectCode(client, landed.searchParams.get('code')!);
      expect(connected).toMatchObject({ type: 'postgresql', name: 'Orders DB' });
      expect((await client.connect.getSession(session.token)).result_connection).toBe(
        connected.connectionId,
      );
      const connection = await client.connections.get(connected.connectionId);
      expect(connection.secretFields).toEqual(['password']);
      expect(JSON.stringify(connection)).not.toContain('unused with trust auth');

      const events = [];
      for await (const eventPage of client.events.pages()) events.push(...eventPage.data);
      expect(events.map((e) => e.type)).toContain('connection.created');

      const [delivery] = await until(
        async () => receiver.requests.filter((r) => r.url === '/edgegate'),
        (received) => received.length > 0,
        'the webhook delivery',
      );
      const signature = delivery!.headers['edgegate-signature'] as string;
      expect(await verifyWebhook(delivery!.body, signature, hook.secret)).toMatchObject({
        type: 'connection.created',
        workspaceId: workspace.id,
        data: { connectionId: connected.connectionId },
      });
      await expect(
        verifyWebhook(delivery!.body.replace('Orders DB', 'Orders DC'), signature, hook.secret),
      ).rejects.toBeInstanceOf(WebhookSignatureError);
      const signed = await signWebhook('{"id":"evt_1"}', hook.secret);
      expect(await verifyWebhook('{"id":"evt_1"}', signed, hook.secret)).toEqual({ id: 'evt_1' });

      await until(
        () => client.webhooks.deliveries(hook.id),
        (deliveries) => deliveries[0]?.status === 'delivered',
        'the delivery to be recorded',
      );
      const fronted = await client.connections.createCache(connected.connectionId);
      expect(fronted.connectionString).toContain(`application_name=${fronted.cache.id}`);
      await client.webhooks.delete(hook.id);
      await client.connections.delete(connected.connectionId);
      expect((await client.connections.list()).data).toEqual([]);
    } finally {
      await receiver.close();
    }
  });

  it('signs a desktop app in on a loopback redirect and shows a friendly page', async () => {
    const printed: string[] = [];
    let browser: Promise<{ status: number; text: string }> | undefined;
    const tokens = await loopbackLogin({
      baseUrl: url,
      clientId: cli.clientId,
      scopes: ['caches:read', 'offline_access'],
      log: (line) => printed.push(line),
      timeoutMs: 20_000,
      openBrowser: (authorizationUrl) => {
        browser = (async () => {
          const callback = await consent(authorizationUrl);
          expect(callback.origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
          expect(callback.pathname).toBe('/callback');
          const landed = await fetch(callback);
          return { status: landed.status, text: textOf(await landed.text()) };
        })();
        return browser.then(() => undefined);
      },
    });
    expect(tokens.workspaceId).toBe(workspace.id);
    expect(tokens.refreshToken).toBeTruthy();
    expect(tokens.scope.split(' ')).toContain('caches:read');
    const shown = await browser!;
    expect(shown.status).toBe(200);
    expect(shown.text).toContain('Connected to Edgegate');
    expect(shown.text).toContain('You can close this tab');
    expect(printed.join('\n')).toContain(`${url}/oauth2/auth?`);

    const client = new EdgegateClient({
      baseUrl: url,
      credentials: { oauth: { ...tokens, clientId: cli.clientId } },
    });
    expect((await client.workspace.get()).id).toBe(workspace.id);
  });

  it('ends a loopback sign-in the user denied with access_denied and an error page', async () => {
    let browser: Promise<{ status: number; text: string }> | undefined;
    const outcome = await loopbackLogin({
      baseUrl: url,
      clientId: cli.clientId,
      scopes: ['caches:read'],
      log: () => {},
      timeoutMs: 20_000,
      openBrowser: (authorizationUrl) => {
        browser = (async () => {
          const landed = await fetch(await consent(authorizationUrl, 'deny'));
          return { status: landed.status, text: textOf(await landed.text()) };
        })();
      },
    }).catch((e: unknown) => e);
    expect(outcome).toMatchObject({ name: 'OAuthError', error: 'access_denied' });
    const shown = await browser!;
    expect(shown.status).toBe(400);
    expect(shown.text).toContain('Access was denied');
  });

  it('signs a headless tool in with the device flow', async () => {
    const printed: string[] = [];
    let approval: Promise<void> | undefined;
    let prompt: DevicePrompt | undefined;
    const tokens = await deviceLogin({
      baseUrl: url,
      clientId: cli.clientId,
      scopes: ['caches:read', 'offline_access'],
      log: (line) => printed.push(line),
      onPrompt: (shown) => {
        prompt = shown;
        approval = approveDevice(url, user, shown.verificationUriComplete!, workspace.id);
        approval.catch(() => {});
      },
    });
    await approval;
    expect(tokens.workspaceId).toBe(workspace.id);
    expect(tokens.refreshToken).toBeTruthy();
    expect(prompt!.userCode).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    expect(prompt!.verificationUri).toBe(`${url}/oauth2/device`);
    expect(printed.join('\n')).toContain(prompt!.userCode);
    expect(printed.join('\n')).toContain(`${url}/oauth2/device`);
  });

  it('keeps the main entry browser-safe: nothing it reaches imports a Node built-in', () => {
    const sdkSrc = resolve(dirname(fileURLToPath(import.meta.url)), '../../sdk/src');
    const contractIndex = resolve(sdkSrc, '../../contract/src/index.ts');
    const builtins = new Set(builtinModules);
    const seen = new Set<string>();
    const offending: string[] = [];
    const queue = [resolve(sdkSrc, 'index.ts')];
    while (queue.length) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const [, specifier] of source.matchAll(
        /(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g,
      )) {
        if (specifier!.startsWith('node:') || builtins.has(specifier!)) {
          offending.push(`${file}: ${specifier}`);
        } else if (specifier!.startsWith('.')) {
          queue.push(resolve(dirname(file), specifier!));
        } else if (specifier === '@edgegate/contract') {
          queue.push(contractIndex);
        }
      }
      if (/\b(Buffer|process)\./.test(source)) offending.push(`${file}: uses Buffer or process`);
    }
    expect(offending).toEqual([]);
    expect(seen).toContain(resolve(sdkSrc, 'client.ts'));
    expect(seen).toContain(resolve(sdkSrc, 'oauth.ts'));
    expect(seen).toContain(resolve(sdkSrc, '../../contract/src/webhook-signature.ts'));
    expect([...seen].some((file) => file.includes('/sdk/src/node/'))).toBe(false);
  });
});
