// The API client of the signed-in user: their stored tokens, and every rotated pair written back to
// the credentials file before the call that needed it goes on.
import { EdgegateClient } from '@edgegate/sdk';
import { readCredentials, saveCredentials, type StoredCredentials } from './credentials-file.ts';
import { CliError, NOT_LOGGED_IN } from './errors.ts';
import { trimUrl, type Settings } from './settings.ts';

export function clientFor(configDir: string, stored: StoredCredentials): EdgegateClient {
  return new EdgegateClient({
    baseUrl: stored.baseUrl,
    credentials: { oauth: { ...stored.tokens, clientId: stored.clientId } },
    // Refresh tokens rotate: the old one is spent, so the new pair must reach the disk first.
    onTokens: (tokens) => saveCredentials(configDir, { ...stored, tokens }),
  });
}

/** A client for the stored credentials; fails with "run partner-cli login" when there are none. */
export async function openSession(settings: Settings): Promise<EdgegateClient> {
  const stored = await readCredentials(settings.configDir);
  if (!stored) throw new CliError(NOT_LOGGED_IN);
  if (settings.edgegateUrl !== undefined && trimUrl(settings.edgegateUrl) !== stored.baseUrl) {
    throw new CliError(
      `you are logged in to ${stored.baseUrl}, not ${settings.edgegateUrl}: run partner-cli login`,
    );
  }
  return clientFor(settings.configDir, stored);
}
