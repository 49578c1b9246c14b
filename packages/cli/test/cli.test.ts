// The operator CLI as an operator runs it: real processes, a real embedded store, a running server.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
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

const tempDir = () => mkdtempSync(join(tmpdir(), 'eg-cli-'));

describe('edgegate CLI', () => {
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
  });

  it.each([
    'start',
    'server',
    'edge',
    'migrate',
    'users create',
    'workspaces create',
    'keys rotate',
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

  describe('while `edgegate start` runs on the same data directory', () => {
    const dataDir = tempDir();
    const server = spawn(
      process.execPath,
      [BIN, 'start', '--data-dir', dataDir, '--port', '0', '--edge-pg-port', '0'],
      {
        env: { ...process.env, LOG_LEVEL: 'info' },
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
