// Sign-in for headless tools (RFC 8628): show a code, let the user approve it in any browser, and
// poll the token endpoint until they do.
import type { AppScope } from '@edgegate/contract';
import { OAuthError } from '../errors.ts';
import { discover, oauthErrorOf, postForm, requestTokens, type TokenSet } from '../oauth.ts';
import { sleep } from '../sleep.ts';

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8628 §3.2: poll every 5 seconds unless told otherwise; `slow_down` adds 5 more. */
const DEFAULT_INTERVAL_S = 5;
const SLOW_DOWN_S = 5;

export interface DevicePrompt {
  userCode: string;
  verificationUri: string;
  /** The same page with the code filled in, for a QR code or a clickable link. */
  verificationUriComplete: string | undefined;
  expiresInSeconds: number;
}

export interface DeviceLoginOptions {
  baseUrl: string;
  clientId: string;
  clientSecret?: string;
  scopes: readonly AppScope[];
  /** Where the code and the page to enter it are printed; standard error unless given. */
  log?: (line: string) => void;
  /** Also called with the code, to show it some other way (a dialog, a QR code). */
  onPrompt?: (prompt: DevicePrompt) => void;
  fetch?: typeof fetch;
}

export async function deviceLogin(options: DeviceLoginOptions): Promise<TokenSet> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const metadata = await discover(options);
  if (!metadata.device_authorization_endpoint) {
    throw new OAuthError('unsupported_grant_type', 'this server offers no device authorization');
  }
  const response = await postForm(options, metadata.device_authorization_endpoint, {
    scope: options.scopes.join(' '),
  });
  if (!response.ok) throw await oauthErrorOf(response);
  const body = (await response.json()) as Record<string, unknown>;
  if (typeof body.device_code !== 'string') {
    throw new OAuthError('invalid_response', 'the device authorization lacks device_code');
  }
  const prompt: DevicePrompt = {
    userCode: String(body.user_code),
    verificationUri: String(body.verification_uri),
    verificationUriComplete:
      typeof body.verification_uri_complete === 'string'
        ? body.verification_uri_complete
        : undefined,
    expiresInSeconds: Number(body.expires_in),
  };
  log(
    `To connect to Edgegate, open ${prompt.verificationUri} and enter the code ${prompt.userCode}`,
  );
  if (prompt.verificationUriComplete) log(`(or open ${prompt.verificationUriComplete})`);
  options.onPrompt?.(prompt);

  let intervalS = typeof body.interval === 'number' ? body.interval : DEFAULT_INTERVAL_S;
  const deadline = Date.now() + prompt.expiresInSeconds * 1000;
  while (Date.now() + intervalS * 1000 < deadline) {
    await sleep(intervalS * 1000);
    try {
      return await requestTokens(
        options,
        { grant_type: DEVICE_CODE_GRANT, device_code: body.device_code },
        metadata.token_endpoint,
      );
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      if (error.error === 'slow_down') intervalS += SLOW_DOWN_S;
      else if (error.error !== 'authorization_pending') throw error;
    }
  }
  throw new OAuthError('expired_token', 'the code expired before it was approved; sign in again');
}
