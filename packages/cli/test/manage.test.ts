// The operator's list, create, delete and status commands as an operator runs them: real
// processes on a real Postgres store, and through a running server's admin socket on an
// embedded one.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '@edgegate/server';
import type { FastifyInstance } from 'fastify';
import { CookieFetch, csrfOf } from '../../server/test/helpers/browserless.ts';
import { startListeningApp } from '../../server/test/helpers/listening-app.ts';
import {
  obtainTokens,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  userIdOf,
} from '../../server/test/helpers/oauth-flow.ts';
import { createTestDatabase } from '../../server/test/helpers/stores.ts';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
const run = promisify(execFile);
const PASSWORD = 'long enough pw';

async function edgegate(args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...env, LOG_LEVEL: 'warn' },
      timeout: 60_000,
      ...(cwd ? { cwd } : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs a command that must succeed and returns its --json answer. */
async function json<T>(args: string[], env: NodeJS.ProcessEnv): Promise<T> {
  const result = await edgegate([...args, '--json'], env);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout) as T;
}

interface ListedCache {
  id: string;
  name: string;
  type: string;
  hostname: string;
  port: number;
  workspaceId: string;
}

const NEW_COMMANDS = [
  'users list',
  'users disable',
  'users enable',
  'workspaces list',
  'apikeys list',
  'apikeys delete',
  'service-tokens list',
  'service-tokens delete',
  'caches list',
  'caches create',
  'caches delete',
];

describe('edgegate list, create, delete and status commands', { timeout: 240_000 }, () => {
  it.each(NEW_COMMANDS)('lists %s in --help and has its own --help', async (command) => {
    const main = await edgegate(['--help']);
    expect(main.stdout).toContain(`  ${command}`);
    const own = await edgegate([...command.split(' '), '--help']);
    expect(own.code).toBe(0);
    expect(own.stdout).toMatch(new RegExp(`^Usage: edgegate ${command}`));
  });

  it('documents migrate --status in its --help', async () => {
    const help = await edgegate(['migrate', '--help']);
    expect(help.stdout).toContain('--status');
    expect(help.stdout).toContain('changes nothing');
  });

  describe('on a Postgres store (DATABASE_URL)', () => {
    let database: { url: string; drop(): Promise<void> };
    let env: NodeJS.ProcessEnv;
    let store: Store | undefined;

    beforeAll(async () => {
      database = await createTestDatabase();
      env = { ...process.env, DATABASE_URL: database.url };
    });
    afterAll(async () => {
      await store?.close();
      await database?.drop();
    });

    it('migrate --status reports pending migrations without applying them', async () => {
      const before = await json<{ applied: unknown[]; pending: string[] }>(
        ['migrate', '--status'],
        env,
      );
      expect(before.applied).toEqual([]);
      expect(before.pending[0]).toBe('0001-foundation');
      const human = await edgegate(['migrate', '--status'], env);
      expect(human.stdout).toMatch(/^0001-foundation +pending$/m);
      expect(human.stdout).toContain(
        `${before.pending.length} of ${before.pending.length} migrations pending: \`edgegate migrate\``,
      );
      expect(human.stdout).toMatch(/^Store: Postgres at 127\.0\.0\.1(:5432)?\/eg_test_\w+\.$/m);
      // Still nothing applied: reporting changed nothing.
      expect((await json<{ pending: string[] }>(['migrate', '--status'], env)).pending).toEqual(
        before.pending,
      );

      expect((await edgegate(['migrate'], env)).code).toBe(0);
      const after = await json<{ applied: { name: string; executedAt: string }[]; pending: [] }>(
        ['migrate', '--status'],
        env,
      );
      expect(after.pending).toEqual([]);
      expect(after.applied.map((m) => m.name)).toEqual(before.pending);
      expect(Date.now() - Date.parse(after.applied[0]!.executedAt)).toBeLessThan(600_000);
      const upToDate = await edgegate(['migrate', '--status'], env);
      expect(upToDate.stdout).toMatch(/^0001-foundation +applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
      expect(upToDate.stdout).toContain(
        `Store is up to date (${before.pending.length} migrations applied).`,
      );
    });

    it('lists users with their workspaces, and workspaces with members and caches', async () => {
      expect((await edgegate(['users', 'list'], env)).stdout).toMatch(/^No users\.$/m);
      for (const email of ['ann@example.com', 'bob@example.com']) {
        const name = email === 'ann@example.com' ? 'Ann' : 'Bob';
        const created = await edgegate(
          ['users', 'create', '--email', email, '--password', PASSWORD, '--name', name],
          env,
        );
        expect(created.code, created.stderr).toBe(0);
      }
      await json(['workspaces', 'create', '--name', 'Ops Team', '--owner', 'ann@example.com'], env);

      const users = await json<{ email: string; name: string; workspaces: string[] }[]>(
        ['users', 'list'],
        env,
      );
      expect(users.map(({ email, name, workspaces }) => ({ email, name, workspaces }))).toEqual([
        { email: 'ann@example.com', name: 'Ann', workspaces: ['anns-workspace', 'ops-team'] },
        { email: 'bob@example.com', name: 'Bob', workspaces: ['bobs-workspace'] },
      ]);
      const human = await edgegate(['users', 'list'], env);
      expect(human.stdout).toMatch(/^EMAIL +NAME +CREATED +STATUS +WORKSPACES$/m);
      expect(human.stdout).toMatch(
        /^ann@example\.com +Ann +\d{4}-\d\d-\d\d +active +anns-workspace, ops-team$/m,
      );
      expect(human.stdout).toMatch(/^2 users\.$/m);

      const workspaces = await json<{ slug: string; members: number; caches: number }[]>(
        ['workspaces', 'list'],
        env,
      );
      expect(workspaces.map(({ slug, members, caches }) => ({ slug, members, caches }))).toEqual([
        { slug: 'anns-workspace', members: 1, caches: 0 },
        { slug: 'bobs-workspace', members: 1, caches: 0 },
        { slug: 'ops-team', members: 1, caches: 0 },
      ]);
      expect((await edgegate(['workspaces', 'list'], env)).stdout).toMatch(
        /^ops-team +Ops Team +1 +0 +\d{4}-\d\d-\d\d$/m,
      );
    });

    it('lists the API keys of a workspace, never their secrets', async () => {
      const empty = await edgegate(['apikeys', 'list', '--workspace', 'ops-team'], env);
      expect(empty.stdout).toMatch(/^No API keys in workspace ops-team\.$/m);
      const created = await json<{ id: string; key: string; prefix: string }>(
        [
          'apikeys',
          'create',
          '--workspace',
          'ops-team',
          '--user',
          'ann@example.com',
          '--name',
          'deploy bot',
          '--scopes',
          'caches:read metrics:read',
        ],
        env,
      );
      const listed = await edgegate(['apikeys', 'list', '--workspace', 'ops-team', '--json'], env);
      expect(listed.stdout).not.toContain(created.key);
      expect(JSON.parse(listed.stdout)).toEqual([
        expect.objectContaining({
          id: created.id,
          name: 'deploy bot',
          prefix: created.prefix,
          user: 'ann@example.com',
          scopes: ['caches:read', 'metrics:read'],
          lastUsedAt: null,
        }),
      ]);
      const human = await edgegate(['apikeys', 'list', '--workspace', 'ops-team'], env);
      expect(human.stdout).not.toContain(created.key);
      expect(human.stdout).toContain(`${created.prefix}…`);
      expect(human.stdout).toMatch(
        new RegExp(
          `^${created.id} +deploy bot +\\S+ +ann@example\\.com +caches:read metrics:read +never +never$`,
          'm',
        ),
      );
      const other = await edgegate(['apikeys', 'list', '--workspace', 'nope'], env);
      expect(other.code).toBe(1);
      expect(other.stderr.trim()).toBe('edgegate: No workspace with slug nope.');

      // Bob's personal workspace does not hold Ann's key.
      const elsewhere = await edgegate(
        ['apikeys', 'delete', '--workspace', 'bobs-workspace', '--id', created.id],
        env,
      );
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stderr.trim()).toBe(
        `edgegate: No API key ${created.id} in workspace bobs-workspace.`,
      );
      const deleted = await edgegate(
        ['apikeys', 'delete', '--workspace', 'ops-team', '--id', created.id],
        env,
      );
      expect(deleted.code, deleted.stderr).toBe(0);
      expect(deleted.stdout).toMatch(
        new RegExp(`^Deleted API key ${created.id} of workspace ops-team\\.$`, 'm'),
      );
      expect(await json(['apikeys', 'list', '--workspace', 'ops-team'], env)).toEqual([]);
    });

    it('lists and deletes the service tokens of a workspace, never their secrets', async () => {
      const created = await json<{ id: string; token: string }>(
        ['service-tokens', 'create', '--workspace', 'ops-team', '--name', 'CI'].concat([
          '--accesses',
          'caches:read metrics:read',
        ]),
        env,
      );
      const listed = await edgegate(
        ['service-tokens', 'list', '--workspace', 'ops-team', '--json'],
        env,
      );
      expect(listed.stdout).not.toContain(created.token);
      const tokens = JSON.parse(listed.stdout) as {
        id: string;
        name: string;
        accesses: { scope: string; cacheId?: string | null }[];
      }[];
      expect(tokens.map(({ id, name }) => ({ id, name }))).toEqual([
        { id: created.id, name: 'CI' },
      ]);
      expect(tokens[0]!.accesses.map((a) => [a.scope, a.cacheId ?? null])).toEqual([
        ['caches:read', null],
        ['metrics:read', null],
      ]);
      const human = await edgegate(['service-tokens', 'list', '--workspace', 'ops-team'], env);
      expect(human.stdout).not.toContain(created.token);
      expect(human.stdout).toMatch(
        new RegExp(`^${created.id} +CI +caches:read metrics:read +never +never$`, 'm'),
      );
      expect(human.stdout).toMatch(/^1 service token in workspace ops-team\.$/m);
      const deleted = await edgegate(
        ['service-tokens', 'delete', '--workspace', 'ops-team', '--id', created.id],
        env,
      );
      expect(deleted.stdout).toMatch(
        new RegExp(`^Deleted service token ${created.id} of workspace ops-team\\.$`, 'm'),
      );
      expect(
        (await edgegate(['service-tokens', 'list', '--workspace', 'ops-team'], env)).stdout,
      ).toMatch(/^No service tokens in workspace ops-team\.$/m);
      const again = await edgegate(
        ['service-tokens', 'delete', '--workspace', 'ops-team', '--id', created.id],
        env,
      );
      expect(again.code).toBe(1);
      expect(again.stderr.trim()).toBe(
        `edgegate: No service token ${created.id} in this workspace.`,
      );
    });

    it('creates, lists and deletes caches, with the API’s checks', async () => {
      const cache = await json<ListedCache>(
        [
          'caches',
          'create',
          '--workspace',
          'ops-team',
          '--name',
          'orders',
          '--type',
          'postgres',
          '--origin-host',
          '127.0.0.1',
          '--origin-port',
          '5432',
          '--ttl',
          '30',
        ],
        env,
      );
      expect(cache).toMatchObject({ name: 'orders', type: 'postgres', port: 5432 });
      expect(cache.id).toMatch(/^cch_/);
      store = await openStore({
        databaseUrl: database.url,
        dataDir: mkdtempSync(join(tmpdir(), 'eg-')),
      });
      const row = await store.db
        .selectFrom('caches')
        .innerJoin('workspaces', 'workspaces.id', 'caches.workspace_id')
        .select(['caches.name', 'workspaces.slug', 'caches.default_ttl_seconds'])
        .where('caches.id', '=', cache.id)
        .executeTakeFirst();
      expect(row).toEqual({ name: 'orders', slug: 'ops-team', default_ttl_seconds: 30 });

      const human = await edgegate(
        [
          'caches',
          'create',
          '--workspace',
          'ops-team',
          '--name',
          'shop',
          '--type',
          'mariadb',
        ].concat(['--origin-host', 'localhost', '--origin-port', '3306', '--mode', 'manual']),
        env,
      );
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toMatch(
        /^Created cache “shop” \(cch_\w+\) in workspace ops-team, in front of mariadb at localhost:3306\.$/m,
      );
      const listed = await json<ListedCache[]>(['caches', 'list', '--workspace', 'ops-team'], env);
      expect(listed.map((c) => c.name).sort()).toEqual(['orders', 'shop']);
      const table = (await edgegate(['caches', 'list', '--workspace', 'ops-team'], env)).stdout;
      expect(table).toMatch(
        new RegExp(`^${cache.id} +orders +postgres +127\\.0\\.0\\.1:5432 +auto +30 s$`, 'm'),
      );
      expect(table).toMatch(/ +shop +mariadb +localhost:3306 +manual +60 s$/m);
      expect(table).toMatch(/^2 caches in workspace ops-team\.$/m);
      const counted = await json<{ slug: string; caches: number }[]>(['workspaces', 'list'], env);
      expect(counted.find((w) => w.slug === 'ops-team')?.caches).toBe(2);

      const deleted = await edgegate(
        ['caches', 'delete', '--workspace', 'ops-team', '--id', cache.id],
        env,
      );
      expect(deleted.code, deleted.stderr).toBe(0);
      expect(deleted.stdout).toMatch(
        new RegExp(`^Deleted cache ${cache.id} of workspace ops-team\\.$`, 'm'),
      );
      const left = await json<ListedCache[]>(['caches', 'list', '--workspace', 'ops-team'], env);
      expect(left.map((c) => c.name)).toEqual(['shop']);
      const again = await edgegate(
        ['caches', 'delete', '--workspace', 'ops-team', '--id', cache.id],
        env,
      );
      expect(again.code).toBe(1);
      expect(again.stderr.trim()).toBe(`edgegate: No cache ${cache.id} in this workspace.`);
      // Another workspace's cache is not found from this one.
      const elsewhere = await edgegate(
        ['caches', 'delete', '--workspace', 'bobs-workspace', '--id', left[0]!.id],
        env,
      );
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stderr.trim()).toBe(`edgegate: No cache ${left[0]!.id} in this workspace.`);
    });

    it('explains bad input in one line and exits non-zero', async () => {
      const create = ['caches', 'create', '--workspace', 'ops-team', '--name', 'x'];
      const cases: [string[], number, RegExp][] = [
        [['caches', 'list'], 2, /^edgegate: --workspace is required$/],
        [['apikeys', 'list'], 2, /^edgegate: --workspace is required$/],
        [['caches', 'delete', '--workspace', 'ops-team'], 2, /^edgegate: --id is required$/],
        [
          [...create, '--type', 'postgres', '--origin-host', 'h'],
          2,
          /^edgegate: --origin-port is required$/,
        ],
        [
          [...create, '--type', 'postgres', '--origin-host', '127.0.0.1', '--origin-port', 'five'],
          2,
          /^edgegate: --origin-port must be a whole number$/,
        ],
        [
          [...create, '--type', 'redis', '--origin-host', '127.0.0.1', '--origin-port', '6379'],
          1,
          /^edgegate: type: /,
        ],
        [
          [...create, '--type', 'postgres', '--origin-host', '127.0.0.1', '--origin-port', '70000'],
          1,
          /^edgegate: port: must be between 1 and 65535$/,
        ],
        [
          [
            ...create,
            '--type',
            'postgres',
            '--origin-host',
            '169.254.169.254',
            '--origin-port',
            '5432',
          ],
          1,
          /^edgegate: 169\.254\.169\.254 is a link-local/,
        ],
        [['caches', 'list', '--workspace', 'nope'], 1, /^edgegate: No workspace with slug nope\.$/],
        [['users', 'list', '--email', 'x'], 2, /^edgegate: Unknown option '--email'/],
      ];
      for (const [args, exitCode, message] of cases) {
        const result = await edgegate(args, env);
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(exitCode);
        expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
        expect(result.stderr.trim()).toMatch(message);
      }
    });
  });

  describe('users disable and enable, with a control plane on the same Postgres store', () => {
    let database: { url: string; drop(): Promise<void> };
    let env: NodeJS.ProcessEnv;
    let store: Store;
    let app: FastifyInstance;
    let url: string;
    const email = 'dora@example.com';

    beforeAll(async () => {
      database = await createTestDatabase();
      env = { ...process.env, DATABASE_URL: database.url };
      expect((await edgegate(['migrate'], env)).code).toBe(0);
      store = await openStore({
        databaseUrl: database.url,
        dataDir: mkdtempSync(join(tmpdir(), 'eg-')),
      });
      ({ app, url } = await startListeningApp(store));
    });
    afterAll(async () => {
      await app?.close();
      await store?.close();
      await database?.drop();
    });

    /** A password log-in on the console: its status and, when refused, the page's words. */
    async function logIn(password: string) {
      const browser = new CookieFetch();
      const page = await browser.request(`${url}/login`);
      const response = await browser.postForm(`${url}/login`, {
        _csrf: csrfOf(await page.text()),
        email,
        password,
      });
      return { status: response.status, text: await response.text() };
    }
    // Resolved credentials are remembered for a second in the server's process.
    const forgotten = () => new Promise((r) => setTimeout(r, 1_100));

    it('ends sessions and app authorizations, refuses log-in and keys until enabled again', async () => {
      const browser = await signUpBrowser(url, email, PASSWORD);
      const userId = await userIdOf(store.db, email);
      const workspace = await personalWorkspaceOf(store.db, email);
      const partner = await registerPartner(store.db, userId, {
        redirectUris: ['https://partner.example/callback'],
      });
      const tokens = await obtainTokens(url, browser, partner, {
        scope: 'caches:read',
        workspaceId: workspace.id,
      });
      const { key } = await json<{ key: string }>(
        ['apikeys', 'create', '--workspace', workspace.slug, '--user', email],
        env,
      );
      const api = async (authorization: string) =>
        (await fetch(`${url}/v1/caches`, { headers: { authorization } })).status;
      const console = async () => (await browser.request(`${url}/workspaces`)).status;
      expect(await api(`Bearer ${tokens.access_token}`)).toBe(200);
      expect(await api(`Bearer ${key}`)).toBe(200);
      expect(await console()).toBe(200);
      const registered = await fetch(`${url}/v1/webhooks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'http://127.0.0.1:9/hook', events: ['cache.created'] }),
      });
      expect(registered.status).toBe(201);
      const hook = ((await registered.json()) as { data: { id: string } }).data;
      /** How many events were queued for the key's endpoint after a cache was created now. */
      const queuedAfterNewCache = async (name: string) => {
        await json(
          [
            'caches',
            'create',
            '--workspace',
            workspace.slug,
            '--name',
            name,
            '--type',
            'postgres',
          ].concat(['--origin-host', '127.0.0.1', '--origin-port', '5432']),
          env,
        );
        const rows = await store.db
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('webhook_id', '=', hook.id)
          .execute();
        return rows.length;
      };
      expect(await queuedAfterNewCache('before')).toBe(1);

      const disabled = await json<{ changed: boolean; endedSessions: number }>(
        ['users', 'disable', '--email', email],
        env,
      );
      expect(disabled).toEqual({
        email,
        changed: true,
        endedSessions: 1,
        revokedAuthorizations: 1,
      });
      const human = await edgegate(['users', 'disable', '--email', email], env);
      expect(human.stdout).toMatch(/^dora@example\.com was already disabled; nothing changed\.$/m);
      await forgotten();
      expect(await api(`Bearer ${tokens.access_token}`)).toBe(401);
      expect(await api(`Bearer ${key}`)).toBe(401);
      expect(await console()).not.toBe(200);
      // The endpoint the user's key registered hears nothing while the user is disabled.
      expect(await queuedAfterNewCache('while-disabled')).toBe(1);
      const refused = await logIn(PASSWORD);
      expect(refused.status).toBe(403);
      expect(refused.text).toContain('This account is disabled.');
      // A wrong password learns nothing about the account.
      const wrong = await logIn('not the password');
      expect(wrong.status).toBe(401);
      expect(wrong.text).not.toContain('disabled');

      const listed = await json<{ email: string; disabledAt: string | null }[]>(
        ['users', 'list'],
        env,
      );
      expect(Date.now() - Date.parse(listed[0]!.disabledAt!)).toBeLessThan(120_000);
      expect((await edgegate(['users', 'list'], env)).stdout).toMatch(
        /^dora@example\.com +\S* +\d{4}-\d\d-\d\d +disabled \d{4}-\d\d-\d\d +doras-workspace$/m,
      );
      const again = await edgegate(['users', 'disable', '--email', email], env);
      expect(again.stdout).toMatch(/^dora@example\.com was already disabled; nothing changed\.$/m);

      const enabled = await edgegate(['users', 'enable', '--email', email], env);
      expect(enabled.code, enabled.stderr).toBe(0);
      expect(enabled.stdout).toMatch(/^Enabled dora@example\.com: they can log in again\.$/m);
      await forgotten();
      expect(await api(`Bearer ${key}`)).toBe(200);
      expect((await logIn(PASSWORD)).status).toBe(303);
      expect(await queuedAfterNewCache('after')).toBe(2);
      // What disabling ended stays ended: the app must ask the user again.
      expect(await api(`Bearer ${tokens.access_token}`)).toBe(401);
      const audit = await store.db
        .selectFrom('audit_events')
        .select('action')
        .where('target', '=', userId)
        .where('action', 'in', ['user.disabled', 'user.enabled'])
        .orderBy('id')
        .execute();
      expect(audit.map((event) => event.action)).toEqual(['user.disabled', 'user.enabled']);

      const ghost = await edgegate(['users', 'disable', '--email', 'ghost@example.com'], env);
      expect(ghost.code).toBe(1);
      expect(ghost.stderr.trim()).toBe('edgegate: No user with email ghost@example.com.');
      const missing = await edgegate(['users', 'enable'], env);
      expect(missing.code).toBe(2);
      expect(missing.stderr.trim()).toBe('edgegate: --email is required');
    });
  });

  it('never creates an embedded store to list or change one, and says --init would not help', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'eg-cli-none-'));
    const { DATA_DIR: _unset, ...env } = process.env;
    for (const args of [
      ['users', 'list'],
      ['workspaces', 'list'],
      ['apikeys', 'list', '--workspace', 'w'],
      ['caches', 'list', '--workspace', 'w'],
      ['caches', 'create', '--workspace', 'w', '--name', 'n', '--type', 'postgres'].concat([
        '--origin-host',
        'h',
        '--origin-port',
        '1',
      ]),
      ['caches', 'delete', '--workspace', 'w', '--id', 'cch_x'],
      ['migrate', '--status'],
    ]) {
      const refused = await edgegate(args, env, cwd);
      expect(refused.code, args.join(' ')).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(
        `edgegate: there is no store in ${join(cwd, 'data')} (DATA_DIR), and this command will not create a new, empty one.`,
      );
      expect(refused.stderr).toContain('A new, empty store would have nothing to show or change.');
      expect(refused.stderr).not.toContain('--init');
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  describe('while `edgegate start` runs on the same data directory', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'eg-cli-manage-'));
    const env = { ...process.env, DATA_DIR: dataDir };
    let server: ReturnType<typeof spawn>;
    let output = '';
    let url: string;

    beforeAll(async () => {
      server = spawn(process.execPath, [BIN, 'start', '--port', '0', '--edge-pg-port', '0'], {
        env: { ...env, LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      url = await new Promise<string>((resolveUrl, reject) => {
        server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        server.stdout!.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /"url":"(http:\/\/[^"]+)"/.exec(output);
          if (match?.[1]) resolveUrl(match[1]);
        });
        server.on('exit', (code) => reject(new Error(`server exited early (${code}): ${output}`)));
      });
    }, 120_000);
    afterAll(() => {
      if (server?.exitCode === null) server.kill('SIGKILL');
    });

    it('works through the running server’s admin socket, on the store the API serves', async () => {
      const api = (authorization: string) =>
        fetch(`${url}/v1/caches`, { headers: { authorization } });
      const user = await edgegate(
        ['users', 'create', '--email', 'live@example.com', '--password', PASSWORD],
        env,
      );
      expect(user.code, user.stderr).toBe(0);
      const through = 'Store: the embedded store in ' + dataDir + ', through the running server.';
      for (const args of [
        ['users', 'list'],
        ['workspaces', 'list'],
        ['migrate', '--status'],
      ]) {
        const result = await edgegate(args, env);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout, args.join(' ')).toContain(through);
      }
      expect((await edgegate(['migrate', '--status'], env)).stdout).toContain(
        'Store is up to date',
      );

      const cache = await json<ListedCache>(
        ['caches', 'create', '--workspace', 'lives-workspace', '--name', 'live'].concat([
          '--type',
          'postgres',
          '--origin-host',
          '127.0.0.1',
          '--origin-port',
          '5432',
        ]),
        env,
      );
      const key = await json<{ key: string }>(
        ['apikeys', 'create', '--workspace', 'lives-workspace', '--user', 'live@example.com'],
        env,
      );
      const found = await fetch(`${url}/v1/caches/${cache.id}`, {
        headers: { authorization: `Bearer ${key.key}` },
      });
      expect(found.status).toBe(200);
      const keys = await edgegate(['apikeys', 'list', '--workspace', 'lives-workspace'], env);
      expect(keys.stdout).toContain(through);
      expect(keys.stdout).toMatch(/ +live@example\.com +/);
      const listed = await edgegate(['caches', 'list', '--workspace', 'lives-workspace'], env);
      expect(listed.stdout).toContain(through);
      expect(listed.stdout).toContain(cache.id);
      const deleted = await edgegate(
        ['caches', 'delete', '--workspace', 'lives-workspace', '--id', cache.id],
        env,
      );
      expect(deleted.stdout).toContain(through);
      const gone = await fetch(`${url}/v1/caches/${cache.id}`, {
        headers: { authorization: `Bearer ${key.key}` },
      });
      expect(gone.status).toBe(404);
      // Disabled through the server that holds the store: its keys are refused at once.
      const disabled = await edgegate(['users', 'disable', '--email', 'live@example.com'], env);
      expect(disabled.stdout).toMatch(
        /^Disabled live@example\.com: ended 0 console sessions, revoked 0 app authorizations\.$/m,
      );
      expect(disabled.stdout).toContain(through);
      const refused = await fetch(`${url}/v1/caches`, {
        headers: { authorization: `Bearer ${key.key}` },
      });
      expect(refused.status).toBe(401);
      const enabled = await edgegate(['users', 'enable', '--email', 'live@example.com'], env);
      expect(enabled.stdout).toContain(through);
      expect((await api(`Bearer ${key.key}`)).status).toBe(200);
      const keyId = (
        await json<{ id: string }[]>(['apikeys', 'list', '--workspace', 'lives-workspace'], env)
      )[0]!.id;
      const keyGone = await edgegate(
        ['apikeys', 'delete', '--workspace', 'lives-workspace', '--id', keyId],
        env,
      );
      expect(keyGone.stdout).toContain(through);
      expect((await api(`Bearer ${key.key}`)).status).toBe(401);
      const token = await json<{ id: string; token: string }>(
        ['service-tokens', 'create', '--workspace', 'lives-workspace'],
        env,
      );
      expect((await api(`${token.id}:${token.token}`)).status).toBe(200);
      const tokens = await edgegate(
        ['service-tokens', 'list', '--workspace', 'lives-workspace'],
        env,
      );
      expect(tokens.stdout).toContain(through);
      expect(tokens.stdout).toContain(token.id);
      const tokenGone = await edgegate(
        ['service-tokens', 'delete', '--workspace', 'lives-workspace', '--id', token.id],
        env,
      );
      expect(tokenGone.stdout).toContain(through);
      expect((await api(`${token.id}:${token.token}`)).status).toBe(401);
      for (const path of [
        '/users',
        '/users/disable',
        '/users/enable',
        '/workspaces',
        '/migrations',
        '/caches',
        '/apikeys',
        '/service-tokens',
      ]) {
        expect(output).toContain(`"url":"${path}`);
      }
    });
  });
});
