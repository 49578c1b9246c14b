// The operator CLI as an operator runs it: real processes, a real embedded store, a running server.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../server/test/helpers/stores.ts';
import { openStore } from '../../server/src/db/store.ts';
import { createKeyring } from '../../server/src/connect/keyring.ts';
import { openConnection, saveConnection } from '../../server/src/connect/connections.ts';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
const run = promisify(execFile);

async function edgegate(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs the CLI from `cwd` with exactly `env`, as an operator in another folder would. */
async function runIn(cwd: string, args: string[], env: NodeJS.ProcessEnv) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...env, LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'eg-cli-'));

describe('edgegate CLI', { timeout: 240_000 }, () => {
  it('lists its commands and settings with --help', async () => {
    const { code, stdout } = await edgegate(['--help']);
    expect(code).toBe(0);
    for (const command of [
      'start',
      'server',
      'edge',
      'migrate',
      'users create',
      'workspaces create',
    ]) {
      expect(stdout).toContain(`  ${command}`);
    }
    expect(stdout).toContain('--database-url');
    expect(stdout).toContain('DATABASE_URL');
    expect(stdout).toMatch(/--edge-max-connections +EDGE_MAX_CONNECTIONS +\S/);
    expect(stdout).toMatch(
      /--edge-max-connections-per-address EDGE_MAX_CONNECTIONS_PER_ADDRESS \S/,
    );
    expect(stdout).toMatch(/--edge-login-timeout-seconds +EDGE_LOGIN_TIMEOUT_SECONDS +\S/);
  });

  it('prints its version with --version and -v, the one the control plane reports', async () => {
    const { version } = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '../../server/package.json'), 'utf8'),
    ) as { version: string };
    for (const flag of ['--version', '-v']) {
      const { code, stdout, stderr } = await edgegate([flag]);
      expect(code, stderr).toBe(0);
      expect(stdout).toBe(`edgegate ${version}\n`);
    }
    const stray = await edgegate(['--version', '--json']);
    expect(stray.code).toBe(2);
    expect(stray.stderr.trim()).toBe(
      'edgegate: no command before --version --json; run `edgegate --help` for the list, `edgegate --version` for the version',
    );
  });

  it.each([
    'start',
    'server',
    'edge',
    'migrate',
    'users create',
    'workspaces create',
    'keys rotate',
    'apikeys create',
    'service-tokens create',
  ])('has --help for %s', async (command) => {
    const { code, stdout } = await edgegate([...command.split(' '), '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Usage: edgegate ${command}`));
  });

  it('explains bad input in one line and exits non-zero', async () => {
    const cases: [string[], number, RegExp][] = [
      [['frobnicate'], 2, /^edgegate: unknown command "frobnicate"/],
      [['users', 'create', '--password', 'long enough pw'], 2, /^edgegate: --email is required$/],
      [
        ['users', 'create', '--email', 'a@b.co', '--pasword', 'x'],
        2,
        /^edgegate: Unknown option '--pasword'/,
      ],
      [
        ['migrate', '--port', 'eighty', '--data-dir', tempDir()],
        1,
        /^edgegate: invalid configuration: PORT \(--port\) must be a port number/,
      ],
      [
        [
          'users',
          'create',
          '--email',
          'nope',
          '--password',
          'long enough pw',
          '--data-dir',
          tempDir(),
          '--init',
        ],
        1,
        /^edgegate: email: Enter a valid email address$/,
      ],
      [
        [
          'workspaces',
          'create',
          '--name',
          'X',
          '--owner',
          'ghost@example.com',
          '--data-dir',
          tempDir(),
          '--init',
        ],
        1,
        /^edgegate: No user with email ghost@example.com/,
      ],
    ];
    for (const [args, exitCode, message] of cases) {
      const result = await edgegate(args);
      expect(result.code, args.join(' ')).toBe(exitCode);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr.trim()).toMatch(message);
    }
  });

  it('creates users and workspaces on the embedded store, with --json for scripts', async () => {
    const dataDir = tempDir();
    const user = await edgegate([
      'users',
      'create',
      '--email',
      'Ops@Example.com',
      '--password',
      'long enough pw',
      '--name',
      'Ops',
      '--data-dir',
      dataDir,
      '--init',
      '--json',
    ]);
    expect(user.code).toBe(0);
    expect(JSON.parse(user.stdout)).toMatchObject({
      email: 'ops@example.com',
      name: 'Ops',
      personalWorkspace: { slug: 'opss-workspace' },
    });
    const workspace = await edgegate([
      'workspaces',
      'create',
      '--name',
      'Data Team',
      '--owner',
      'ops@example.com',
      '--data-dir',
      dataDir,
      '--json',
    ]);
    expect(JSON.parse(workspace.stdout)).toMatchObject({
      name: 'Data Team',
      slug: 'data-team',
      owner: 'ops@example.com',
    });
    const human = await edgegate([
      'users',
      'create',
      '--email',
      'two@example.com',
      '--password',
      'long enough pw',
      '--data-dir',
      dataDir,
    ]);
    expect(human.stdout).toMatch(/^Created user two@example.com \(usr_\w+\) with workspace/);
    expect(human.stdout).toContain(
      `Store: the embedded store in ${dataDir} (no server was running on it).`,
    );
    const migrate = await edgegate(['migrate', '--data-dir', dataDir, '--json']);
    expect(JSON.parse(migrate.stdout)).toEqual({
      migrations: [
        '0001-foundation',
        '0002-oauth',
        '0003-api',
        '0004-edge-metrics',
        '0005-connect',
        '0006-grant-caches',
        '0007-webhook-owners',
        '0008-cache-creators',
        '0009-password-verified',
        '0010-connect-end-user',
        '0011-user-disabled',
        '0012-cache-invalidation',
        '0013-replication-lease',
        '0014-shared-results',
      ],
    });
  });

  it('rotates the keys of stored secrets, and re-wraps them after the root secret changed', async () => {
    const database = await createTestDatabase();
    const oldSecret = 'old-root-secret-old-root-secret-0123456789';
    const newSecret = 'new-root-secret-new-root-secret-0123456789';
    try {
      const env = { DATABASE_URL: database.url, EDGEGATE_SECRET: oldSecret };
      const user = await edgegate(
        [
          'users',
          'create',
          '--email',
          'keys@example.com',
          '--password',
          'long enough pw',
          '--json',
        ],
        env,
      );
      const workspaceId = JSON.parse(user.stdout).personalWorkspace.id as string;
      const store = await openStore({ databaseUrl: database.url, dataDir: 'unused' });
      try {
        const row = await store.db.transaction().execute((tx) =>
          saveConnection(tx, createKeyring(oldSecret), {
            workspaceId,
            type: 'postgresql',
            name: 'orders',
            config: { host: 'db.example.com', port: 5432, user: 'app', password: 's3cret' },
            clientId: null,
            actorUserId: null,
          }),
        );
        const rotated = await edgegate(['keys', 'rotate', '--json'], {
          ...env,
          EDGEGATE_SECRET: newSecret,
          EDGEGATE_PREVIOUS_SECRET: oldSecret,
        });
        expect(rotated.code, rotated.stderr).toBe(0);
        expect(rotated.stderr).toContain('Rotating keys');
        expect(JSON.parse(rotated.stdout)).toMatchObject({
          rewrappedKeys: 1,
          newKeys: 1,
          resealedConnections: 1,
          retiredKeys: 1,
        });
        const after = await store.db
          .selectFrom('connections')
          .selectAll()
          .where('id', '=', row.id)
          .executeTakeFirstOrThrow();
        expect(after.key_id).not.toBe(row.key_id);
        expect((await openConnection(store.db, createKeyring(newSecret), after)).password).toBe(
          's3cret',
        );
        const human = await edgegate(['keys', 'rotate'], { ...env, EDGEGATE_SECRET: newSecret });
        expect(human.stdout).toMatch(/^Rotated: 1 new data keys, 1 connections/);
      } finally {
        await store.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('works against Postgres with DATABASE_URL', async () => {
    const database = await createTestDatabase();
    try {
      const env = { DATABASE_URL: database.url };
      expect((await edgegate(['migrate'], env)).stdout).toMatch(
        /^Store is up to date \(\d+ migrations applied\)\./,
      );
      const user = await edgegate(
        ['users', 'create', '--email', 'pg@example.com', '--password', 'long enough pw', '--json'],
        env,
      );
      expect(JSON.parse(user.stdout)).toMatchObject({ email: 'pg@example.com' });
    } finally {
      await database.drop();
    }
  });

  it('will not create a new embedded store from a management command without --init', async () => {
    const cwd = tempDir();
    for (const args of [
      ['users', 'create', '--email', 'lost@example.com', '--password', 'long enough pw'],
      ['workspaces', 'create', '--name', 'Lost', '--owner', 'lost@example.com'],
      [
        'apps',
        'create',
        '--owner-user',
        'lost@example.com',
        '--name',
        'Lost',
        '--redirect-uri',
        'https://x.example/cb',
        '--scopes',
        'caches:read',
      ],
      ['apikeys', 'create', '--workspace', 'lost', '--user', 'lost@example.com'],
      ['service-tokens', 'create', '--workspace', 'lost'],
      ['keys', 'rotate'],
    ]) {
      const { DATA_DIR: _unset, ...env } = process.env;
      const refused = await runIn(cwd, args, env);
      expect(refused.code, args.join(' ')).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(
        `edgegate: there is no store in ${join(cwd, 'data')} (DATA_DIR), and this command will not create a new, empty one.`,
      );
      expect(refused.stderr).toContain('add --init');
      expect(refused.stderr).toContain('--data-dir DIR');
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  describe('while `edgegate start` runs on the same data directory', () => {
    const dataDir = tempDir();
    const server = spawn(
      process.execPath,
      [
        BIN,
        'start',
        '--data-dir',
        dataDir,
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
      ],
      {
        // The pre-stop delay has its own test (signals.test.ts); here it would only add 5 s.
        env: { ...process.env, LOG_LEVEL: 'info', SHUTDOWN_DELAY_SECONDS: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const url = new Promise<string>((resolveUrl, reject) => {
      server.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /"url":"(http:\/\/[^"]+)"/.exec(output);
        if (match?.[1]) resolveUrl(match[1]);
      });
      server.on('exit', (code) => reject(new Error(`server exited early (${code}): ${output}`)));
    });
    const exited = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));

    afterAll(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });

    it('creates a user through the running server, who can then log in', async () => {
      const base = await url;
      const created = await edgegate([
        'users',
        'create',
        '--email',
        'live@example.com',
        '--password',
        'long enough pw',
        '--data-dir',
        dataDir,
        '--json',
      ]);
      expect(created.stderr).toBe('');
      expect(JSON.parse(created.stdout)).toMatchObject({ email: 'live@example.com' });
      const human = await edgegate([
        'workspaces',
        'create',
        '--name',
        'Live Team',
        '--owner',
        'live@example.com',
        '--data-dir',
        dataDir,
      ]);
      expect(human.stdout).toContain(
        `Store: the embedded store in ${dataDir}, through the running server.`,
      );
      expect(output).toContain('"url":"/users"');

      const loginPage = await fetch(`${base}/login`);
      const anon = /eg_csrf=([^;]+)/.exec(loginPage.headers.get('set-cookie') ?? '')?.[1];
      const csrf = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())?.[1];
      const login = await fetch(`${base}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: `eg_csrf=${anon}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          _csrf: csrf ?? '',
          email: 'live@example.com',
          password: 'long enough pw',
        }),
      });
      expect(login.status).toBe(303);
      expect(login.headers.get('set-cookie')).toContain('eg_session=');

      const duplicate = await edgegate([
        'users',
        'create',
        '--email',
        'live@example.com',
        '--password',
        'long enough pw',
        '--data-dir',
        dataDir,
      ]);
      expect(duplicate.code).toBe(1);
      expect(duplicate.stderr.trim()).toBe('edgegate: An account with this email already exists.');
    });

    it('creates an API key and a service token through the running server; both work once', async () => {
      const base = await url;
      const api = (authorization: string) =>
        fetch(`${base}/v1/caches`, { headers: { authorization } });
      const user = await edgegate(
        ['users', 'create', '--email', 'keys@example.com', '--password', 'long enough pw'],
        { DATA_DIR: dataDir },
      );
      expect(user.code, user.stderr).toBe(0);
      const slug = /\((keyss-workspace)\)/.exec(user.stdout)?.[1] as string;
      expect(slug).toBeDefined();

      const key = await edgegate(
        [
          'apikeys',
          'create',
          '--workspace',
          slug,
          '--user',
          'keys@example.com',
          '--scopes',
          'caches:read',
          '--expires',
          '30d',
          '--json',
        ],
        { DATA_DIR: dataDir },
      );
      expect(key.code, key.stderr).toBe(0);
      const apiKey = JSON.parse(key.stdout) as { key: string; scopes: string[]; expiresAt: string };
      expect(apiKey.key).toMatch(/^egk_/);
      expect(apiKey.scopes).toEqual(['caches:read']);
      expect(Date.parse(apiKey.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);
      expect(output).toContain('"url":"/apikeys"');
      expect((await api(`Bearer ${apiKey.key}`)).status).toBe(200);
      expect((await api('Bearer egk_not-a-real-key-at-all-000000000000')).status).toBe(401);

      const human = await edgegate(
        ['service-tokens', 'create', '--workspace', slug, '--name', 'CI'],
        { DATA_DIR: dataDir },
      );
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toMatch(
        /^Created service token “CI” \(st_\w+\) for workspace keyss-workspace with caches:read, metrics:read:$/m,
      );
      const id = /\((st_\w+)\)/.exec(human.stdout)?.[1] as string;
      const token = /^(egst_\S+)$/m.exec(human.stdout)?.[1] as string;
      expect((await api(`${id}:${token}`)).status).toBe(200);
      expect(human.stdout).toContain('through the running server');

      const refused = await edgegate(
        ['apikeys', 'create', '--workspace', slug, '--user', 'live@example.com'],
        { DATA_DIR: dataDir },
      );
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toBe(
        `edgegate: No workspace with slug ${slug} that live@example.com is a member of.`,
      );
      const badScope = await edgegate(
        ['service-tokens', 'create', '--workspace', slug, '--accesses', 'caches:destroy'],
        { DATA_DIR: dataDir },
      );
      expect(badScope.code).toBe(1);
      expect(badScope.stderr).toMatch(/^edgegate: accesses\.0\.scope: /);
    });

    it('refuses a second server on the same data directory', async () => {
      await url;
      const second = await edgegate(['server', '--data-dir', dataDir, '--port', '0']);
      expect(second.code).toBe(1);
      expect(second.stderr.trim()).toMatch(
        /^edgegate: another Edgegate process \(pid \d+\) is using /,
      );
    });

    it('stops gracefully on SIGTERM', async () => {
      await url;
      server.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output).toContain('SIGTERM received');
    });
  });
});
