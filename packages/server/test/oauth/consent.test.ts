// The pages a person sees during authorization: log-in inside the flow, and consent that names
// the app and what it may do, and binds it to exactly one of their workspaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { SCOPE_DESCRIPTIONS } from '@edgegate/contract';
import type { Store } from '../../src/db/store.ts';
import { createWorkspace } from '../../src/services/workspaces.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import { CookieFetch } from '../helpers/browserless.ts';
import {
  consentActionOf,
  csrfIn,
  elementsOf,
  formAction,
  textOf,
  followToCallback,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  startAuthorization,
  submitConsent,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe('consent', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let personal: { id: string; slug: string; name: string };
  let team: { id: string; slug: string; name: string };
  let partner: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    partner = await registerPartner(store.db, await userIdOf(store.db, 'owner@partner.example'), {
      name: 'Partner Analytics',
      description: 'Dashboards for your caches.',
      logoUrl: 'https://partner.example/logo.png',
      homepageUrl: 'https://partner.example/',
      scopes: ['caches:read', 'metrics:read', 'cacheRules:read'],
      redirectUris: ['https://partner.example/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    personal = await personalWorkspaceOf(store.db, 'ada@example.com');
    team = await createWorkspace(store.db, await userIdOf(store.db, 'ada@example.com'), {
      name: 'Acme Team',
    });
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  function workspaceRadios(page: string) {
    return elementsOf(page, 'input').filter((i) => i.type === 'radio' && i.name === 'workspace');
  }

  async function codesIssued(): Promise<number> {
    const rows = await store.db
      .selectFrom('oauth_tokens')
      .select('id_hash')
      .where('kind', '=', 'AuthorizationCode')
      .execute();
    return rows.length;
  }

  it('names the app, its logo, homepage and owner, and each scope in plain words', async () => {
    const started = await startAuthorization(url, user, partner, {
      scope: 'caches:read metrics:read',
    });
    expect(started.response.status).toBe(200);
    const text = textOf(started.page);
    expect(text).toContain('Partner Analytics wants to access your Edgegate workspace');
    expect(text).toContain('Dashboards for your caches.');
    expect(elementsOf(started.page, 'img').map((img) => img.src)).toContain(
      'https://partner.example/logo.png',
    );
    expect(elementsOf(started.page, 'a').map((a) => a.href)).toContain('https://partner.example/');
    expect(text).toContain('Made by owner@partner.example');
    expect(text).toContain(SCOPE_DESCRIPTIONS['caches:read']);
    expect(text).toContain(SCOPE_DESCRIPTIONS['metrics:read']);
    expect(text).not.toContain(SCOPE_DESCRIPTIONS['cacheRules:read']);
    expect(text).toContain('Signed in as ada@example.com');
  });

  it("offers each of the user's workspaces as one radio choice, none chosen for them", async () => {
    const { page } = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const radios = workspaceRadios(page);
    expect(radios.map((r) => r.value).sort()).toEqual([personal.id, team.id].sort());
    expect(radios.filter((r) => 'checked' in r)).toEqual([]);
    expect(textOf(page)).toContain('Acme Team');
    expect(textOf(page)).toContain(personal.name);
  });

  it('preselects the workspace the partner hints at by slug', async () => {
    const { page } = await startAuthorization(url, user, partner, {
      scope: 'caches:read',
      extra: { workspace: team.slug },
    });
    const checked = workspaceRadios(page).filter((r) => 'checked' in r);
    expect(checked.map((r) => r.value)).toEqual([team.id]);
  });

  it('asks again, with 422, when Allow is posted without a workspace', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const before = await codesIssued();
    const refused = await submitConsent(url, user, started.page, {});
    expect(refused.status).toBe(422);
    const again = await refused.text();
    expect(textOf(again)).toContain('Choose the workspace this app may access.');
    expect(await codesIssued()).toBe(before);

    const allowed = await submitConsent(url, user, again, { workspace: team.id });
    const callback = await followToCallback(url, user, allowed);
    expect(callback.searchParams.get('code')).toBeTruthy();
    expect(callback.searchParams.get('state')).toBe(started.state);
  });

  it('sends a denial back to the app as access_denied with the state', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const denied = await submitConsent(url, user, started.page, { decision: 'deny' });
    const callback = await followToCallback(url, user, denied);
    expect(`${callback.origin}${callback.pathname}`).toBe(partner.redirectUri);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(started.state);
    expect(callback.searchParams.get('iss')).toBe(url);
    expect(callback.searchParams.has('code')).toBe(false);
  });

  it('cannot be framed by another site', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const csp = started.response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("frame-ancestors 'none'");
  });

  it('refuses a consent post without the CSRF token and issues no code', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const before = await codesIssued();
    const forged = await submitConsent(url, user, started.page, {
      workspace: personal.id,
      csrf: null,
    });
    expect(forged.status).toBe(403);
    expect(forged.headers.get('location')).toBeNull();
    expect(await codesIssued()).toBe(before);
  });

  it('refuses a consent post from an opaque origin (Origin: null) even with the CSRF token', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const before = await codesIssued();
    const post = (origin: string) =>
      user.request(`${url}${consentActionOf(started.page)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
        body: new URLSearchParams({
          _csrf: csrfIn(started.page),
          decision: 'allow',
          workspace: personal.id,
        }).toString(),
      });
    const opaque = await post('null');
    expect(opaque.status).toBe(403);
    expect(opaque.headers.get('location')).toBeNull();
    expect(await codesIssued()).toBe(before);
    const ours = await post(new URL(url).origin);
    expect(ours.status).toBe(303);
  });

  it('shows a signed-out user our log-in form, refuses a wrong password and keeps the email', async () => {
    const visitor = new CookieFetch();
    const started = await startAuthorization(url, visitor, partner, { scope: 'caches:read' });
    expect(started.response.status).toBe(200);
    expect(textOf(started.page)).toContain('Log in to continue to Partner Analytics');
    const action = formAction(started.page, '/login');
    expect(action).toMatch(/^\/oauth2\/interaction\/[^/]+\/login$/);

    const wrong = await visitor.postForm(`${url}${action}`, {
      _csrf: csrfIn(started.page),
      email: 'ada@example.com',
      password: 'not the password',
    });
    expect(wrong.status).toBe(401);
    const retry = await wrong.text();
    expect(textOf(retry)).toContain('The email or password is incorrect.');
    const email = elementsOf(retry, 'input').find((input) => input.name === 'email');
    expect(email?.value).toBe('ada@example.com');
    expect(formAction(retry, '/login')).toBe(action);

    const right = await visitor.postForm(`${url}${action}`, {
      _csrf: csrfIn(retry),
      email: 'ada@example.com',
      password: 'correct horse battery',
    });
    expect(right.status).toBe(303);
    const consent = await visitor.follow(
      new URL(right.headers.get('location')!, url).toString(),
      `${url}/`,
    );
    const consentPage = await consent.response.text();
    expect(textOf(consentPage)).toContain(
      'Partner Analytics wants to access your Edgegate workspace',
    );
    const callback = await followToCallback(
      url,
      visitor,
      await submitConsent(url, visitor, consentPage, { workspace: personal.id }),
    );
    expect(callback.searchParams.get('code')).toBeTruthy();
  });

  async function grantRowsOf(email: string): Promise<number> {
    const rows = await store.db
      .selectFrom('oauth_grants')
      .select('id')
      .where('user_id', '=', await userIdOf(store.db, email))
      .execute();
    return rows.length;
  }

  it('takes one answer per consent: a second Allow is refused with 409 and makes no grant', async () => {
    const browser = await signUpBrowser(url, 'twice@example.com');
    const workspace = await personalWorkspaceOf(store.db, 'twice@example.com');
    const started = await startAuthorization(url, browser, partner, { scope: 'caches:read' });
    const first = await submitConsent(url, browser, started.page, { workspace: workspace.id });
    expect(first.status).toBe(303);
    const again = await submitConsent(url, browser, started.page, { workspace: workspace.id });
    expect(again.status).toBe(409);
    expect(textOf(await again.text())).toContain('already answered');
    expect(await grantRowsOf('twice@example.com')).toBe(1);

    const callback = await followToCallback(url, browser, first);
    expect(callback.searchParams.get('code')).toBeTruthy();
  });

  it('makes exactly one grant when Allow is posted twice at once', async () => {
    const browser = await signUpBrowser(url, 'double@example.com');
    const workspace = await personalWorkspaceOf(store.db, 'double@example.com');
    const started = await startAuthorization(url, browser, partner, { scope: 'caches:read' });
    const responses = await Promise.all(
      [1, 2].map(() => submitConsent(url, browser, started.page, { workspace: workspace.id })),
    );
    expect(responses.map((r) => r.status).sort()).toEqual([303, 409]);
    expect(await grantRowsOf('double@example.com')).toBe(1);
    const grant = await store.db
      .selectFrom('oauth_grants')
      .select('workspace_id')
      .where('user_id', '=', await userIdOf(store.db, 'double@example.com'))
      .executeTakeFirstOrThrow();
    expect(grant.workspace_id).toBe(workspace.id);
  });

  it.each([
    ['prompt=login', 'caches:read', { prompt: 'login' }],
    ['max_age', 'openid caches:read', { max_age: '0' }],
  ])(
    'asks for the password again on %s, even inside a console session',
    async (_, scope, extra) => {
      const started = await startAuthorization(url, user, partner, { scope, extra });
      expect(started.response.status, String(started.leftTo)).toBe(200);
      expect(textOf(started.page)).toContain('Log in to continue to Partner Analytics');
      const email = elementsOf(started.page, 'input').find((input) => input.name === 'email');
      expect(email?.value).toBe('ada@example.com');

      const loggedIn = await user.postForm(`${url}${formAction(started.page, '/login')}`, {
        _csrf: csrfIn(started.page),
        email: 'ada@example.com',
        password: 'correct horse battery',
      });
      expect(loggedIn.status).toBe(303);
      const consent = await user.follow(
        new URL(loggedIn.headers.get('location')!, url).toString(),
        `${url}/`,
      );
      const consentPage = await consent.response.text();
      expect(textOf(consentPage)).toContain(
        'Partner Analytics wants to access your Edgegate workspace',
      );
      const callback = await followToCallback(
        url,
        user,
        await submitConsent(url, user, consentPage, { workspace: personal.id }),
      );
      expect(callback.searchParams.get('code')).toBeTruthy();
    },
  );

  it('shows a store failure as a server error, not as an expired request', async () => {
    const started = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const interactionUrl = started.pageUrl!;
    await sql`ALTER TABLE oauth_payloads RENAME TO oauth_payloads_away`.execute(store.db);
    try {
      const response = await user.request(interactionUrl);
      expect(response.status).toBe(500);
      expect(textOf(await response.text())).not.toContain('expired');
    } finally {
      await sql`ALTER TABLE oauth_payloads_away RENAME TO oauth_payloads`.execute(store.db);
    }
    const expired = await new CookieFetch().request(interactionUrl);
    expect(expired.status).toBe(400);
    expect(textOf(await expired.text())).toContain('expired');
  });

  it.each([
    ['an API scope', 'caches:read caches:write'],
    ['offline_access', 'caches:read offline_access'],
  ])('refuses an app asking for %s it is not allowed, with invalid_scope', async (_, scope) => {
    const started = await startAuthorization(url, user, partner, { scope });
    expect(started.leftTo, 'a redirect back to the app, not our consent page').toBeDefined();
    expect(`${started.leftTo!.origin}${started.leftTo!.pathname}`).toBe(partner.redirectUri);
    expect(started.leftTo!.searchParams.get('error')).toBe('invalid_scope');
    expect(started.leftTo!.searchParams.get('state')).toBe(started.state);
  });
});
