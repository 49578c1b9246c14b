// What the CLI reads from its environment: which Edgegate, which app, where the credentials live.
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_EDGEGATE_URL = 'http://localhost:8080';
const APP_DIR_NAME = 'edgegate-partner-cli';

export interface Settings {
  /** EDGEGATE_URL as given; unset means "the server I logged in to" (or the default, to log in). */
  edgegateUrl: string | undefined;
  /** PARTNER_CLIENT_ID: the client id of the public app registered for this CLI. */
  clientId: string | undefined;
  /** Holds credentials.json. */
  configDir: string;
  /** False with PARTNER_CLI_BROWSER=none: the sign-in URL is printed, no browser is launched. */
  launchBrowser: boolean;
}

export function settingsFrom(env: Env): Settings {
  return {
    edgegateUrl: nonEmpty(env.EDGEGATE_URL),
    clientId: nonEmpty(env.PARTNER_CLIENT_ID),
    configDir: configDirOf(env),
    launchBrowser: env.PARTNER_CLI_BROWSER !== 'none',
  };
}

/**
 * PARTNER_CLI_CONFIG_DIR, else the XDG config directory (`$XDG_CONFIG_HOME`, which the XDG spec
 * ignores unless absolute, or `~/.config`), or `%APPDATA%` on Windows.
 */
function configDirOf(env: Env): string {
  const override = nonEmpty(env.PARTNER_CLI_CONFIG_DIR);
  if (override) return override;
  const xdg = nonEmpty(env.XDG_CONFIG_HOME);
  if (xdg && isAbsolute(xdg)) return join(xdg, APP_DIR_NAME);
  const appData = process.platform === 'win32' ? nonEmpty(env.APPDATA) : undefined;
  if (appData) return join(appData, APP_DIR_NAME);
  return join(nonEmpty(env.HOME) ?? homedir(), '.config', APP_DIR_NAME);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value?.trim() ? value.trim() : undefined;
}

export function trimUrl(url: string): string {
  return url.replace(/\/+$/, '');
}
