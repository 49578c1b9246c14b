// `partner-cli login`: the user signs in and consents in their browser, which comes back to a
// one-shot server on 127.0.0.1 (RFC 8252), or with `--device` enters a code in any browser
// (RFC 8628); the tokens land in the credentials file.
import { discover, revoke, type AppScope, type TokenSet } from '@edgegate/sdk';
import { deviceLogin, loopbackLogin } from '@edgegate/sdk/node';
import { readCredentials, saveCredentials, credentialsPath } from '../credentials-file.ts';
import { CliError } from '../errors.ts';
import type { Io } from '../io.ts';
import { clientFor } from '../session.ts';
import { DEFAULT_EDGEGATE_URL, trimUrl, type Settings } from '../settings.ts';

/** What the app must have registered; `offline_access` brings the refresh token. */
export const LOGIN_SCOPES: AppScope[] = ['caches:read', 'caches:write', 'offline_access'];

export interface LoginOptions {
  /** Open the sign-in page in the system browser (it is printed either way). */
  launchBrowser: boolean;
  /** Sign in with a code entered in a browser anywhere: for SSH sessions and containers. */
  device: boolean;
}

export async function login(settings: Settings, io: Io, options: LoginOptions): Promise<void> {
  const { clientId, configDir } = settings;
  if (!clientId) {
    throw new CliError(
      'PARTNER_CLIENT_ID is not set: register a public app (see the README) and export its client id',
    );
  }
  const baseUrl = trimUrl(settings.edgegateUrl ?? DEFAULT_EDGEGATE_URL);
  const previous = await readCredentials(configDir);
  // Fails fast on a wrong EDGEGATE_URL instead of waiting for a browser that cannot come back.
  await discover({ baseUrl });

  const tokens = await signIn(baseUrl, clientId, io, options);
  const stored = { baseUrl, clientId, tokens };
  await saveCredentials(configDir, stored);

  // The previous sign-in is replaced: end its authorization so it leaves the user's
  // Authorized apps. Best effort: a server that is gone or a grant already revoked changes nothing.
  if (previous?.tokens.refreshToken) {
    await revoke({
      baseUrl: previous.baseUrl,
      clientId: previous.clientId,
      token: previous.tokens.refreshToken,
    }).catch(() => {});
  }

  const workspace = await clientFor(configDir, stored).workspace.get();
  io.out(`Logged in to ${baseUrl}, workspace “${workspace.name}” (${workspace.slug}).`);
  io.out(`Credentials saved in ${credentialsPath(configDir)}.`);
}

function signIn(
  baseUrl: string,
  clientId: string,
  io: Io,
  options: LoginOptions,
): Promise<TokenSet> {
  if (options.device) {
    // Prints the code and the page to enter it on, then polls until the user has allowed it.
    return deviceLogin({ baseUrl, clientId, scopes: LOGIN_SCOPES, log: io.err });
  }
  return loopbackLogin({
    baseUrl,
    clientId,
    scopes: LOGIN_SCOPES,
    log: io.err,
    // Without this the SDK opens the system browser (open, xdg-open, start) and still prints the URL.
    ...(options.launchBrowser ? {} : { openBrowser: () => {} }),
  });
}
