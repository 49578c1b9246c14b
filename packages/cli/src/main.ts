// The operator's `edgegate` command: run the planes, migrate, and manage users, workspaces and apps.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  admin,
  adminCaches,
  adminCredentials,
  ConfigError,
  createKeyring,
  rotateKeys,
  type RotationReport,
  listAppliedMigrations,
  loadConfig,
  migrateToLatest,
  migrationStatus,
  type MigrationStatus,
  parseConfig,
  readConfigFile,
  settings,
  settingSources,
  shownValue,
  startServer,
  type Config,
  type Planes,
  type SettingName,
  VERSION,
} from '@edgegate/server';
import { API_SCOPES } from '@edgegate/contract';
import { CliError } from './cli-error.ts';
import { callRunningServer, runAdmin } from './admin-client.ts';
import { describeStore, refuseNewEmbeddedStore } from './store-choice.ts';
import { table } from './table.ts';
import { runDemo } from './demo/run-demo.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  /** Shown under the options in `--help`. */
  notes?: string;
  /** Works on an existing store only, unless --init asks for a new embedded one. */
  needsStore?: boolean | ((values: Record<string, unknown>) => boolean);
  run(values: Record<string, unknown>, config: () => Config): Promise<void>;
}

const settingOptions: Options = {
  ...Object.fromEntries(Object.values(settings).map((s) => [s.flag, { type: 'string' as const }])),
  config: { type: 'string' as const },
};

function settingsHelp(): string {
  const entries = Object.entries(settings);
  const flagWidth = Math.max(...entries.map(([, s]) => s.flag.length));
  const nameWidth = Math.max(...entries.map(([name]) => name.length));
  return [
    `  --${'config'.padEnd(flagWidth)} ${'EDGEGATE_CONFIG'.padEnd(nameWidth)} A TOML (.toml) or YAML file of these settings, by variable name; flags and variables win over it`,
    ...entries.map(
      ([name, s]) => `  --${s.flag.padEnd(flagWidth)} ${name.padEnd(nameWidth)} ${s.help}`,
    ),
  ].join('\n');
}

// The settings file named by --config or EDGEGATE_CONFIG, if any.
function fileFrom(values: Record<string, unknown>): Partial<Record<SettingName, string>> {
  const path =
    typeof values.config === 'string' ? values.config : process.env.EDGEGATE_CONFIG || undefined;
  return path === undefined ? {} : readConfigFile(path);
}

function flagsFrom(values: Record<string, unknown>): Partial<Record<SettingName, string>> {
  const flags: Partial<Record<SettingName, string>> = {};
  for (const [name, s] of Object.entries(settings) as [
    SettingName,
    (typeof settings)[SettingName],
  ][]) {
    const value = values[s.flag];
    if (typeof value === 'string') flags[name] = value;
  }
  return flags;
}

function configFrom(values: Record<string, unknown>): Config {
  return loadConfig(process.env, flagsFrom(values), fileFrom(values));
}

function print(json: boolean, value: unknown, human: string) {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human + '\n');
}

/** The longest a signalled server takes to exit after its pre-stop delay: 10 s for requests, then closing, bounded. */
const SHUTDOWN_LIMIT_MS = 15_000;

/** `print`, and for people a second line naming the store the command used. */
function printWithStore(
  json: boolean,
  value: unknown,
  human: string,
  store: { config: Config; via: 'socket' | 'store' },
) {
  print(json, value, `${human}\nStore: ${describeStore(store.config, store.via)}.`);
}

const init = {
  init: { type: 'boolean' as const },
};
/** For commands that only read or change what a store already holds: they never create one. */
const EXISTING_STORE_NOTE =
  'Works on an existing store: the one of the running server (same DATA_DIR or DATABASE_URL).';
const INIT_NOTE =
  'Works on an existing store: the one of the running server (same DATA_DIR or DATABASE_URL).\n' +
  '--init lets it create a new embedded store in DATA_DIR when there is none.';

// SIGTERM: /readyz says 503 at once. The control plane still serves HTTP for
// SHUTDOWN_DELAY_SECONDS (a load balancer stops sending), then closes; the edge stops accepting at
// once and lets its sessions finish for EDGE_DRAIN_SECONDS. SIGINT (Ctrl-C, a person at a
// terminal) closes everything at once. SIGHUP re-reads the settings and applies what can change live.
async function serve(readConfig: () => Config, planes: Planes) {
  // A SIGHUP while starting would end the process (the default); it has nothing to reload yet.
  const ignoreHangup = () => {};
  process.on('SIGHUP', ignoreHangup);
  const config = readConfig();
  const server = await startServer(config, { planes });
  if (config.secretSource === 'generated') {
    server.logger.info(
      `Generated a root secret in ${config.dataDir}/secret; keep it safe and back it up.`,
    );
  }
  let stopping = false;
  const stop = (signal: 'SIGTERM' | 'SIGINT') => {
    if (stopping) return;
    stopping = true;
    const delaySeconds = signal === 'SIGTERM' ? config.shutdownDelaySeconds : 0;
    const drainSeconds = signal === 'SIGTERM' && server.edge !== null ? config.edgeDrainSeconds : 0;
    server.readiness.drain();
    // The edge does not wait out the pre-stop delay: it stops accepting now and drains.
    if (drainSeconds > 0) server.drainEdge();
    const note = server.shutdownNote(drainSeconds);
    const readyNote =
      delaySeconds === 0
        ? ''
        : server.app === null
          ? `/readyz answers 503 (for at least ${delaySeconds} s, SHUTDOWN_DELAY_SECONDS); `
          : `/readyz answers 503 for ${delaySeconds} s (SHUTDOWN_DELAY_SECONDS), then `;
    server.logger.info(`${signal} received: ${readyNote}${note}, then stopping`);
    // Shutdown bounds each of its steps; this is the last word should one of them not return.
    const limitMs = Math.max(delaySeconds, drainSeconds) * 1000 + SHUTDOWN_LIMIT_MS;
    setTimeout(() => {
      server.logger.error(`shutdown did not finish within ${limitMs / 1000} s; exiting`);
      process.exit(1);
    }, limitMs).unref();
    setTimeout(() => {
      if (delaySeconds > 0) server.logger.info(`closing: ${note}`);
      server
        .close(10_000)
        .then(() => process.exit(0))
        .catch((error: unknown) => {
          server.logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        });
    }, delaySeconds * 1000);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.off('SIGHUP', ignoreHangup);
  process.on('SIGHUP', () => {
    if (stopping) return;
    server.logger.info('SIGHUP received: reloading the log level and the edge TLS certificate');
    let next: Config;
    try {
      next = readConfig();
    } catch (error) {
      server.logger.error(
        { err: error },
        `reload refused, nothing changed: ${(error as Error).message}`,
      );
      return;
    }
    server
      .reload(next)
      .catch((error: unknown) => server.logger.error({ err: error }, 'reload failed'));
  });
}

const json = { json: { type: 'boolean' as const } };

const commands: Command[] = [
  {
    name: 'start',
    summary: 'Run everything in one process: control plane and the edge (Postgres and MySQL)',
    usage: 'edgegate start [settings]',
    options: settingOptions,
    notes:
      'With no settings: embedded store in ./data, http://localhost:8080, Postgres edge on 127.0.0.1:6432, MySQL/MariaDB edge on 127.0.0.1:6033.',
    run: (_values, config) => serve(config, 'all'),
  },
  {
    name: 'server',
    summary: 'Run the control plane alone (console, OAuth server, API)',
    usage: 'edgegate server [settings]',
    options: settingOptions,
    run: (_values, config) => serve(config, 'server'),
  },
  {
    name: 'edge',
    summary: 'Run the edge alone, Postgres and MySQL ports (plus /healthz and /metrics on PORT)',
    usage: 'edgegate edge --database-url postgres://… [settings]',
    options: settingOptions,
    notes:
      'Point every edge and control plane at one DATABASE_URL: cache changes reach edges by LISTEN/NOTIFY.\n' +
      'With the embedded store the edge must share its process: use `edgegate start`.\n' +
      'With REDIS_URL every edge node on it acts as one cache (writes invalidate on every node; see "Run a cluster" in docs/operations.md).',
    run: (_values, config) => serve(config, 'edge'),
  },
  {
    name: 'config print',
    summary: 'Print the settings in effect and where each comes from (secrets masked)',
    usage: 'edgegate config print [--json] [--config FILE] [settings]',
    options: { ...settingOptions, ...json },
    notes:
      'Precedence: flag > environment variable > config file (--config or EDGEGATE_CONFIG) > default.',
    async run(values) {
      const file = fileFrom(values);
      const flags = flagsFrom(values);
      const parsed = parseConfig(process.env, flags, file);
      const sources = settingSources(process.env, flags, file);
      const raw = (name: SettingName): unknown =>
        flags[name] ??
        (process.env[name] === '' ? undefined : process.env[name]) ??
        file[name] ??
        settings[name].schema.safeParse(undefined).data;
      const rows = (Object.keys(settings) as SettingName[]).map((name) => ({
        name,
        value: shownValue(name, name === 'DATA_DIR' ? parsed.dataDir : raw(name)),
        source: sources[name],
      }));
      const width = Math.max(...rows.map((row) => row.name.length));
      print(
        values.json === true,
        rows,
        rows
          .map((row) => `${row.name.padEnd(width)}  ${row.value || '(unset)'}  [${row.source}]`)
          .join('\n'),
      );
    },
  },
  {
    name: 'migrate',
    summary: 'Bring the store schema up to date',
    usage: 'edgegate migrate [--status] [--json] [settings]',
    options: { ...settingOptions, ...json, status: { type: 'boolean' } },
    needsStore: (values) => values.status === true,
    notes: [
      'Servers also migrate at start; with a running embedded server this reports its state.',
      '--status changes nothing: it lists the migrations applied (with when) and those pending, which',
      'a server of this version would apply at start. It needs an existing store.',
    ].join('\n'),
    async run(values, config) {
      if (values.status === true) return migrateStatus(values.json === true, config);
      const settings = config();
      const { result, via } = await runAdmin<{ migrations: string[] }>(settings, {
        method: 'GET',
        path: '/status',
        async direct(db) {
          await migrateToLatest(db);
          return { migrations: await listAppliedMigrations(db) };
        },
      });
      printWithStore(
        values.json === true,
        result,
        `Store is up to date (${result.migrations.length} migrations applied).`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'users create',
    summary: 'Create a user (and their personal workspace)',
    usage:
      'edgegate users create --email E (--password P | --password-stdin) [--name N] [--init] [--json]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      ...init,
      email: { type: 'string' },
      password: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      name: { type: 'string' },
    },
    notes:
      '--password-stdin reads the password from standard input (keeps it out of `ps`).\n' +
      INIT_NOTE,
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
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/users',
        body: input,
        direct: (db) => admin.createUser(db, input),
      });
      printWithStore(
        values.json === true,
        result,
        `Created user ${result.email} (${result.id}) with workspace “${result.personalWorkspace.name}” (${result.personalWorkspace.slug}).`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'workspaces create',
    summary: 'Create a workspace with an existing user as its admin',
    usage: 'edgegate workspaces create --name N --owner EMAIL [--init] [--json]',
    needsStore: true,
    notes: INIT_NOTE,
    options: {
      ...settingOptions,
      ...json,
      ...init,
      name: { type: 'string' },
      owner: { type: 'string' },
    },
    async run(values, config) {
      if (typeof values.name !== 'string') throw new CliError('--name is required', 2);
      if (typeof values.owner !== 'string') throw new CliError('--owner is required', 2);
      const input = { name: values.name, owner: values.owner };
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/workspaces',
        body: input,
        direct: (db) => admin.createWorkspace(db, input),
      });
      printWithStore(
        values.json === true,
        result,
        `Created workspace “${result.name}” (${result.slug}) owned by ${result.owner}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'keys rotate',
    summary: 'Rotate the encryption keys of stored connection and webhook secrets',
    usage: 'edgegate keys rotate [--previous-secret OLD] [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json, ...init },
    notes: [
      'Gives every workspace a new data key and re-encrypts each stored secret with it, row by row;',
      'servers keep reading and writing meanwhile. After changing EDGEGATE_SECRET, run it with the old',
      'value in EDGEGATE_PREVIOUS_SECRET (--previous-secret), on the servers too until it finishes: data',
      'keys wrapped by the old root secret are re-wrapped by the new one.',
      INIT_NOTE,
    ].join('\n'),
    async run(values, config) {
      const settings = config();
      process.stderr.write('Rotating keys…\n');
      const { result, via } = await runAdmin<RotationReport>(settings, {
        method: 'POST',
        path: '/keys/rotate',
        direct: (db) =>
          rotateKeys(db, createKeyring(settings.secret, settings.previousSecret), (message) =>
            process.stderr.write(`  ${message}\n`),
          ),
      });
      printWithStore(
        values.json === true,
        result,
        `Rotated: ${result.newKeys} new data keys, ${result.resealedConnections} connections, ${result.resealedWebhooks} webhooks and ${result.resealedCacheCredentials} cache replication passwords re-encrypted, ${result.rewrappedKeys} keys re-wrapped, ${result.retiredKeys} old keys deleted.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'apps create',
    summary: 'Register an OAuth app for a user or a workspace',
    usage:
      'edgegate apps create (--owner-user EMAIL | --workspace SLUG) --name N --redirect-uri URI [--redirect-uri URI …] --scopes "S1 S2" [--description D] [--logo-url U] [--homepage-url U] [--public] [--init] [--json]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      ...init,
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
      '--homepage-url and --redirect-uri take https URLs, or http ones on loopback (http://localhost,',
      'http://127.0.0.1, http://[::1]) for an app in development; --logo-url takes https only.',
      '--public registers a desktop, CLI or single-page app: PKCE, no client secret.',
      'The client secret is printed once and stored only hashed.',
      INIT_NOTE,
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
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/apps',
        body: input,
        direct: (db) => admin.createApp(db, input),
      });
      printWithStore(
        values.json === true,
        result,
        `Created app “${result.name}” for ${result.owner}: client id ${result.clientId}` +
          (result.clientSecret
            ? `, client secret ${result.clientSecret} (shown only now)`
            : ' (public client, no secret)') +
          '.',
        { config: settings, via },
      );
    },
  },
  {
    name: 'apikeys create',
    summary: "Create an API key for a member of a workspace (acts with that member's rights)",
    usage:
      'edgegate apikeys create --workspace SLUG --user EMAIL [--name N] [--scopes "S1 S2"] [--caches ID,ID] [--expires WHEN] [--init] [--json]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      ...init,
      workspace: { type: 'string' },
      user: { type: 'string' },
      name: { type: 'string' },
      scopes: { type: 'string' },
      caches: { type: 'string' },
      expires: { type: 'string' },
    },
    notes: [
      `--scopes: API scopes separated by spaces or commas (${API_SCOPES.join(', ')}); all of them when absent.`,
      '--caches narrows the key to those caches. --expires takes a date-time (2027-01-31T00:00:00Z) or',
      'a duration from now (90d, 12h); no expiry when absent. --name defaults to “edgegate CLI”.',
      'Use it as `Authorization: Bearer <key>`. The key is printed once and stored only hashed.',
      INIT_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = stringOption(values.workspace);
      const user = stringOption(values.user);
      if (workspace === undefined) throw new CliError('--workspace is required', 2);
      if (user === undefined) throw new CliError('--user is required', 2);
      const scopes = listOption(values.scopes);
      const cacheIds = listOption(values.caches);
      const expiresAt = expiryOption(values.expires);
      const input = {
        workspace,
        user,
        name: stringOption(values.name) ?? 'edgegate CLI',
        ...(scopes ? { scopes } : {}),
        ...(cacheIds ? { cacheIds } : {}),
        ...(expiresAt ? { expiresAt } : {}),
      } as adminCredentials.CreateApiKeyInput;
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/apikeys',
        body: input,
        direct: (db) => adminCredentials.createApiKeyForMember(db, input),
      });
      printWithStore(
        values.json === true,
        result,
        `Created API key “${result.name}” (${result.id}) for ${result.user} in workspace ${result.workspace}` +
          ` with ${result.scopes.join(', ')}${result.cacheIds ? ` on ${result.cacheIds.join(', ')}` : ''}` +
          `${result.expiresAt ? `, expiring ${result.expiresAt}` : ''}:\n${result.key}\n(shown only now)`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'service-tokens create',
    summary: 'Create a service token for a workspace (belongs to the workspace, not to a person)',
    usage:
      'edgegate service-tokens create --workspace SLUG [--name N] [--accesses "S1 S2@CACHE_ID"] [--expires WHEN] [--init] [--json]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      ...init,
      workspace: { type: 'string' },
      name: { type: 'string' },
      accesses: { type: 'string' },
      expires: { type: 'string' },
    },
    notes: [
      '--accesses: scopes separated by spaces or commas, each for the whole workspace (caches:read) or',
      'for one cache (caches:read@cch_…); “caches:read metrics:read” when absent.',
      '--expires takes a date-time (2027-01-31T00:00:00Z) or a duration from now (90d, 12h).',
      '--name defaults to “edgegate CLI”. Created in the name of the workspace’s earliest admin.',
      'Send it as `Authorization: <id>:<token>`. The token is printed once and stored only hashed.',
      INIT_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = stringOption(values.workspace);
      if (workspace === undefined) throw new CliError('--workspace is required', 2);
      const accesses = (listOption(values.accesses) ?? ['caches:read', 'metrics:read']).map(
        (access) => {
          const [scope, cacheId] = access.split('@');
          return cacheId ? { scope, cacheId } : { scope };
        },
      );
      const expiresAt = expiryOption(values.expires);
      const input = {
        workspace,
        name: stringOption(values.name) ?? 'edgegate CLI',
        accesses,
        ...(expiresAt ? { expiresAt } : {}),
      } as adminCredentials.CreateServiceTokenInput;
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/service-tokens',
        body: input,
        direct: (db) => adminCredentials.createServiceTokenForWorkspace(db, input),
      });
      const what = result.accesses
        .map((a) => (a.cacheId ? `${a.scope} on ${a.cacheId}` : a.scope))
        .join(', ');
      printWithStore(
        values.json === true,
        result,
        `Created service token “${result.name}” (${result.id}) for workspace ${result.workspace} with ${what}` +
          `${result.expiresAt ? `, expiring ${result.expiresAt}` : ''}:\n${result.token}\n` +
          `(shown only now; send it as Authorization: ${result.id}:<token>)`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'users list',
    summary: 'List the users, with the workspaces each belongs to',
    usage: 'edgegate users list [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json },
    notes: EXISTING_STORE_NOTE,
    async run(values, config) {
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'GET',
        path: '/users',
        direct: (db) => admin.listUsers(db),
      });
      const rows = result.map((u) => [
        u.email,
        u.name,
        u.createdAt.slice(0, 10),
        u.disabledAt ? `disabled ${u.disabledAt.slice(0, 10)}` : 'active',
        u.workspaces.join(', '),
      ]);
      printWithStore(
        values.json === true,
        result,
        `${table(['EMAIL', 'NAME', 'CREATED', 'STATUS', 'WORKSPACES'], rows)}${count(result.length, 'user')}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'users disable',
    summary: 'Disable a user: no log-in, and none of their sessions, authorizations or keys work',
    usage: 'edgegate users disable --email E [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json, email: { type: 'string' } },
    notes: [
      'Ends the user’s console sessions and revokes every authorization they gave apps (the apps’',
      'tokens die, and the API keys apps minted with them); the user’s own API keys are refused while',
      'the account is disabled. Memberships, workspaces, caches and audit history stay. Running it on',
      'a disabled user changes nothing. `edgegate users enable` lets the user log in again.',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const email = requiredString(values.email, '--email');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/users/disable',
        body: { email },
        direct: (db) => admin.disableUser(db, { email }),
      });
      printWithStore(
        values.json === true,
        result,
        result.changed
          ? `Disabled ${result.email}: ended ${plural(result.endedSessions, 'console session')}, revoked ${plural(result.revokedAuthorizations, 'app authorization')}.`
          : `${result.email} was already disabled; nothing changed.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'users enable',
    summary: 'Let a disabled user log in again',
    usage: 'edgegate users enable --email E [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json, email: { type: 'string' } },
    notes: [
      'Their API keys work again; sessions and app authorizations ended by `users disable` do not',
      'come back (apps ask the user to connect again).',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const email = requiredString(values.email, '--email');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/users/enable',
        body: { email },
        direct: (db) => admin.enableUser(db, { email }),
      });
      printWithStore(
        values.json === true,
        result,
        result.changed
          ? `Enabled ${result.email}: they can log in again.`
          : `${result.email} was not disabled; nothing changed.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'workspaces list',
    summary: 'List the workspaces, with their members and caches',
    usage: 'edgegate workspaces list [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json },
    notes: EXISTING_STORE_NOTE,
    async run(values, config) {
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'GET',
        path: '/workspaces',
        direct: (db) => admin.listWorkspaces(db),
      });
      const rows = result.map((w) => [
        w.slug,
        w.name,
        String(w.members),
        String(w.caches),
        w.createdAt.slice(0, 10),
      ]);
      printWithStore(
        values.json === true,
        result,
        `${table(['SLUG', 'NAME', 'MEMBERS', 'CACHES', 'CREATED'], rows)}${count(result.length, 'workspace')}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'apikeys list',
    summary: 'List the API keys of a workspace (never their secrets)',
    usage: 'edgegate apikeys list --workspace SLUG [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json, workspace: { type: 'string' } },
    notes: [
      'Every member’s keys, with the first characters of each key (PREFIX) to recognise it by.',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'GET',
        path: `/apikeys?workspace=${encodeURIComponent(workspace)}`,
        direct: (db) => adminCredentials.listApiKeysForWorkspace(db, { workspace }),
      });
      const rows = result.map((k) => [
        k.id,
        k.name,
        `${k.prefix}…`,
        k.user,
        k.scopes.join(' ') + (k.cacheIds ? ` on ${k.cacheIds.join(', ')}` : ''),
        k.expiresAt?.slice(0, 10) ?? 'never',
        k.lastUsedAt?.slice(0, 16).replace('T', ' ') ?? 'never',
      ]);
      printWithStore(
        values.json === true,
        result,
        `${table(['ID', 'NAME', 'PREFIX', 'USER', 'SCOPES', 'EXPIRES', 'LAST USED'], rows)}${count(result.length, 'API key')} in workspace ${workspace}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'apikeys delete',
    summary: 'Delete an API key of a workspace: it stops working at once',
    usage: 'edgegate apikeys delete --workspace SLUG --id KEY_ID [--json] [settings]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      workspace: { type: 'string' },
      id: { type: 'string' },
    },
    notes: [
      'Whichever member owns it (`apikeys list` shows the ids). The webhook endpoints registered with',
      'the key are deleted with it; the audit log names the key’s owner.',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const id = requiredString(values.id, '--id');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'DELETE',
        path: `/apikeys/${encodeURIComponent(id)}?workspace=${encodeURIComponent(workspace)}`,
        direct: (db) => adminCredentials.deleteApiKeyOfWorkspace(db, { workspace, id }),
      });
      printWithStore(
        values.json === true,
        result,
        `Deleted API key ${result.id} of workspace ${result.workspace}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'service-tokens list',
    summary: 'List the service tokens of a workspace (never their secrets)',
    usage: 'edgegate service-tokens list --workspace SLUG [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json, workspace: { type: 'string' } },
    notes: EXISTING_STORE_NOTE,
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'GET',
        path: `/service-tokens?workspace=${encodeURIComponent(workspace)}`,
        direct: (db) => adminCredentials.listServiceTokensForWorkspace(db, { workspace }),
      });
      const rows = result.map((t) => [
        t.id,
        t.name,
        t.accesses.map((a) => (a.cacheId ? `${a.scope}@${a.cacheId}` : a.scope)).join(' '),
        t.expiresAt?.slice(0, 10) ?? 'never',
        t.lastUsedAt?.slice(0, 16).replace('T', ' ') ?? 'never',
      ]);
      printWithStore(
        values.json === true,
        result,
        `${table(['ID', 'NAME', 'ACCESSES', 'EXPIRES', 'LAST USED'], rows)}${count(result.length, 'service token')} in workspace ${workspace}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'service-tokens delete',
    summary: 'Delete a service token of a workspace: it stops working at once',
    usage: 'edgegate service-tokens delete --workspace SLUG --id TOKEN_ID [--json] [settings]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      workspace: { type: 'string' },
      id: { type: 'string' },
    },
    notes: [
      'The webhook endpoints registered with the token are deleted with it; the audit log names the',
      'workspace’s earliest admin.',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const id = requiredString(values.id, '--id');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'DELETE',
        path: `/service-tokens/${encodeURIComponent(id)}?workspace=${encodeURIComponent(workspace)}`,
        direct: (db) => adminCredentials.deleteServiceTokenOfWorkspace(db, { workspace, id }),
      });
      printWithStore(
        values.json === true,
        result,
        `Deleted service token ${result.id} of workspace ${result.workspace}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'caches list',
    summary: 'List the caches of a workspace',
    usage: 'edgegate caches list --workspace SLUG [--json] [settings]',
    needsStore: true,
    options: { ...settingOptions, ...json, workspace: { type: 'string' } },
    notes: EXISTING_STORE_NOTE,
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'GET',
        path: `/caches?workspace=${encodeURIComponent(workspace)}`,
        direct: (db) => adminCaches.listCachesOfWorkspace(db, { workspace }),
      });
      const rows = result.map((c) => [
        c.id,
        c.name,
        c.type,
        `${c.hostname}:${c.port}`,
        c.defaultMode,
        `${c.defaultTtlSeconds} s`,
      ]);
      printWithStore(
        values.json === true,
        result,
        `${table(['ID', 'NAME', 'TYPE', 'ORIGIN', 'MODE', 'TTL'], rows)}${count(result.length, 'cache')} in workspace ${workspace}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'caches create',
    summary: 'Create a cache in front of an origin database',
    usage:
      'edgegate caches create --workspace SLUG --name N --type T --origin-host H --origin-port P [--mode M] [--ttl SECONDS] [--json] [settings]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      workspace: { type: 'string' },
      name: { type: 'string' },
      type: { type: 'string' },
      'origin-host': { type: 'string' },
      'origin-port': { type: 'string' },
      mode: { type: 'string' },
      ttl: { type: 'string' },
    },
    notes: [
      '--origin-host and --origin-port: the origin database the cache fronts (the edge connects there).',
      '--type: postgres, mysql, mariadb or mssql. --mode: the default caching mode, auto (the default),',
      'manual or off. --ttl: the default TTL in seconds (60 when absent).',
      'The origin passes the same guard as through the API: the hostname must resolve, and private or',
      'loopback addresses only where ORIGIN_PRIVATE allows them. No database password is stored:',
      'clients send their own through the edge. Created in the name of the workspace’s earliest admin.',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const input = {
        workspace,
        name: requiredString(values.name, '--name'),
        type: requiredString(values.type, '--type'),
        hostname: requiredString(values['origin-host'], '--origin-host'),
        port: integerOption(
          requiredString(values['origin-port'], '--origin-port'),
          '--origin-port',
        ),
        ...(typeof values.mode === 'string' ? { defaultMode: values.mode } : {}),
        ...(typeof values.ttl === 'string'
          ? { defaultTtlSeconds: integerOption(values.ttl, '--ttl') }
          : {}),
      } as adminCaches.CreateCacheInput;
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'POST',
        path: '/caches',
        body: input,
        direct: (db) =>
          adminCaches.createCacheInWorkspace(db, input, {
            privateRanges: settings.originPrivate,
          }),
      });
      printWithStore(
        values.json === true,
        result,
        `Created cache “${result.name}” (${result.id}) in workspace ${workspace}, in front of ${result.type} at ${result.hostname}:${result.port}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'caches delete',
    summary: 'Delete a cache: connection strings through it stop working',
    usage: 'edgegate caches delete --workspace SLUG --id CACHE_ID [--json] [settings]',
    needsStore: true,
    options: {
      ...settingOptions,
      ...json,
      workspace: { type: 'string' },
      id: { type: 'string' },
    },
    notes: [
      'Edges forget the cache at once; clients connecting with its id are refused. Its rules and',
      'metrics go with it. The audit log names the workspace’s earliest admin.',
      EXISTING_STORE_NOTE,
    ].join('\n'),
    async run(values, config) {
      const workspace = requiredString(values.workspace, '--workspace');
      const id = requiredString(values.id, '--id');
      const settings = config();
      const { result, via } = await runAdmin(settings, {
        method: 'DELETE',
        path: `/caches/${encodeURIComponent(id)}?workspace=${encodeURIComponent(workspace)}`,
        direct: (db) => adminCaches.deleteCacheOfWorkspace(db, { workspace, id }),
      });
      printWithStore(
        values.json === true,
        result,
        `Deleted cache ${result.id} of workspace ${result.workspace}.`,
        { config: settings, via },
      );
    },
  },
  {
    name: 'sessions list',
    summary: "List the open client sessions of the running process's edge (SHOW CLIENTS)",
    usage: 'edgegate sessions list [--cache ID] [--json] [settings]',
    options: { ...settingOptions, ...json, cache: { type: 'string' } },
    notes:
      'Asks the `edgegate start` or `edgegate edge` process of this DATA_DIR, through its admin socket.',
    async run(values, config) {
      const cache = typeof values.cache === 'string' ? values.cache : undefined;
      const result = await callRunningServer<SessionRow[]>(
        config(),
        'GET',
        `/sessions${cache ? `?cache=${encodeURIComponent(cache)}` : ''}`,
      );
      const rows = result.map((s) => [
        s.id,
        s.protocol,
        s.cacheId ?? '-',
        s.user ?? '-',
        s.database ?? '-',
        s.clientAddress,
        s.startedAt,
        s.state,
        String(s.queries),
        `${s.bytesIn}/${s.bytesOut}`,
      ]);
      print(
        values.json === true,
        result,
        `${table(['ID', 'PROTOCOL', 'CACHE', 'USER', 'DATABASE', 'CLIENT', 'STARTED', 'STATE', 'QUERIES', 'BYTES IN/OUT'], rows)}${count(result.length, 'session')}${cache ? ` of cache ${cache}` : ''}.`,
      );
    },
  },
  {
    name: 'sessions kill',
    summary: "End an open client session of the running process's edge (KILL)",
    usage: 'edgegate sessions kill --id ID [--json] [settings]',
    options: { ...settingOptions, ...json, id: { type: 'string' } },
    notes:
      'The client reads Postgres FATAL 57P01 or MySQL error 1927; find the id with `edgegate sessions list`.',
    async run(values, config) {
      const id = requiredString(values.id, '--id');
      const result = await callRunningServer<{ id: string; ended: boolean }>(
        config(),
        'DELETE',
        `/sessions/${encodeURIComponent(id)}`,
      );
      print(values.json === true, result, `Ended session ${id}.`);
    },
  },
  {
    name: 'demo',
    summary: 'Try Edgegate with sample data: a demo user, app, origin database and cache',
    usage: 'edgegate demo [--origin-port P] [--json] [settings]',
    options: { ...settingOptions, ...json, 'origin-port': { type: 'string' } },
    notes: [
      'Serves a small sample database (PGlite, in memory) over the Postgres protocol on 127.0.0.1 as',
      'the demo origin, creates a demo user with a workspace, an OAuth app and a cache for that origin',
      'on the embedded store, and prints how to log in, the app’s credentials and an edge connection',
      'string. Next to a running `npm start` (same DATA_DIR) it works through that server; otherwise',
      'it starts one itself. It keeps serving until stopped (Ctrl-C). The cache points at 127.0.0.1:',
      'the server must allow loopback origins (ORIGIN_PRIVATE=allow, the default).',
    ].join('\n'),
    async run(values, config) {
      const originPort = stringOption(values['origin-port']);
      if (originPort !== undefined && !/^\d+$/.test(originPort))
        throw new CliError('--origin-port must be a port number', 2);
      await runDemo(config(), {
        json: values.json === true,
        originPort: originPort === undefined ? 0 : Number(originPort),
      });
    },
  },
];

/** A list typed as words separated by spaces or commas; undefined when the flag is absent. */
function listOption(value: unknown): string[] | undefined {
  if (typeof value !== 'string') return undefined;
  return value.split(/[\s,]+/).filter(Boolean);
}

/** An ISO date-time as given, or a duration from now (30d, 12h, 45m) turned into one. */
function expiryOption(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const duration = /^(\d+)([dhm])$/.exec(value.trim());
  if (!duration) return value;
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[duration[2] as 'd' | 'h' | 'm'];
  return new Date(Date.now() + Number(duration[1]) * unit).toISOString();
}

interface SessionRow {
  id: string;
  protocol: string;
  cacheId: string | null;
  user: string | null;
  database: string | null;
  clientAddress: string;
  startedAt: string;
  bytesIn: number;
  bytesOut: number;
  queries: number;
  state: string;
}

function requiredString(value: unknown, flag: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new CliError(`${flag} is required`, 2);
  return value;
}

function integerOption(value: string, flag: string): number {
  if (!/^\d+$/.test(value.trim())) throw new CliError(`${flag} must be a whole number`, 2);
  return Number(value);
}

/** "3 users", "1 user", "0 users". */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Under a table: "3 users", "1 user", "No users". */
function count(n: number, noun: string): string {
  return n === 0 ? `No ${noun}s` : plural(n, noun);
}

async function migrateStatus(json: boolean, config: () => Config) {
  // Reporting must not change the store: it is not migrated (and never created: needsStore).
  const settings = config();
  const { result, via } = await runAdmin<MigrationStatus>(settings, {
    method: 'GET',
    path: '/migrations',
    migrate: false,
    direct: (db) => migrationStatus(db),
  });
  const rows = [
    ...result.applied.map((m) => [
      m.name,
      `applied ${m.executedAt.slice(0, 19).replace('T', ' ')}`,
    ]),
    ...result.pending.map((name) => [name, 'pending']),
  ];
  const summary =
    result.pending.length === 0
      ? `Store is up to date (${result.applied.length} migrations applied).`
      : `${result.pending.length} of ${rows.length} migrations pending: \`edgegate migrate\` (or a server's start) applies them.`;
  printWithStore(json, result, `${table(['MIGRATION', 'STATE'], rows)}${summary}`, {
    config: settings,
    via,
  });
}

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
  // Each resource's commands together (users create, users list, …), in order of first mention.
  const resourceOf = (command: Command) => command.name.split(' ')[0];
  const byResource = [...new Set(commands.map(resourceOf))].flatMap((resource) =>
    commands.filter((command) => resourceOf(command) === resource),
  );
  return [
    'Usage: edgegate <command> [options]',
    '       edgegate --version',
    '',
    'Edgegate: a self-hostable database edge cache with a partner platform.',
    '',
    'Commands:',
    ...byResource.map((c) => `  ${c.name.padEnd(22)} ${c.summary}`),
    '',
    "Run `edgegate <command> --help` for a command's options.",
    '',
    'Settings (every command; flag, environment variable):',
    settingsHelp(),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    process.stdout.write(`edgegate ${VERSION}\n`);
    return 0;
  }
  const words = argv.filter((a) => !a.startsWith('-'));
  const command =
    commands.find((c) => c.name === words.slice(0, 2).join(' ')) ??
    commands.find((c) => c.name === words[0]);
  if (!command) {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(mainHelp() + '\n');
      return 0;
    }
    if (words.length === 0)
      throw new CliError(
        `no command before ${argv.join(' ')}; run \`edgegate --help\` for the list, \`edgegate --version\` for the version`,
        2,
      );
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
  // Commands check their own arguments first, then ask for the config: the store check runs there.
  await command.run(values, () => {
    const needsStore =
      typeof command.needsStore === 'function' ? command.needsStore(values) : command.needsStore;
    if (needsStore)
      refuseNewEmbeddedStore(
        parseConfig(process.env, flagsFrom(values), fileFrom(values)),
        values.init === true,
        'init' in command.options,
      );
    return configFrom(values);
  });
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
