// The operator's `edgegate` command: run the planes, migrate, and manage users, workspaces and apps.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  admin,
  ConfigError,
  createKeyring,
  rotateKeys,
  type RotationReport,
  listAppliedMigrations,
  loadConfig,
  migrateToLatest,
  settings,
  startServer,
  type Config,
  type Planes,
  type SettingName,
} from '@edgegate/server';
import { CliError } from './cli-error.ts';
import { runAdmin } from './admin-client.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  /** Shown under the options in `--help`. */
  notes?: string;
  run(values: Record<string, unknown>, config: () => Config): Promise<void>;
}

const settingOptions: Options = Object.fromEntries(
  Object.values(settings).map((s) => [s.flag, { type: 'string' as const }]),
);

function settingsHelp(): string {
  return Object.entries(settings)
    .map(([name, s]) => `  --${s.flag.padEnd(18)} ${name.padEnd(16)} ${s.help}`)
    .join('\n');
}

function configFrom(values: Record<string, unknown>): Config {
  const flags: Partial<Record<SettingName, string>> = {};
  for (const [name, s] of Object.entries(settings) as [
    SettingName,
    (typeof settings)[SettingName],
  ][]) {
    const value = values[s.flag];
    if (typeof value === 'string') flags[name] = value;
  }
  return loadConfig(process.env, flags);
}

function print(json: boolean, value: unknown, human: string) {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human + '\n');
}

async function serve(config: Config, planes: Planes) {
  const server = await startServer(config, { planes });
  if (config.secretSource === 'generated') {
    server.logger.info(
      `Generated a root secret in ${config.dataDir}/secret; keep it safe and back it up.`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.logger.info(
      `${signal} received: finishing in-flight requests (at most 10 s), then stopping`,
    );
    server
      .close(10_000)
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        server.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const json = { json: { type: 'boolean' as const } };

const commands: Command[] = [
  {
    name: 'start',
    summary: 'Run everything in one process: control plane and Postgres edge',
    usage: 'edgegate start [settings]',
    options: settingOptions,
    notes:
      'With no settings: embedded store in ./data, http://localhost:8080, Postgres edge on 127.0.0.1:6432.',
    run: (_values, config) => serve(config(), 'all'),
  },
  {
    name: 'server',
    summary: 'Run the control plane alone (console, OAuth server, API)',
    usage: 'edgegate server [settings]',
    options: settingOptions,
    run: (_values, config) => serve(config(), 'server'),
  },
  {
    name: 'edge',
    summary: 'Run the Postgres edge alone (plus /healthz and /metrics on PORT)',
    usage: 'edgegate edge --database-url postgres://… [settings]',
    options: settingOptions,
    notes:
      'Point every edge and control plane at one DATABASE_URL: cache changes reach edges by LISTEN/NOTIFY.\n' +
      'With the embedded store the edge must share its process: use `edgegate start`.',
    run: (_values, config) => serve(config(), 'edge'),
  },
  {
    name: 'migrate',
    summary: 'Bring the store schema up to date',
    usage: 'edgegate migrate [--json] [settings]',
    options: { ...settingOptions, ...json },
    notes: 'Servers also migrate at start; with a running embedded server this reports its state.',
    async run(values, config) {
      const { result } = await runAdmin<{ migrations: string[] }>(config(), {
        method: 'GET',
        path: '/status',
        async direct(db) {
          await migrateToLatest(db);
          return { migrations: await listAppliedMigrations(db) };
        },
      });
      print(
        values.json === true,
        result,
        `Store is up to date (${result.migrations.length} migrations applied).`,
      );
    },
  },
  {
    name: 'users create',
    summary: 'Create a user (and their personal workspace)',
    usage: 'edgegate users create --email E (--password P | --password-stdin) [--name N] [--json]',
    options: {
      ...settingOptions,
      ...json,
      email: { type: 'string' },
      password: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      name: { type: 'string' },
    },
    notes: '--password-stdin reads the password from standard input (keeps it out of `ps`).',
    async run(values, config) {
      if (typeof values.email !== 'string') throw new CliError('--email is required', 2);
      const password = values['password-stdin'] ? await readStdin() : values.password;
      if (typeof password !== 'string')
        throw new CliError('--password or --password-stdin is required', 2);
      const input = {
        email: values.email,
        password,
        name: typeof values.name === 'string' ? values.name : '',
      };
      const { result } = await runAdmin(config(), {
        method: 'POST',
        path: '/users',
        body: input,
        direct: (db) => admin.createUser(db, input),
      });
      print(
        values.json === true,
        result,
        `Created user ${result.email} (${result.id}) with workspace “${result.personalWorkspace.name}” (${result.personalWorkspace.slug}).`,
      );
    },
  },
  {
    name: 'workspaces create',
    summary: 'Create a workspace with an existing user as its admin',
    usage: 'edgegate workspaces create --name N --owner EMAIL [--json]',
    options: { ...settingOptions, ...json, name: { type: 'string' }, owner: { type: 'string' } },
    async run(values, config) {
      if (typeof values.name !== 'string') throw new CliError('--name is required', 2);
      if (typeof values.owner !== 'string') throw new CliError('--owner is required', 2);
      const input = { name: values.name, owner: values.owner };
      const { result } = await runAdmin(config(), {
        method: 'POST',
        path: '/workspaces',
        body: input,
        direct: (db) => admin.createWorkspace(db, input),
      });
      print(
        values.json === true,
        result,
        `Created workspace “${result.name}” (${result.slug}) owned by ${result.owner}.`,
      );
    },
  },
  {
    name: 'keys rotate',
    summary: 'Rotate the encryption keys of stored connection and webhook secrets',
    usage: 'edgegate keys rotate [--previous-secret OLD] [--json] [settings]',
    options: { ...settingOptions, ...json },
    notes: [
      'Gives every workspace a new data key and re-encrypts each stored secret with it, row by row;',
      'servers keep reading and writing meanwhile. After changing EDGEGATE_SECRET, run it with the old',
      'value in EDGEGATE_PREVIOUS_SECRET (--previous-secret), on the servers too until it finishes: data',
      'keys wrapped by the old root secret are re-wrapped by the new one.',
    ].join('\n'),
    async run(values, config) {
      const settings = config();
      process.stderr.write('Rotating keys…\n');
      const { result } = await runAdmin<RotationReport>(settings, {
        method: 'POST',
        path: '/keys/rotate',
        direct: (db) =>
          rotateKeys(db, createKeyring(settings.secret, settings.previousSecret), (message) =>
            process.stderr.write(`  ${message}\n`),
          ),
      });
      print(
        values.json === true,
        result,
        `Rotated: ${result.newKeys} new data keys, ${result.resealedConnections} connections and ${result.resealedWebhooks} webhooks re-encrypted, ${result.rewrappedKeys} keys re-wrapped, ${result.retiredKeys} old keys deleted.`,
      );
    },
  },
  {
    name: 'apps create',
    summary: 'Register an OAuth app for a user or a workspace',
    usage:
      'edgegate apps create (--owner-user EMAIL | --workspace SLUG) --name N --redirect-uri URI [--redirect-uri URI …] --scopes "S1 S2" [--description D] [--logo-url U] [--homepage-url U] [--public] [--json]',
    options: {
      ...settingOptions,
      ...json,
      'owner-user': { type: 'string' },
      workspace: { type: 'string' },
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      scopes: { type: 'string' },
      description: { type: 'string' },
      'logo-url': { type: 'string' },
      'homepage-url': { type: 'string' },
      public: { type: 'boolean' },
    },
    notes: [
      '--redirect-uri may be repeated. --scopes takes scope names separated by spaces or commas.',
      '--public registers a desktop, CLI or single-page app: PKCE, no client secret.',
      'The client secret is printed once and stored only hashed.',
    ].join('\n'),
    async run(values, config) {
      const ownerUser = stringOption(values['owner-user']);
      const workspace = stringOption(values.workspace);
      if ((ownerUser === undefined) === (workspace === undefined))
        throw new CliError('exactly one of --owner-user or --workspace is required', 2);
      if (typeof values.name !== 'string') throw new CliError('--name is required', 2);
      const redirectUris = values['redirect-uri'];
      if (!Array.isArray(redirectUris)) throw new CliError('--redirect-uri is required', 2);
      if (typeof values.scopes !== 'string') throw new CliError('--scopes is required', 2);
      // The server validates every field (URIs, scopes) and names what it refuses.
      const input = {
        ...(ownerUser === undefined ? { workspace } : { ownerUser }),
        name: values.name,
        description: stringOption(values.description) ?? '',
        logoUrl: stringOption(values['logo-url']) ?? null,
        homepageUrl: stringOption(values['homepage-url']) ?? null,
        redirectUris: redirectUris as string[],
        scopes: values.scopes.split(/[\s,]+/).filter(Boolean),
        clientType: values.public === true ? ('public' as const) : ('confidential' as const),
      } as admin.CreateAppInput;
      const { result } = await runAdmin(config(), {
        method: 'POST',
        path: '/apps',
        body: input,
        direct: (db) => admin.createApp(db, input),
      });
      print(
        values.json === true,
        result,
        `Created app “${result.name}” for ${result.owner}: client id ${result.clientId}` +
          (result.clientSecret
            ? `, client secret ${result.clientSecret} (shown only now)`
            : ' (public client, no secret)') +
          '.',
      );
    },
  },
];

function stringOption(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

function commandHelp(command: Command): string {
  const own = Object.entries(command.options).filter(([flag]) => !(flag in settingOptions));
  const lines = [`Usage: ${command.usage}`, '', command.summary + '.'];
  if (own.length)
    lines.push(
      '',
      'Options:',
      ...own.map(([flag, o]) => `  --${flag}${o.type === 'string' ? ' VALUE' : ''}`),
    );
  if (command.notes) lines.push('', command.notes);
  if (Object.keys(settingOptions).every((flag) => flag in command.options)) {
    lines.push('', 'Settings (flag, environment variable; flags win):', settingsHelp());
  }
  return lines.join('\n');
}

function mainHelp(): string {
  return [
    'Usage: edgegate <command> [options]',
    '',
    'Edgegate: a self-hostable database edge cache with a partner platform.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(20)} ${c.summary}`),
    '',
    "Run `edgegate <command> --help` for a command's options.",
    '',
    'Settings (every command; flag, environment variable):',
    settingsHelp(),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  const command =
    commands.find((c) => c.name === words.slice(0, 2).join(' ')) ??
    commands.find((c) => c.name === words[0]);
  if (!command) {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(mainHelp() + '\n');
      return 0;
    }
    throw new CliError(
      `unknown command "${words.join(' ')}"; run \`edgegate --help\` for the list`,
      2,
    );
  }
  const rest = argv.slice(argv.indexOf(command.name.split(' ').at(-1)!) + 1);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(command) + '\n');
    return 0;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: false,
      strict: true,
    }));
  } catch (error) {
    throw new CliError(
      `${(error as Error).message.replace(/\. To specify.*$/s, '')} (see \`edgegate ${command.name} --help\`)`,
      2,
    );
  }
  await command.run(values, () => configFrom(values));
  return 0;
}

const invokedDirectly = process.argv[1] && /(?:edgegate(?:\.js)?|main\.ts)$/.test(process.argv[1]);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== 0) process.exit(code);
    },
    (error: unknown) => {
      if (error instanceof CliError) {
        console.error(`edgegate: ${error.message}`);
        process.exit(error.exitCode);
      }
      if (error instanceof ConfigError) {
        console.error(`edgegate: invalid configuration: ${error.message}`);
        process.exit(1);
      }
      const problem = error as { message?: string; name?: string };
      console.error(`edgegate: ${problem.message ?? String(error)}`);
      process.exit(1);
    },
  );
}
