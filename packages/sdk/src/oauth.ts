// OAuth 2.0 for partner apps (docs/oauth.md): the authorization URL with PKCE and state, the
// callback's checks (state, RFC 9207 `iss`), code exchange, refresh and revocation.
import type { AppScope } from '@edgegate/contract';
import { OAuthError } from './errors.ts';
import { codeChallengeOf, randomToken } from './pkce.ts';

/** SPEC §4's endpoints, relative to the server's base URL (its PUBLIC_URL, also the issuer). */
export const OAUTH_PATHS = {
  authorization: '/oauth2/auth',
  token: '/oauth2/token',
  revocation: '/oauth2/revoke',
  discovery: '/.well-known/oauth-authorization-server',
} as const;

/** What a partner keeps after connecting: tokens bound to the one workspace the user chose. */
export interface TokenSet {
  accessToken: string;
  /** Confidential apps always get one; public apps when they asked for `offline_access`. */
  refreshToken?: string;
  /** When the access token stops working, in milliseconds since the epoch. */
  expiresAt: number;
  /** The granted scopes, space-separated. */
  scope: string;
  workspaceId: string;
}

export interface ServerOptions {
  /** The Edgegate server, e.g. `https://edgegate.example`. */
  baseUrl: string;
  /** Replaces the global `fetch` (to add logging, a proxy, or to count calls in tests). */
  fetch?: typeof fetch;
}

export interface ClientCredentials {
  clientId: string;
  /** Confidential apps only; public apps (desktop, CLI, SPA) authenticate with PKCE alone. */
  clientSecret?: string;
}

export function trimBaseUrl(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
}

export function fetchOf(options: { fetch?: typeof fetch }): typeof fetch {
  // Bound: a browser's fetch throws "Illegal invocation" when called as another object's method.
  return options.fetch ?? ((input, init) => fetch(input, init));
}

export type AuthorizationUrlOptions = ({ baseUrl: string } | { issuer: string }) & {
  clientId: string;
  /** Exactly as registered; on loopback (`http://127.0.0.1/…`) any port is accepted. */
  redirectUri: string;
  scopes: readonly AppScope[];
  /** A workspace slug or id to preselect on the consent page (the user may still pick another). */
  workspaceHint?: string;
  /** Defaults to 256 random bits; keep the returned value to check the callback. */
  state?: string;
  /** `login` makes the user type their password again. */
  prompt?: string;
};

export interface AuthorizationRequest {
  /** Send the user's browser here. */
  url: string;
  /** Keep both (e.g. in the user's session) until the callback: needed to check it and exchange the code. */
  state: string;
  codeVerifier: string;
}

/** The URL to send the user to, with a fresh PKCE S256 verifier and state. */
export async function createAuthorizationUrl(
  options: AuthorizationUrlOptions,
): Promise<AuthorizationRequest> {
  const base = trimBaseUrl('baseUrl' in options ? options.baseUrl : options.issuer);
  const codeVerifier = randomToken();
  const state = options.state ?? randomToken();
  const url = new URL(`${base}${OAUTH_PATHS.authorization}`);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', options.clientId);
  url.searchParams.set('redirect_uri', options.redirectUri);
  url.searchParams.set('scope', options.scopes.join(' '));
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', await codeChallengeOf(codeVerifier));
  url.searchParams.set('code_challenge_method', 'S256');
  if (options.workspaceHint) url.searchParams.set('workspace', options.workspaceHint);
  if (options.prompt) url.searchParams.set('prompt', options.prompt);
  return { url: url.toString(), state, codeVerifier };
}

export interface CallbackChecks {
  /** The state returned by `createAuthorizationUrl`. */
  expectedState: string;
  /** The server's issuer (its base URL), compared with the callback's `iss` when it has one. */
  issuer: string;
}

/** Checks the callback's `state` and `iss` (RFC 9207); throws `OAuthError` when either is wrong. */
function checkCallback(
  received: { state?: string | null; iss?: string | null },
  checks: Partial<CallbackChecks>,
): void {
  if (checks.expectedState !== undefined && received.state !== checks.expectedState) {
    throw new OAuthError(
      'state_mismatch',
      'the callback does not belong to the authorization this client started',
    );
  }
  if (received.iss != null && checks.issuer !== undefined) {
    if (trimBaseUrl(received.iss) !== trimBaseUrl(checks.issuer)) {
      throw new OAuthError(
        'issuer_mismatch',
        `the callback comes from ${received.iss}, not ${checks.issuer}`,
      );
    }
  }
}

/**
 * Reads the redirect back to the partner: checks state and `iss`, turns `error=` (e.g. the user
 * chose Deny: `access_denied`) into an `OAuthError`, and returns the code to exchange.
 */
export function parseCallback(
  callbackUrl: string | URL,
  checks: CallbackChecks,
): { code: string; state: string; iss: string | null } {
  const query = new URL(callbackUrl).searchParams;
  const state = query.get('state');
  const iss = query.get('iss');
  checkCallback({ state, iss }, checks);
  const error = query.get('error');
  if (error) throw new OAuthError(error, query.get('error_description') ?? undefined);
  const code = query.get('code');
  if (!code) throw new OAuthError('missing_code', 'the callback carries neither code nor error');
  return { code, state: state ?? '', iss };
}

export interface ExchangeCodeOptions extends ServerOptions, ClientCredentials {
  redirectUri: string;
  code: string;
  codeVerifier: string;
  /** The callback's `state`; checked against `expectedState` when that is given. */
  state?: string | null;
  expectedState?: string;
  /** The callback's `iss` (RFC 9207); when present it must be the issuer. */
  iss?: string | null;
  /** Defaults to `baseUrl`. */
  issuer?: string;
}

/** Exchanges the callback's code (within 60 seconds) for workspace-bound tokens. */
export async function exchangeCode(options: ExchangeCodeOptions): Promise<TokenSet> {
  checkCallback(options, {
    expectedState: options.expectedState,
    issuer: options.issuer ?? options.baseUrl,
  });
  return requestTokens(options, {
    grant_type: 'authorization_code',
    code: options.code,
    redirect_uri: options.redirectUri,
    code_verifier: options.codeVerifier,
  });
}

export interface RefreshOptions extends ServerOptions, ClientCredentials {
  refreshToken: string;
}

/**
 * New tokens from a refresh token. Refresh tokens rotate: store the returned one and forget the
 * old, whose reuse (after a 5-second grace) revokes the whole authorization.
 */
export async function refresh(options: RefreshOptions): Promise<TokenSet> {
  const tokens = await requestTokens(options, {
    grant_type: 'refresh_token',
    refresh_token: options.refreshToken,
  });
  return { ...tokens, refreshToken: tokens.refreshToken ?? options.refreshToken };
}

export interface RevokeOptions extends ServerOptions, ClientCredentials {
  /** The access or the refresh token: either ends the whole authorization. */
  token: string;
  tokenTypeHint?: 'access_token' | 'refresh_token';
}

/** Ends the authorization (RFC 7009), e.g. when the user disconnects Edgegate in the partner's product. */
export async function revoke(options: RevokeOptions): Promise<void> {
  const response = await postForm(
    options,
    `${trimBaseUrl(options.baseUrl)}${OAUTH_PATHS.revocation}`,
    {
      token: options.token,
      ...(options.tokenTypeHint ? { token_type_hint: options.tokenTypeHint } : {}),
    },
  );
  if (!response.ok) throw await oauthErrorOf(response);
  await response.body?.cancel();
}

/** The authorization server's metadata (RFC 8414), as far as the SDK uses it. */
export interface ServerMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint?: string;
  device_authorization_endpoint?: string;
  [name: string]: unknown;
}

export async function discover(options: ServerOptions): Promise<ServerMetadata> {
  const response = await fetchOf(options)(
    `${trimBaseUrl(options.baseUrl)}${OAUTH_PATHS.discovery}`,
    { headers: { accept: 'application/json' } },
  );
  if (!response.ok) {
    await response.body?.cancel();
    throw new OAuthError('server_error', `discovery answered HTTP ${response.status}`);
  }
  return (await response.json()) as ServerMetadata;
}

/** A token request at `endpoint` (the token endpoint unless given), answered as a `TokenSet`. */
export async function requestTokens(
  options: ServerOptions & ClientCredentials,
  params: Record<string, string>,
  endpoint = `${trimBaseUrl(options.baseUrl)}${OAUTH_PATHS.token}`,
): Promise<TokenSet> {
  const requestedAt = Date.now();
  const response = await postForm(options, endpoint, params);
  if (!response.ok) throw await oauthErrorOf(response);
  const body = (await response.json()) as Record<string, unknown>;
  if (typeof body.access_token !== 'string' || typeof body.workspace_id !== 'string') {
    throw new OAuthError(
      'invalid_response',
      'the token response lacks access_token or workspace_id',
    );
  }
  return {
    accessToken: body.access_token,
    ...(typeof body.refresh_token === 'string' ? { refreshToken: body.refresh_token } : {}),
    expiresAt: requestedAt + Number(body.expires_in ?? 0) * 1000,
    scope: typeof body.scope === 'string' ? body.scope : '',
    workspaceId: body.workspace_id,
  };
}

/**
 * POSTs a form as the app: confidential apps authenticate with HTTP Basic (the server registers
 * every one for `client_secret_basic` and refuses `client_secret_post`), public apps send
 * `client_id` alone.
 */
export function postForm(
  options: ServerOptions & ClientCredentials,
  endpoint: string,
  params: Record<string, string>,
): Promise<Response> {
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  const form = new URLSearchParams(params);
  if (options.clientSecret !== undefined) {
    // RFC 6749 §2.3.1: each part form-encoded before base64.
    const pair = `${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`;
    headers.authorization = `Basic ${btoa(pair)}`;
  } else {
    form.set('client_id', options.clientId);
  }
  return fetchOf(options)(endpoint, { method: 'POST', headers, body: form.toString() });
}

/** The RFC 6749 error of a failed answer; a non-JSON one (a proxy's page) becomes `server_error`. */
export async function oauthErrorOf(response: Response): Promise<OAuthError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: unknown; error_description?: unknown };
    if (typeof body.error === 'string') {
      const description =
        typeof body.error_description === 'string' ? body.error_description : undefined;
      return new OAuthError(body.error, description, response.status);
    }
  } catch {
    // Not JSON (a proxy's error page): described by the status below.
  }
  return new OAuthError('server_error', `HTTP ${response.status}`, response.status);
}
