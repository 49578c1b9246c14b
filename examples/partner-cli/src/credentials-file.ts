// The signed-in user's tokens, in a file only they can read: 0600 inside a 0700 directory,
// replaced atomically so a crash mid-write never loses the one refresh token that still works.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenSet } from '@edgegate/sdk';

export const CREDENTIALS_FILE_NAME = 'credentials.json';

export interface StoredCredentials {
  /** The Edgegate server the tokens belong to. */
  baseUrl: string;
  /** The app they were issued to, needed to refresh them. */
  clientId: string;
  tokens: TokenSet;
}

export function credentialsPath(configDir: string): string {
  return join(configDir, CREDENTIALS_FILE_NAME);
}

/** The stored credentials, or undefined when there are none (or none this CLI can use). */
export async function readCredentials(configDir: string): Promise<StoredCredentials | undefined> {
  let text: string;
  try {
    text = await readFile(credentialsPath(configDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const stored = JSON.parse(text) as Partial<StoredCredentials>;
    if (
      typeof stored.baseUrl === 'string' &&
      typeof stored.clientId === 'string' &&
      typeof stored.tokens?.accessToken === 'string'
    ) {
      return stored as StoredCredentials;
    }
  } catch {
    // Not JSON (hand-edited, truncated by a full disk): as good as absent; login rewrites it.
  }
  return undefined;
}

export async function saveCredentials(
  configDir: string,
  credentials: StoredCredentials,
): Promise<void> {
  await mkdir(configDir, { recursive: true, mode: 0o700 });
  // mkdir leaves an existing directory as it was: it holds secrets, so only its owner may enter.
  await chmod(configDir, 0o700);
  const path = credentialsPath(configDir);
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    // `wx`: never write through a file (or link) someone else put there.
    await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

export async function deleteCredentials(configDir: string): Promise<void> {
  await rm(credentialsPath(configDir), { force: true });
}
