// partner-cli: an example desktop/CLI partner of Edgegate. `run` parses a command line, runs one
// command and returns the exit status (0 ok, 1 failure, 2 usage), so tests can call it in-process.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EdgegateApiError, EdgegateAuthError, OAuthError } from '@edgegate/sdk';
import { CACHE_TYPES, createCache } from './commands/caches-create.ts';
import { listCaches } from './commands/caches-list.ts';
import { login } from './commands/login.ts';
import { logout } from './commands/logout.ts';
import {
  ACCESS_REVOKED,
  CliError,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
} from './errors.ts';
import type { Io } from './io.ts';
import { settingsFrom, type Env, type Settings } from './settings.ts';

export type { Io } from './io.ts';

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  notes?: string;
  run(values: Values, settings: Settings, io: Io): Promise<void>;
}

const json = { json: { type: 'boolean' as const } };

const commands: Command[] = [
  {
    name: 'login',
    summary: 'Connect to Edgegate in your browser and keep the tokens',
    usage: 'partner-cli login [--no-browser | --device]',
    options: { 'no-browser': { type: 'boolean' }, device: { type: 'boolean' } },
    notes: [
      'Prints the sign-in URL and opens it in your browser; you log in, pick the workspace this CLI',
      'may use, and allow it. --no-browser (or PARTNER_CLI_BROWSER=none) only prints the URL.',
      'Without a browser on this machine, --device prints a code to enter on any device instead.',
    ].join('\n'),
    run: (values, settings, io) =>
      login(settings, io, {
        launchBrowser: settings.launchBrowser && values['no-browser'] !== true,
        device: values.device === true,
      }),
  },
  {
    name: 'logout',
    summary: 'Revoke the tokens at Edgegate and delete them here',
    usage: 'partner-cli logout',
    options: {},
    run: (_values, settings, io) => logout(settings, io),
  },
  {
    name: 'caches list',
    summary: 'List the caches of the connected workspace',
    usage: 'partner-cli caches list [--json]',
    options: json,
    run: (values, settings, io) => listCaches(settings, io, { json: values.json === true }),
  },
  {
    name: 'caches create',
    summary: 'Create a cache in front of an origin database',
    usage: `partner-cli caches create --name N --hostname H --port P [--type ${CACHE_TYPES.join('|')}] [--json]`,
    options: {
      ...json,
      name: { type: 'string' },
      hostname: { type: 'string' },
      port: { type: 'string' },
      type: { type: 'string', default: 'postgres' },
    },
    notes: [
      'The origin is where the database listens; Edgegate must be able to resolve and reach it.',
      'No database password is asked for: applications send their own through the edge.',
    ].join('\n'),
    run(values, settings, io) {
      const name = required(values, 'name');
      const hostname = required(values, 'hostname');
      const port = Number(required(values, 'port'));
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new UsageError('--port must be a whole number between 1 and 65535');
      }
      const type = CACHE_TYPES.find((known) => known === values.type);
      if (!type) throw new UsageError(`--type must be one of ${CACHE_TYPES.join(', ')}`);
      return createCache(
        settings,
        io,
        { name, type, hostname, port },
        { json: values.json === true },
      );
    },
  },
];

/** Commands with a second word, whose first word alone shows their list. */
const groups: Record<string, string> = { caches: 'Manage the caches of the connected workspace' };

const SETTINGS_HELP = [
  'Environment:',
  '  EDGEGATE_URL            the Edgegate server (default http://localhost:8080)',
  '  PARTNER_CLIENT_ID       client id of the public app registered for this CLI (login)',
  '  PARTNER_CLI_CONFIG_DIR  where credentials.json is kept',
  '                          (default $XDG_CONFIG_HOME/edgegate-partner-cli or ~/.config/…)',
  '  PARTNER_CLI_BROWSER     none: print the sign-in URL without opening a browser',
].join('\n');

function required(values: Values, option: string): string {
  const value = values[option];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new UsageError(`--${option} is required`);
  }
  return value.trim();
}

function commandHelp(command: Command): string {
  const lines = [`Usage: ${command.usage}`, '', `${command.summary}.`];
  const options = Object.entries(command.options);
  if (options.length > 0) {
    lines.push(
      '',
      'Options:',
      ...options.map(([flag, o]) => `  --${flag}${o.type === 'string' ? ' VALUE' : ''}`),
    );
  }
  if (command.notes) lines.push('', command.notes);
  lines.push('', SETTINGS_HELP);
  return lines.join('\n');
}

function listHelp(title: string, usage: string, listed: Command[]): string {
  return [
    `Usage: ${usage}`,
    '',
    title,
    '',
    'Commands:',
    ...listed.map((c) => `  ${c.name.padEnd(16)} ${c.summary}`),
    '',
    "Run `partner-cli <command> --help` for a command's options.",
    '',
    SETTINGS_HELP,
  ].join('\n');
}

const mainHelp = () =>
  listHelp(
    'An example partner CLI for Edgegate: sign in with your browser, then manage caches.',
    'partner-cli <command> [options]',
    commands,
  );

const wantsHelp = (args: readonly string[]) => args.includes('--help') || args.includes('-h');

async function dispatch(argv: readonly string[], settings: Settings, io: Io): Promise<number> {
  const words = argv.filter((arg) => !arg.startsWith('-'));
  const command =
    commands.find((c) => c.name === words.slice(0, 2).join(' ')) ??
    commands.find((c) => c.name === words[0]);
  if (!command) {
    const group = words[0] === undefined ? undefined : groups[words[0]];
    if (group !== undefined && (words.length === 1 || wantsHelp(argv))) {
      const listed = commands.filter((c) => c.name.startsWith(`${words[0]} `));
      if (!wantsHelp(argv)) {
        throw new UsageError(
          `${words[0]} needs a command: ${listed.map((c) => c.name.split(' ')[1]).join(' or ')}`,
          words[0],
        );
      }
      io.out(listHelp(`${group}.`, `partner-cli ${words[0]} <command> [options]`, listed));
      return EXIT_OK;
    }
    if (words.length === 0 && (argv.length === 0 || wantsHelp(argv))) {
      io.out(mainHelp());
      return EXIT_OK;
    }
    throw new UsageError(`unknown command "${words.join(' ')}"`);
  }

  const rest = argv.slice(argv.indexOf(command.name.split(' ').at(-1)!) + 1);
  if (wantsHelp(rest)) {
    io.out(commandHelp(command));
    return EXIT_OK;
  }
  try {
    const { values } = parseArgs({
      args: [...rest],
      options: command.options,
      allowPositionals: false,
      strict: true,
    });
    await command.run(values, settings, io);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) error.command = command.name;
    // node:util's parseArgs throws a TypeError whose `code` starts with ERR_PARSE_ARGS_.
    else if (String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) {
      throw new UsageError((error as Error).message.replace(/\. To specify.*$/s, ''), command.name);
    }
    throw error;
  }
}

/** The one line to print for a failed command, and its exit status. */
export function explain(error: unknown): { message: string; exitCode: number } {
  const failure = (message: string) => ({ message, exitCode: EXIT_FAILURE });
  if (error instanceof UsageError) return { message: error.message, exitCode: EXIT_USAGE };
  if (error instanceof CliError) return failure(error.message);
  if (error instanceof EdgegateAuthError) {
    // Revoked, expired, or the user left the workspace: no refresh can help, a new sign-in can.
    return failure(ACCESS_REVOKED);
  }
  if (error instanceof EdgegateApiError) {
    // The problem+json body: `errors` names each field that a 422 refused.
    const fields = error.errors.map(({ path, message }) => `${path}: ${message}`);
    return failure(fields.length > 0 ? `${error.title}: ${fields.join('; ')}` : error.message);
  }
  if (error instanceof OAuthError) {
    return failure(
      error.error === 'access_denied'
        ? 'access was denied on the consent page'
        : `sign-in failed: ${error.message}`,
    );
  }
  if (error instanceof TypeError && error.message === 'fetch failed') {
    const cause = (error.cause as Error | undefined)?.message ?? error.message;
    return failure(`could not reach Edgegate (${cause}): check EDGEGATE_URL`);
  }
  return failure(error instanceof Error ? error.message : String(error));
}

export async function run(argv: readonly string[], env: Env, io: Io): Promise<number> {
  try {
    return await dispatch(argv, settingsFrom(env), io);
  } catch (error) {
    const { message, exitCode } = explain(error);
    io.err(`partner-cli: ${message}`);
    if (error instanceof UsageError) {
      io.err(`Run \`partner-cli ${error.command ? `${error.command} ` : ''}--help\` for usage.`);
    }
    return exitCode;
  }
}
