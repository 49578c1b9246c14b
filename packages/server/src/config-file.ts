// Settings from a file (`--config edgegate.toml`, or YAML/JSON), with the same names as the
// environment variables. Precedence: flag > environment variable > file > default. A name the file
// should not hold is refused rather than ignored: a typo must not silently fall back to a default.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';
import { ConfigError, settings, type SettingName } from './config.ts';

export type FileSettings = Partial<Record<SettingName, string>>;

/** Reads and checks a settings file: TOML by its `.toml` extension, YAML (or JSON) otherwise. */
export function readConfigFile(path: string): FileSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `cannot read the config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  let document: unknown;
  try {
    document = extname(path).toLowerCase() === '.toml' ? parseToml(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(
      `the config file ${path} does not parse: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  if (document === null || document === undefined) return {};
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError(`the config file ${path} must hold settings by name (NAME = value)`);
  }
  const out: FileSettings = {};
  for (const [name, value] of Object.entries(document as Record<string, unknown>)) {
    if (!(name in settings)) {
      throw new ConfigError(
        `the config file ${path} names an unknown setting ${name} (settings are named as their environment variables, e.g. EDGE_PG_PORT)`,
      );
    }
    if (value === null || typeof value === 'object') {
      throw new ConfigError(`${name} in ${path} must be a string, number or boolean`);
    }
    out[name as SettingName] = String(value);
  }
  return out;
}

/** Where each setting's value came from, for `edgegate config print`. */
export type SettingSource = 'flag' | 'environment' | 'file' | 'default';

export function settingSources(
  env: Record<string, string | undefined>,
  flags: FileSettings,
  file: FileSettings,
): Record<SettingName, SettingSource> {
  const sources = {} as Record<SettingName, SettingSource>;
  for (const name of Object.keys(settings) as SettingName[]) {
    sources[name] =
      flags[name] !== undefined
        ? 'flag'
        : env[name] !== undefined && env[name] !== ''
          ? 'environment'
          : file[name] !== undefined
            ? 'file'
            : 'default';
  }
  return sources;
}

/** A value as `config print` shows it: secrets and URL passwords masked. */
export function shownValue(name: SettingName, value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = String(value);
  if (name.endsWith('_SECRET')) return text === '' ? '' : '********';
  if (name.endsWith('_URL')) {
    try {
      const url = new URL(text);
      if (url.password !== '') url.password = '********';
      return url.toString();
    } catch {
      return text;
    }
  }
  return text;
}
