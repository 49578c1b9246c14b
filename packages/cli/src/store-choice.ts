// Which store an operator command works on: said after each command, and never a new one by accident.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { adminSocketPath } from '@edgegate/server';
import { CliError } from './cli-error.ts';

interface StoreSettings {
  dataDir: string;
  databaseUrl: string | undefined;
}

/** PGlite writes PG_VERSION when it creates a cluster: its presence means a store exists. */
export function embeddedStoreExists(dataDir: string): boolean {
  return existsSync(join(dataDir, 'pglite', 'PG_VERSION')) || existsSync(adminSocketPath(dataDir));
}

/** "Postgres at host:port/db" (never the password) or "the embedded store in DIR". */
export function describeStore(settings: StoreSettings, via?: 'socket' | 'store'): string {
  if (settings.databaseUrl) {
    let where = 'an unparseable DATABASE_URL';
    try {
      const url = new URL(settings.databaseUrl);
      where = `${url.hostname}${url.port ? `:${url.port}` : ''}${url.pathname}`;
    } catch {
      // Only the description suffers; opening the store reports the real problem.
    }
    return `Postgres at ${where}`;
  }
  const how =
    via === 'socket'
      ? ', through the running server'
      : via === 'store'
        ? ' (no server was running on it)'
        : '';
  return `the embedded store in ${settings.dataDir}${how}`;
}

/**
 * A management command run in the wrong folder would create a second, empty embedded store that
 * the running server never sees; it needs --init to do that on purpose (where it offers --init).
 */
export function refuseNewEmbeddedStore(
  settings: StoreSettings,
  init: boolean,
  /** False for a command that only reads or changes what a store holds: --init would not help. */
  offerInit = true,
): void {
  if (settings.databaseUrl || init || embeddedStoreExists(settings.dataDir)) return;
  throw new CliError(
    [
      `there is no store in ${settings.dataDir} (DATA_DIR), and this command will not create a new, empty one.`,
      "To use the running server's store, run the command with the same DATA_DIR (--data-dir DIR) or",
      'DATABASE_URL (--database-url) as the server: `npm start` keeps it in ./data of the folder it runs in.',
      offerInit
        ? 'To create a new embedded store here on purpose, add --init.'
        : 'A new, empty store would have nothing to show or change.',
    ].join('\n'),
  );
}
