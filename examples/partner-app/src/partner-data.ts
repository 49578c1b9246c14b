// What the partner app keeps in PARTNER_DATA_DIR: the Edgegate tokens and cache of the one account
// this demo serves (`edgegate.json`), and the connection string "like an environment variable"
// (`.env`). Both files are readable by their owner only (0600): they hold secrets.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenSet } from '@edgegate/sdk';

export interface PartnerState {
  tokens?: TokenSet;
  cache?: { id: string; name: string };
  /** Set when Edgegate refused the tokens for good; the home page then asks to reconnect. */
  revoked?: boolean;
}

export function openPartnerData(dir: string) {
  const statePath = join(dir, 'edgegate.json');
  const envPath = join(dir, '.env');

  async function read(): Promise<PartnerState> {
    try {
      return JSON.parse(await readFile(statePath, 'utf8')) as PartnerState;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
  }

  // One change at a time: a token rotation and a page's own save must not overwrite each other.
  let writes = Promise.resolve();
  function update(change: (state: PartnerState) => PartnerState): Promise<void> {
    const next = writes.then(async () => {
      await writeSecretFile(statePath, JSON.stringify(change(await read()), null, 2) + '\n');
    });
    writes = next.catch(() => undefined);
    return next;
  }

  /** Written next to the file, then renamed over it: a crash never leaves half a file. */
  async function writeSecretFile(path: string, content: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, content, { mode: 0o600 });
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  }

  return {
    envPath,
    read,
    saveTokens: (tokens: TokenSet) => update((state) => ({ ...state, tokens, revoked: false })),
    /** Edgegate access is gone: forget the tokens (the cache and connection string still work). */
    forgetTokens: (revoked: boolean) =>
      update(({ tokens: _spent, ...rest }) => ({ ...rest, revoked })),
    saveCache: (cache: { id: string; name: string }) => update((state) => ({ ...state, cache })),
    forgetCache: () => update(({ cache: _gone, ...rest }) => rest),

    async readDatabaseUrl(): Promise<string | undefined> {
      const env = await readFile(envPath, 'utf8').catch(() => '');
      const line = env.split('\n').find((l) => l.startsWith('DATABASE_URL='));
      return line?.slice('DATABASE_URL='.length);
    },

    /** Replaces the DATABASE_URL line of `.env`, keeping every other line. */
    async saveDatabaseUrl(connectionString: string): Promise<void> {
      const env = await readFile(envPath, 'utf8').catch(() => '');
      const others = env.split('\n').filter((l) => l !== '' && !l.startsWith('DATABASE_URL='));
      await writeSecretFile(
        envPath,
        [...others, `DATABASE_URL=${connectionString}`].join('\n') + '\n',
      );
    },
  };
}
