// Drives the authorization-code flow as a partner would: oauth4webapi for the protocol, a
// cookie-keeping HTTP client for the user's log-in and consent.
import * as oauth from 'oauth4webapi';
import { expect } from 'vitest';
import type { OAuthAppCreateInput } from '@edgegate/contract';
import type { Db } from '../../src/db/store.ts';
import { createApp } from '../../src/services/oauth-apps.ts';
import { CookieFetch, csrfOf } from './browserless.ts';

export const insecure = { [oauth.allowInsecureRequests]: true } as const;

export async function discover(url: string) {
  const issuer = new URL(url);
  return oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  );
}

export interface PartnerApp {
  clientId: string;
  clientSecret?: string;
  redirectUri: string;
}

export async function signUpBrowser(
  baseUrl: string,
  email: string,
  password = 'correct horse battery',
) {
  const browser = new CookieFetch();
  const page = await browser.request(`${baseUrl}/signup`);
  const response = await browser.postForm(`${baseUrl}/signup`, {
    _csrf: csrfOf(await page.text()),
    email,
    password,
  });
  expect(response.status).toBe(303);
  return browser;
}

/** Starts an authorization, lets `user` consent for `workspaceId`, and returns the callback URL. */
export async function authorize(
  baseUrl: string,
  user: CookieFetch,
  app: PartnerApp,
  options: {
    scope: string;
    workspaceId?: string;
    decision?: 'allow' | 'deny';
    extra?: Record<string, string>;
  },
) {
  const as = await discover(baseUrl);
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.searchParams.set('client_id', app.clientId);
  url.searchParams.set('redirect_uri', app.redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', options.scope);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
  url.searchParams.set('code_challenge_method', 'S256');
  for (const [k, v] of Object.entries(options.extra ?? {})) url.searchParams.set(k, v);

  const toConsent = await user.follow(url.toString(), baseUrl);
  const consentPage = await toConsent.response.text();
  expect(toConsent.response.status, consentPage.slice(0, 500)).toBe(200);
  const consentForm = /action="(\/oauth2\/interaction\/[^"]+\/consent)"/.exec(consentPage)?.[1];
  if (!consentForm) throw new Error(`no consent form: ${consentPage.slice(0, 800)}`);
  const decided = await user.postForm(`${baseUrl}${consentForm}`, {
    _csrf: csrfOf(consentPage),
    decision: options.decision ?? 'allow',
    ...(options.workspaceId ? { workspace: options.workspaceId } : {}),
  });
  expect(decided.status).toBe(303);
  const callback = await user.follow(
    new URL(decided.headers.get('location')!, baseUrl).toString(),
    baseUrl,
  );
  return { as, callbackUrl: new URL(callback.url), state, codeVerifier, consentPage };
}

export async function exchangeCode(
  baseUrl: string,
  app: PartnerApp,
  flow: { callbackUrl: URL; state: string; codeVerifier: string },
) {
  const as = await discover(baseUrl);
  const client: oauth.Client = { client_id: app.clientId };
  const auth = app.clientSecret ? oauth.ClientSecretBasic(app.clientSecret) : oauth.None();
  const params = oauth.validateAuthResponse(as, client, flow.callbackUrl, flow.state);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    auth,
    params,
    app.redirectUri,
    flow.codeVerifier,
    insecure,
  );
  return oauth.processAuthorizationCodeResponse(as, client, response);
}

// Finer-grained steps for tests that probe each rule of the flow on its own.

/** A partner app registered the way its developer would, with its secret kept for the test. */
export interface RegisteredPartner extends PartnerApp {
  appId: string;
  name: string;
}

export async function userIdOf(db: Db, email: string): Promise<string> {
  const user = await db
    .selectFrom('users')
    .select('id')
    .where('email', '=', email)
    .executeTakeFirstOrThrow();
  return user.id;
}

export async function personalWorkspaceOf(db: Db, email: string) {
  return db
    .selectFrom('workspaces')
    .innerJoin('users', 'users.id', 'workspaces.personal_for')
    .select(['workspaces.id', 'workspaces.slug', 'workspaces.name'])
    .where('users.email', '=', email)
    .executeTakeFirstOrThrow();
}

/** Registers an app owned by `ownerId`; the first redirect URI is the one the partner uses. */
export async function registerPartner(
  db: Db,
  ownerId: string,
  input: Partial<OAuthAppCreateInput> & { redirectUris: string[] },
): Promise<RegisteredPartner> {
  const created = await createApp(
    db,
    ownerId,
    { kind: 'user', userId: ownerId },
    {
      name: 'Partner Analytics',
      scopes: ['caches:read', 'caches:write', 'metrics:read'],
      ...input,
    },
  );
  return {
    appId: created.app.id,
    name: created.app.name,
    clientId: created.clientId,
    clientSecret: created.clientSecret,
    redirectUri: input.redirectUris[0]!,
  };
}

export function clientAuthOf(app: PartnerApp): oauth.ClientAuth {
  return app.clientSecret ? oauth.ClientSecretBasic(app.clientSecret) : oauth.None();
}

export interface AuthorizationOptions {
  scope: string;
  /** `S256` (the default) sends a challenge, `none` sends none, `plain` asks for the plain method. */
  pkce?: 'S256' | 'plain' | 'none';
  /** The redirect_uri sent to /oauth2/auth, when it should differ from the app's. */
  redirectUri?: string;
  clientId?: string;
  extra?: Record<string, string>;
  /** The authorization endpoint to use instead of the advertised one. */
  endpoint?: string;
}

/** The authorization URL a partner sends the browser to, with its PKCE verifier and state. */
export async function authorizationRequest(
  baseUrl: string,
  app: PartnerApp,
  options: AuthorizationOptions,
) {
  const as = await discover(baseUrl);
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(options.endpoint ?? as.authorization_endpoint!);
  url.searchParams.set('client_id', options.clientId ?? app.clientId);
  url.searchParams.set('redirect_uri', options.redirectUri ?? app.redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', options.scope);
  url.searchParams.set('state', state);
  const pkce = options.pkce ?? 'S256';
  if (pkce === 'S256') {
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
    url.searchParams.set('code_challenge_method', 'S256');
  } else if (pkce === 'plain') {
    url.searchParams.set('code_challenge', codeVerifier);
    url.searchParams.set('code_challenge_method', 'plain');
  }
  for (const [k, v] of Object.entries(options.extra ?? {})) url.searchParams.set(k, v);
  return { as, url, state, codeVerifier };
}

/**
 * Opens the authorization URL in `user`'s browser and follows redirects on our origin. Ends on
 * one of our pages (`page`), or where the browser is sent off our origin (`leftTo`).
 */
export async function startAuthorization(
  baseUrl: string,
  user: CookieFetch,
  app: PartnerApp,
  options: AuthorizationOptions,
) {
  const { as, url, state, codeVerifier } = await authorizationRequest(baseUrl, app, options);
  const { response, url: reached } = await user.follow(url.toString(), `${baseUrl}/`);
  const redirected = response.status >= 300 && response.status < 400;
  return {
    as,
    url,
    state,
    codeVerifier,
    response,
    page: redirected ? '' : await response.text(),
    pageUrl: redirected ? undefined : reached,
    leftTo: redirected ? new URL(reached) : undefined,
  };
}

export function consentActionOf(page: string): string {
  return formAction(page, '/consent');
}

/** Posts the consent form of `page`; `csrf: null` leaves the CSRF token out. */
export async function submitConsent(
  baseUrl: string,
  user: CookieFetch,
  page: string,
  fields: {
    decision?: 'allow' | 'deny';
    workspace?: string;
    csrf?: string | null;
    caches?: string[];
  },
): Promise<Response> {
  const csrf = fields.csrf === undefined ? csrfIn(page) : fields.csrf;
  return user.postForm(`${baseUrl}${consentActionOf(page)}`, {
    ...(csrf === null ? {} : { _csrf: csrf }),
    decision: fields.decision ?? 'allow',
    ...(fields.workspace ? { workspace: fields.workspace } : {}),
    ...(fields.caches ? { cache: fields.caches } : {}),
  });
}

/** Follows a redirect from one of our pages until the browser lands off our origin. */
export async function followToCallback(
  baseUrl: string,
  user: CookieFetch,
  response: Response,
): Promise<URL> {
  expect(response.status).toBe(303);
  const landed = await user.follow(
    new URL(response.headers.get('location')!, baseUrl).toString(),
    `${baseUrl}/`,
  );
  return new URL(landed.url);
}

/** Runs the flow through consent (allowed, for `workspaceId`) and returns the callback URL. */
export async function obtainCode(
  baseUrl: string,
  user: CookieFetch,
  app: PartnerApp,
  options: AuthorizationOptions & { workspaceId: string; cacheIds?: string[] },
) {
  const started = await startAuthorization(baseUrl, user, app, options);
  expect(started.response.status, started.page.slice(0, 500)).toBe(200);
  const decided = await submitConsent(baseUrl, user, started.page, {
    workspace: options.workspaceId,
    ...(options.cacheIds ? { caches: options.cacheIds } : {}),
  });
  const callbackUrl = await followToCallback(baseUrl, user, decided);
  return { ...started, callbackUrl, consentPage: started.page };
}

/** Authorizes and exchanges the code: the tokens a partner holds after connecting. */
export async function obtainTokens(
  baseUrl: string,
  user: CookieFetch,
  app: PartnerApp,
  options: AuthorizationOptions & { workspaceId: string; cacheIds?: string[] },
) {
  const flow = await obtainCode(baseUrl, user, app, options);
  const redirectUri = options.redirectUri ?? app.redirectUri;
  const tokens: oauth.TokenEndpointResponse & { flow?: typeof flow } = await exchangeCode(
    baseUrl,
    { ...app, redirectUri },
    flow,
  );
  return Object.assign(tokens, { flow });
}

/** The callback's query as the partner validates it (state, iss), ready for the token request. */
export function callbackParams(
  as: oauth.AuthorizationServer,
  app: PartnerApp,
  flow: { callbackUrl: URL; state: string },
): URLSearchParams {
  return oauth.validateAuthResponse(as, { client_id: app.clientId }, flow.callbackUrl, flow.state);
}

/** The RFC 6749 error code of a token-endpoint response, or `ok` for a 200. */
export async function tokenOutcome(response: Response | Promise<Response>): Promise<string> {
  const settled = await response;
  if (settled.status === 200) return 'ok';
  const body = (await settled.json()) as { error?: string };
  return body.error ?? `status ${settled.status}`;
}

export async function refreshRequest(
  baseUrl: string,
  app: PartnerApp,
  refreshToken: string,
): Promise<Response> {
  const as = await discover(baseUrl);
  return oauth.refreshTokenGrantRequest(
    as,
    { client_id: app.clientId },
    clientAuthOf(app),
    refreshToken,
    insecure,
  );
}

export async function introspect(baseUrl: string, app: PartnerApp, token: string) {
  const as = await discover(baseUrl);
  const client = { client_id: app.clientId };
  const response = await oauth.introspectionRequest(as, client, clientAuthOf(app), token, insecure);
  return oauth.processIntrospectionResponse(as, client, response);
}

/** The status of GET /v1/workspace with `token`: 200 while the token is good, 401 after. */
export async function apiStatus(baseUrl: string, token: string): Promise<number> {
  const response = await fetch(`${baseUrl}/v1/workspace`, {
    headers: { authorization: `Bearer ${token}` },
  });
  await response.body?.cancel();
  return response.status;
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  '#39': "'",
  nbsp: ' ',
};

function decodeEntities(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39|nbsp);/g, (_, name: string) => ENTITIES[name]!);
}

/** What a person reads on a page: tags dropped, entities decoded, whitespace collapsed. */
export function textOf(html: string): string {
  return decodeEntities(
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' '),
  ).trim();
}

/** Every `<tag …>` of the page with its attributes, however the markup is laid out. */
export function elementsOf(html: string, tag: string): Record<string, string>[] {
  const elements: Record<string, string>[] = [];
  for (const match of html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'))) {
    const attributes: Record<string, string> = {};
    for (const attribute of match[1]!.matchAll(/([^\s=/>]+)(?:\s*=\s*"([^"]*)")?/g)) {
      attributes[attribute[1]!.toLowerCase()] = decodeEntities(attribute[2] ?? '');
    }
    elements.push(attributes);
  }
  return elements;
}

/** The CSRF token of the page's forms. */
export function csrfIn(html: string): string {
  const token = elementsOf(html, 'input').find((input) => input.name === '_csrf')?.value;
  if (!token) throw new Error(`no CSRF token in page: ${html.slice(0, 300)}`);
  return token;
}

/** The page's form whose action ends with `suffix`. */
export function formAction(html: string, suffix: string): string {
  const action = elementsOf(html, 'form').find((form) => form.action?.endsWith(suffix))?.action;
  if (!action) throw new Error(`no form posting to …${suffix}: ${html.slice(0, 800)}`);
  return action;
}

/** The action and hidden inputs of the form in `html` (the first, or the one with `formId`). */
export function formOf(
  html: string,
  formId?: string,
): { action: string; fields: Record<string, string> } {
  const forms = [...html.matchAll(/<form\b[\s\S]*?<\/form>/g)].map((m) => m[0]);
  const form = forms.find((f) => !formId || elementsOf(f, 'form')[0]?.id === formId);
  if (!form) throw new Error(`no form ${formId ?? ''} in: ${html.slice(0, 600)}`);
  const fields: Record<string, string> = {};
  for (const input of elementsOf(form, 'input')) {
    if (input.type === 'hidden' && input.name) fields[input.name] = input.value ?? '';
  }
  return { action: elementsOf(form, 'form')[0]!.action!, fields };
}

/** A device authorization (RFC 8628) as a partner's CLI starts it. */
export async function startDeviceAuthorization(baseUrl: string, app: PartnerApp, scope: string) {
  const as = await discover(baseUrl);
  const client = { client_id: app.clientId };
  const response = await oauth.deviceAuthorizationRequest(
    as,
    client,
    clientAuthOf(app),
    { scope },
    insecure,
  );
  return { as, device: await oauth.processDeviceAuthorizationResponse(as, client, response) };
}

export async function pollDeviceCode(baseUrl: string, app: PartnerApp, deviceCode: string) {
  const as = await discover(baseUrl);
  return oauth.deviceCodeGrantRequest(
    as,
    { client_id: app.clientId },
    clientAuthOf(app),
    deviceCode,
    insecure,
  );
}

/** The user opens the device link, confirms the code and allows `workspaceId` on our consent page. */
export async function approveDevice(
  baseUrl: string,
  user: CookieFetch,
  verificationUriComplete: string,
  workspaceId: string,
) {
  const opened = await user.request(verificationUriComplete);
  const codeForm = formOf(await opened.text());
  const confirmPage = await user.postForm(
    new URL(codeForm.action, baseUrl).toString(),
    codeForm.fields,
  );
  const confirmForm = formOf(await confirmPage.text(), 'op.deviceConfirmForm');
  const confirmed = await user.postForm(
    new URL(confirmForm.action, baseUrl).toString(),
    confirmForm.fields,
  );
  const consent = await user.follow(
    new URL(confirmed.headers.get('location')!, baseUrl).toString(),
    `${baseUrl}/`,
  );
  const decided = await submitConsent(baseUrl, user, await consent.response.text(), {
    workspace: workspaceId,
  });
  expect(decided.status).toBe(303);
  const done = await user.follow(
    new URL(decided.headers.get('location')!, baseUrl).toString(),
    `${baseUrl}/`,
  );
  expect(textOf(await done.response.text())).toContain('Device connected');
}

/** The reasons of the workspace's `grant.revoked` audit events, oldest first. */
export async function revocationReasons(db: Db, workspaceId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('audit_events')
    .select('data')
    .where('workspace_id', '=', workspaceId)
    .where('action', '=', 'grant.revoked')
    .orderBy('id')
    .execute();
  return rows.map((row) => String(row.data.reason));
}
