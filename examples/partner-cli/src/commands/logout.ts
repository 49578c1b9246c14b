// `partner-cli logout`: ends the authorization at Edgegate (RFC 7009) and forgets the tokens.
import { revoke } from '@edgegate/sdk';
import { deleteCredentials, readCredentials } from '../credentials-file.ts';
import { CliError } from '../errors.ts';
import type { Io } from '../io.ts';
import type { Settings } from '../settings.ts';

export async function logout(settings: Settings, io: Io): Promise<void> {
  const stored = await readCredentials(settings.configDir);
  if (!stored) {
    await deleteCredentials(settings.configDir);
    io.out('You were not logged in.');
    return;
  }
  try {
    // Revoking either token ends the whole authorization; the refresh token outlives the other.
    await revoke({
      baseUrl: stored.baseUrl,
      clientId: stored.clientId,
      token: stored.tokens.refreshToken ?? stored.tokens.accessToken,
    });
  } catch (error) {
    throw new CliError(
      `could not revoke the tokens at ${stored.baseUrl} (${(error as Error).message}); ` +
        'they are kept: try again, or revoke the app under Settings → Account → Authorized apps',
    );
  }
  await deleteCredentials(settings.configDir);
  io.out(`Logged out of ${stored.baseUrl}.`);
}
