// `edgegate apps create` as an operator runs it: a real process on a real embedded store.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '@edgegate/server';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
const run = promisify(execFile);

async function edgegate(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      timeout: 180_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('edgegate apps create', { timeout: 240_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'eg-cli-apps-'));
  const app = (...args: string[]) =>
    edgegate([
      'apps',
      'create',
      '--name',
      'Report Builder',
      '--redirect-uri',
      'https://reports.example.com/callback',
      '--scopes',
      'caches:read,metrics:read',
      ...args,
      '--data-dir',
      dataDir,
    ]);

  beforeAll(async () => {
    const user = await edgegate([
      'users',
      'create',
      '--email',
      'partner@example.com',
      '--password',
      'long enough pw',
      '--data-dir',
      dataDir,
      '--init',
    ]);
    expect(user.code, user.stderr).toBe(0);
    const workspace = await edgegate([
      'workspaces',
      'create',
      '--name',
      'Partner Team',
      '--owner',
      'partner@example.com',
      '--data-dir',
      dataDir,
    ]);
    expect(workspace.code, workspace.stderr).toBe(0);
  }, 400_000);

  it('has --help', async () => {
    const { code, stdout } = await edgegate(['apps', 'create', '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^Usage: edgegate apps create \(--owner-user EMAIL \| --workspace SLUG\)/,
    );
    expect(stdout).toContain('--redirect-uri may be repeated');
    expect((await edgegate(['--help'])).stdout).toContain('  apps create');
  });

  it('registers an app for a user and prints the secret once, as JSON for scripts', async () => {
    const result = await app(
      '--owner-user',
      'Partner@Example.com',
      '--redirect-uri',
      'http://127.0.0.1/cb',
      '--scopes',
      'caches:read caches:write offline_access',
      '--description',
      'Builds reports',
      '--homepage-url',
      'https://reports.example.com',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const created = JSON.parse(result.stdout);
    expect(created).toMatchObject({
      name: 'Report Builder',
      owner: 'partner@example.com',
      clientType: 'confidential',
    });
    expect(created.clientId).toMatch(/^egc_/);
    expect(created.clientSecret).toMatch(/^egcs_/);
    const secret = created.clientSecret as string;

    // The store keeps only a digest of it: nothing the app can be shown from holds the secret.
    const store = await openStore({ dataDir });
    try {
      const registered = await store.db
        .selectFrom('oauth_apps')
        .selectAll()
        .where('client_id', '=', created.clientId)
        .executeTakeFirstOrThrow();
      const secrets = await store.db
        .selectFrom('oauth_app_secrets')
        .selectAll()
        .where('app_id', '=', registered.id)
        .execute();
      expect(secrets.map((row) => row.secret_hash)).toEqual([
        createHash('sha256').update(secret).digest('base64url'),
      ]);
      expect(JSON.stringify([registered, secrets])).not.toContain(secret);
    } finally {
      await store.close();
    }

    // Never printed again: the next command's output does not carry it.
    const next = await app('--owner-user', 'partner@example.com', '--json');
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).clientSecret).toMatch(/^egcs_/);
    expect(next.stdout + next.stderr).not.toContain(secret);
  });

  it('registers a workspace app, in words for people', async () => {
    const result = await app('--workspace', 'partner-team');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(
      /^Created app “Report Builder” for workspace partner-team: client id egc_\w+, client secret egcs_\S+ \(shown only now\)\.$/m,
    );
    expect(result.stdout).toContain(`Store: the embedded store in ${dataDir}`);
  });

  it('takes an http homepage on loopback, as redirect URIs do, and https elsewhere', async () => {
    for (const homepage of ['http://localhost:3000', 'http://127.0.0.1:3000/', 'http://[::1]/']) {
      const result = await app(
        '--owner-user',
        'partner@example.com',
        '--redirect-uri',
        'http://localhost:3000/callback',
        '--homepage-url',
        homepage,
        '--json',
      );
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ clientId: expect.stringMatching(/^egc_/) });
    }
    const refused = await app(
      '--owner-user',
      'partner@example.com',
      '--homepage-url',
      'http://reports.example.com',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^edgegate: homepageUrl: Homepage URL must be an https URL \(http only for localhost, 127\.0\.0\.1 or \[::1\]\)/,
    );
    expect((await edgegate(['apps', 'create', '--help'])).stdout).toContain(
      'or http ones on loopback (http://localhost,',
    );
  });

  it('registers a public app without a secret', async () => {
    const json = await app('--owner-user', 'partner@example.com', '--public', '--json');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ clientType: 'public', clientSecret: null });
    const human = await app('--owner-user', 'partner@example.com', '--public');
    expect(human.stdout).toMatch(/client id egc_\w+ \(public client, no secret\)\.$/m);
  });

  it('explains bad input in one line and exits non-zero', async () => {
    const cases: [string[], number, RegExp][] = [
      [[], 2, /^edgegate: exactly one of --owner-user or --workspace is required$/],
      [
        ['--owner-user', 'partner@example.com', '--workspace', 'partner-team'],
        2,
        /^edgegate: exactly one of --owner-user or --workspace is required$/,
      ],
      [['--owner-user', 'ghost@example.com'], 1, /^edgegate: No user with email ghost@example.com/],
      [['--workspace', 'nowhere'], 1, /^edgegate: No workspace with slug nowhere\.$/],
      [
        ['--owner-user', 'partner@example.com', '--redirect-uri', 'http://reports.example.com/cb'],
        1,
        /^edgegate: redirectUris\.1: http:\/\/reports\.example\.com\/cb must use https/,
      ],
      [
        ['--owner-user', 'partner@example.com', '--scopes', 'caches:destroy'],
        1,
        /^edgegate: scopes\.0: /,
      ],
    ];
    for (const [args, exitCode, message] of cases) {
      const result = await app(...args);
      expect(result.code, args.join(' ')).toBe(exitCode);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr.trim()).toMatch(message);
    }
  });

  describe('while `edgegate start` runs on the same data directory', () => {
    const liveDir = mkdtempSync(join(tmpdir(), 'eg-cli-apps-live-'));
    const server = spawn(
      process.execPath,
      [
        BIN,
        'start',
        '--data-dir',
        liveDir,
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
      ],
      {
        env: { ...process.env, LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const started = new Promise<void>((resolveStarted, reject) => {
      server.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('"url":"http')) resolveStarted();
      });
      server.on('exit', (code) => reject(new Error(`server exited early (${code}): ${output}`)));
    });

    afterAll(() => {
      if (server.exitCode === null) server.kill('SIGTERM');
    });

    it('registers the app through the running server', async () => {
      await started;
      const user = await edgegate([
        'users',
        'create',
        '--email',
        'live@example.com',
        '--password',
        'long enough pw',
        '--data-dir',
        liveDir,
      ]);
      expect(user.code, user.stderr).toBe(0);
      const created = await edgegate([
        'apps',
        'create',
        '--owner-user',
        'live@example.com',
        '--name',
        'Live App',
        '--redirect-uri',
        'https://live.example.com/cb',
        '--redirect-uri',
        'https://live.example.com/cb2',
        '--scopes',
        'caches:read',
        '--data-dir',
        liveDir,
        '--json',
      ]);
      expect(created.stderr).toBe('');
      expect(JSON.parse(created.stdout)).toMatchObject({
        name: 'Live App',
        clientType: 'confidential',
      });
      expect(output).toContain('"url":"/apps"');
    });
  });
});
