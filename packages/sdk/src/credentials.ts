// The Authorization header for each kind of credential (docs/api.md), and for OAuth the access
// token's upkeep: refreshed before it expires or once the API calls it invalid, one refresh at a
// time however many calls are waiting for it.
import { EdgegateAuthError, OAuthError } from './errors.ts';
import { refresh, type TokenSet } from './oauth.ts';

export interface OAuthCredentials {
  accessToken: string;
  refreshToken?: string;
  /** Milliseconds since the epoch; when absent, the token is used until the API refuses it. */
  expiresAt?: number;
  clientId: string;
  /** Confidential apps; a public app refreshes with its client id alone. */
  clientSecret?: string;
}

export type Credentials =
  /** An API key (`egk_…`) of a person in one workspace. */
  | { apiKey: string }
  /** A service token of a workspace: its id (`st_…`) and secret (`egst_…`). */
  | { serviceToken: { id: string; token: string } }
  /** A partner app's tokens for one workspace. */
  | { oauth: OAuthCredentials };

export interface Authorizer {
  /** The Authorization header for the next request. */
  header(): Promise<string>;
  /**
   * After a 401 `invalid_token` for `rejected`: makes the next `header()` worth a retry, or throws
   * `EdgegateAuthError`. Absent when nothing can be renewed (API keys, service tokens).
   */
  renew?(rejected: string): Promise<void>;
}

/** An access token this close to its expiry is refreshed first: it could expire on the way. */
const EXPIRY_MARGIN_MS = 30_000;

interface SessionOptions {
  baseUrl: string;
  fetch: typeof fetch;
  onTokens?: (tokens: TokenSet) => void | Promise<void>;
}

export function authorizerFor(credentials: Credentials, options: SessionOptions): Authorizer {
  if ('apiKey' in credentials) {
    const header = `Bearer ${credentials.apiKey}`;
    return { header: async () => header };
  }
  if ('serviceToken' in credentials) {
    const header = `${credentials.serviceToken.id}:${credentials.serviceToken.token}`;
    return { header: async () => header };
  }
  return new OAuthSession(credentials.oauth, options);
}

class OAuthSession implements Authorizer {
  #tokens: Pick<OAuthCredentials, 'accessToken' | 'refreshToken' | 'expiresAt'>;
  readonly #app: { baseUrl: string; fetch: typeof fetch; clientId: string; clientSecret?: string };
  readonly #onTokens: SessionOptions['onTokens'];
  #refreshing: Promise<string> | undefined;
  /** Set once the authorization is known to be gone: every later call fails at once. */
  #ended: EdgegateAuthError | undefined;

  constructor(credentials: OAuthCredentials, options: SessionOptions) {
    const { clientId, clientSecret, ...tokens } = credentials;
    this.#tokens = tokens;
    this.#app = { baseUrl: options.baseUrl, fetch: options.fetch, clientId, clientSecret };
    this.#onTokens = options.onTokens;
  }

  async header(): Promise<string> {
    return `Bearer ${await this.#accessToken()}`;
  }

  async renew(rejected: string): Promise<void> {
    if (this.#ended) throw this.#ended;
    if (this.#refreshing) {
      await this.#refreshing;
      return;
    }
    // Another call has already replaced the token this one was refused with.
    if (rejected !== `Bearer ${this.#tokens.accessToken}`) return;
    await this.#refresh();
  }

  async #accessToken(): Promise<string> {
    if (this.#ended) throw this.#ended;
    if (this.#refreshing) return this.#refreshing;
    const { expiresAt } = this.#tokens;
    if (expiresAt !== undefined && expiresAt - EXPIRY_MARGIN_MS <= Date.now())
      return this.#refresh();
    return this.#tokens.accessToken;
  }

  #refresh(): Promise<string> {
    this.#refreshing ??= this.#rotate().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #rotate(): Promise<string> {
    const { refreshToken } = this.#tokens;
    if (!refreshToken) {
      throw this.#end(
        'The access token is no longer valid and there is no refresh token: ask the user to connect again.',
      );
    }
    let tokens: TokenSet;
    try {
      tokens = await refresh({ ...this.#app, refreshToken });
    } catch (error) {
      // The server refused the grant (revoked, expired, app deleted): no retry will help. Network
      // failures and 5xx answers are passing trouble and are thrown as they are.
      if (error instanceof OAuthError && error.status !== undefined && error.status < 500) {
        throw this.#end(
          `Refreshing the access token failed (${error.error}): ask the user to connect again.`,
          error,
        );
      }
      throw error;
    }
    this.#tokens = tokens;
    // The old refresh token is now spent: the caller must be able to persist the new one.
    await this.#onTokens?.(tokens);
    return tokens.accessToken;
  }

  #end(message: string, cause?: unknown): EdgegateAuthError {
    this.#ended = new EdgegateAuthError(message, cause === undefined ? undefined : { cause });
    return this.#ended;
  }
}
