// @edgegate/sdk as a partner gets it: `npm pack` of packages/sdk (its prepack builds it), the
// tarball installed into a folder outside the repository with zod from the registry, and small
// programs (ESM, CommonJS, TypeScript) run against a listening Edgegate with the machine's own
// Node (20) and the pinned Node 24. The partner guide's minimal integration is taken from
// docs/partners.md as written and driven through the browser flow on Node 20.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { newWebhookSecret, signWebhookMessage } from '@edgegate/contract';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { createApiKey } from '../src/services/api-keys.ts';
import { consolePrincipal } from '../src/routes/console/principal.ts';
import { launchChromium } from './helpers/chromium.ts';
import { freePort, startListeningApp } from './helpers/listening-app.ts';
import { registerPartner } from './helpers/oauth-flow.ts';
import { openTestStore } from './helpers/stores.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');
const SDK_DIR = join(ROOT, 'packages/sdk');
const GUIDE = join(ROOT, 'docs/partners.md');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const NODES = [
  ['the machine’s Node', '/usr/bin/node'],
  ['the pinned Node 24', process.execPath],
] as const;
const EMAIL = 'partner-dev@example.com';
const PASSWORD = 'correct horse battery';

/** npm and Node as a partner runs them: none of the variables `npm exec` sets for this repository. */
function partnerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^npm_|^NODE_OPTIONS$|^INIT_CWD$/i.test(name)),
  );
  return { ...env, ...extra };
}

/** Every file the module graph of `entry` reaches through relative imports and requires. */
async function reachableFiles(entry: string): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = await readFile(file, 'utf8');
    for (const [, specifier] of source.matchAll(
      /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']([^"']+)["']/g,
    )) {
      if (specifier!.startsWith('.')) queue.push(resolve(dirname(file), specifier!));
    }
  }
  return [...seen];
}

/** What in `files` would not run in a browser or an edge runtime. */
async function nodeOnlyUses(files: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const file of files) {
    const source = await readFile(file, 'utf8');
    for (const [, specifier] of source.matchAll(
      /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']([^"']+)["']/g,
    )) {
      if (!specifier!.startsWith('.') && specifier !== 'zod') found.push(`${file}: ${specifier}`);
    }
    if (/\b(process|Buffer)\b/.test(source)) found.push(`${file}: process or Buffer`);
  }
  return found;
}

const ESM_PROGRAM = `
import { createAuthorizationUrl, EdgegateClient, toEdgeConnectionString, verifyWebhook } from '@edgegate/sdk';
import { deviceLogin, loopbackLogin } from '@edgegate/sdk/node';

const [baseUrl, apiKey, name] = process.argv.slice(2);
const request = await createAuthorizationUrl({
  baseUrl,
  clientId: 'partner',
  redirectUri: 'https://partner.example/callback',
  scopes: ['caches:read', 'caches:write'],
});
const client = new EdgegateClient({ baseUrl, credentials: { apiKey } });
const workspace = await client.workspace.get();
const cache = await client.caches.create({ name, type: 'postgres', hostname: '127.0.0.1', port: 5432 });
const listed = await client.caches.list({ limit: 100 });
const local = toEdgeConnectionString({
  cacheId: cache.id,
  cacheType: 'postgres',
  connectionString: 'postgres://app@db.internal/orders',
  edgeHost: 'edge.example',
  edgePort: 6432,
});
const functions = [verifyWebhook, loopbackLogin, deviceLogin].map((f) => typeof f);
console.log(JSON.stringify({ node: process.version, ...request, workspaceId: workspace.id, cacheId: cache.id, listed: listed.data.map((c) => c.id), local, functions }));
`;

const CJS_PROGRAM = `
const { createAuthorizationUrl, EdgegateClient, toEdgeConnectionString, verifyWebhook } = require('@edgegate/sdk');
const { deviceLogin, loopbackLogin } = require('@edgegate/sdk/node');

async function main() {
  const [baseUrl, apiKey, name] = process.argv.slice(2);
  const request = await createAuthorizationUrl({
    baseUrl,
    clientId: 'partner',
    redirectUri: 'https://partner.example/callback',
    scopes: ['caches:read', 'caches:write'],
  });
  const client = new EdgegateClient({ baseUrl, credentials: { apiKey } });
  const workspace = await client.workspace.get();
  const cache = await client.caches.create({ name, type: 'postgres', hostname: '127.0.0.1', port: 5432 });
  const listed = await client.caches.list({ limit: 100 });
  const local = toEdgeConnectionString({
    cacheId: cache.id,
    cacheType: 'postgres',
    connectionString: 'postgres://app@db.internal/orders',
    edgeHost: 'edge.example',
    edgePort: 6432,
  });
  const functions = [verifyWebhook, loopbackLogin, deviceLogin].map((f) => typeof f);
  console.log(JSON.stringify({ node: process.version, ...request, workspaceId: workspace.id, cacheId: cache.id, listed: listed.data.map((c) => c.id), local, functions }));
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

// Wrong on purpose where marked: with real declarations each marked line is an error, so an
// unused @ts-expect-error (declarations missing or typed any) fails the check.
const TS_PROGRAM = `
import { EdgegateClient, EdgegateApiError, type Cache, type TokenSet } from '@edgegate/sdk';
import { loopbackLogin } from '@edgegate/sdk/node';

export async function names(client: EdgegateClient): Promise<string[]> {
  const names: string[] = [];
  for await (const page of client.caches.pages({ limit: 50 })) {
    names.push(...page.data.map((cache: Cache) => cache.name));
  }
  // @ts-expect-error the workspace's name is a string
  const wrong: number = (await client.workspace.get()).name;
  // @ts-expect-error 'redis' is not a cache type
  await client.caches.create({ name: 'x', type: 'redis', hostname: 'h', port: 1 });
  return [...names, String(wrong)];
}
export const isApiError = (error: unknown) => error instanceof EdgegateApiError && error.status;
export const login = (): Promise<TokenSet> =>
  loopbackLogin({ baseUrl: 'https://edgegate.example', clientId: 'x', scopes: ['caches:read'] });
`;

describe('@edgegate/sdk packed, installed outside the repository and run', () => {
  let temporary: string;
  let tarball: string;
  let packedFiles: string[];
  let partnerDir: string;
  let installed: string;
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let apiKey: string;
  let workspace: { id: string; name: string };
  let userId: string;

  beforeAll(async () => {
    temporary = await mkdtemp(join(tmpdir(), 'eg-sdk-package-'));
    const { stdout } = await run(
      'npm',
      ['pack', '--json', '--pack-destination', temporary, '--no-audit', '--no-fund'],
      { cwd: SDK_DIR, timeout: 400_000, maxBuffer: 16 << 20 },
    );
    // The build (prepack) prints to stdout too; npm's JSON starts on a line of its own.
    const packed = JSON.parse(stdout.slice(stdout.search(/^\[$/m))) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = join(temporary, packed[0]!.filename);
    packedFiles = packed[0]!.files.map((file) => file.path);

    partnerDir = join(temporary, 'partner');
    await run('mkdir', ['-p', partnerDir]);
    await writeFile(
      join(partnerDir, 'package.json'),
      JSON.stringify({ name: 'partner-app', private: true, version: '1.0.0' }),
    );
    await run('npm', ['install', tarball, '--no-audit', '--no-fund'], {
      cwd: partnerDir,
      env: partnerEnv(),
      timeout: 240_000,
    });
    installed = join(partnerDir, 'node_modules/@edgegate/sdk');

    store = await openTestStore('pglite');
    ({ app, url } = await startListeningApp(store));
    const { user, personalWorkspace } = await signUp(store.db, {
      email: EMAIL,
      password: PASSWORD,
    });
    userId = user.id;
    workspace = personalWorkspace;
    const { principal } = await consolePrincipal(store.db, user, personalWorkspace.slug);
    ({ key: apiKey } = await createApiKey(store.db, principal, { name: 'package test' }));
  }, 600_000);

  afterAll(async () => {
    await app?.close();
    await store?.close();
    if (temporary) await rm(temporary, { recursive: true, force: true });
  });

  it('is built JavaScript with declarations, outside the repository, needing nothing unpublished', async () => {
    expect(relative(ROOT, partnerDir).startsWith('..')).toBe(true);
    for (const file of [
      'dist/index.js',
      'dist/index.cjs',
      'dist/index.d.ts',
      'dist/index.d.cts',
      'dist/node/index.js',
      'dist/node/index.cjs',
      'dist/node/index.d.ts',
      'CHANGELOG.md',
      'README.md',
    ]) {
      expect(packedFiles).toContain(file);
    }
    const sources = packedFiles.filter((f) => /\.[cm]?ts$/.test(f) && !/\.d\.[cm]?ts$/.test(f));
    expect(sources).toEqual([]);
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8'));
    expect(Object.keys(manifest.dependencies)).toEqual(['zod']);
    expect(manifest.engines.node).toBe('>=20');
    expect(manifest.version).toMatch(/^0\./);
    const dist = join(installed, 'dist');
    const files = (await readdir(dist, { recursive: true })).map(String);
    for (const file of files.filter((name) => /\.(c?js|d\.c?ts)$/.test(name))) {
      expect(await readFile(join(dist, file), 'utf8'), file).not.toContain('@edgegate/contract');
    }
  });

  it.each(NODES)('runs an ESM program on %s: PKCE URL and a real round trip', async (_, node) => {
    await writeFile(join(partnerDir, 'check.mjs'), ESM_PROGRAM);
    await expectRoundTrip(node, 'check.mjs');
  });

  it.each(NODES)('runs a CommonJS program on %s', async (_, node) => {
    await writeFile(join(partnerDir, 'check.cjs'), CJS_PROGRAM);
    await expectRoundTrip(node, 'check.cjs');
  });

  async function expectRoundTrip(node: string, program: string) {
    const name = `pkg-${program.replace('.', '-')}-${node.length}`;
    const { stdout } = await run(node, [program, url, apiKey, name], {
      cwd: partnerDir,
      env: partnerEnv(),
      timeout: 60_000,
    });
    const out = JSON.parse(stdout);
    const version = (await run(node, ['--version'])).stdout.trim();
    expect(out.node).toBe(version);
    const sent = new URL(out.url);
    expect(`${sent.origin}${sent.pathname}`).toBe(`${url}/oauth2/auth`);
    expect(sent.searchParams.get('code_challenge_method')).toBe('S256');
    expect(sent.searchParams.get('code_challenge')).toBe(
      createHash('sha256').update(out.codeVerifier).digest('base64url'),
    );
    expect(sent.searchParams.get('state')).toBe(out.state);
    expect(out.workspaceId).toBe(workspace.id);
    expect(out.listed).toContain(out.cacheId);
    expect(out.local).toBe(
      `postgres://app@edge.example:6432/orders?application_name=${out.cacheId}`,
    );
    expect(out.functions).toEqual(['function', 'function', 'function']);
    // The cache is really there: the server answers for it.
    const answer = await fetch(`${url}/v1/caches/${out.cacheId}`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { data: { name: string } }).data.name).toBe(name);
  }

  it('type-checks a TypeScript program against the installed declarations', async () => {
    await writeFile(join(partnerDir, 'check.ts'), TS_PROGRAM);
    await writeFile(
      join(partnerDir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          lib: ['es2022', 'dom'],
          types: [],
        },
        files: ['check.ts'],
      }),
    );
    const checked = await run(process.execPath, [TSC, '-p', partnerDir], {
      cwd: partnerDir,
      timeout: 180_000,
    }).catch((error: { stdout: string }) => error);
    expect(checked.stdout).toBe('');
  }, 200_000);

  it('keeps the built main entry free of Node: no node: import, process or Buffer outside /node', async () => {
    for (const entry of ['dist/index.js', 'dist/index.cjs']) {
      const files = await reachableFiles(join(installed, entry));
      expect(files.length).toBeGreaterThan(1);
      expect(await nodeOnlyUses(files)).toEqual([]);
    }
    // The same check does see Node where it is allowed: in @edgegate/sdk/node.
    const nodeEntry = await nodeOnlyUses(
      await reachableFiles(join(installed, 'dist/node/index.js')),
    );
    expect(nodeEntry.join('\n')).toContain('node:http');
    expect(nodeEntry.join('\n')).toContain('process or Buffer');
  });

  describe('the runnable files of docs/partners.md', () => {
    let browser: Browser;
    const started: ChildProcess[] = [];

    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      for (const child of started) child.kill('SIGTERM');
      await browser?.close();
    });

    /** The ```js block marked `<!-- file: NAME -->` in the guide, written into the partner's folder. */
    async function guideFile(name: string): Promise<string> {
      const guide = await readFile(GUIDE, 'utf8');
      const marker = `<!-- file: ${name} -->`;
      const at = guide.indexOf(marker);
      const block = /^\s*```js\n([\s\S]*?)\n```/.exec(guide.slice(at + marker.length))?.[1];
      expect(
        at >= 0 && block,
        `docs/partners.md has a \`\`\`js block marked ${marker}`,
      ).toBeTruthy();
      await writeFile(join(partnerDir, name), `${block}\n`);
      return block!;
    }

    /** Runs a file of the guide with the machine's Node, as a partner would; `output()` so far. */
    function runGuideFile(name: string, env: Record<string, string>) {
      const child = spawn('/usr/bin/node', [name], {
        cwd: partnerDir,
        env: partnerEnv(env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      started.push(child);
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((done) => child.once('exit', done));
      /** Waits up to 15 s for `text` in what it printed; fails with all it printed. */
      async function printed(text: string | RegExp) {
        for (let i = 0; i < 150; i++) {
          if (typeof text === 'string' ? output.includes(text) : text.test(output)) return output;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(output, `${name} did not print ${String(text)}`).toMatch(text);
        return output;
      }
      return { output: () => output, printed, exited };
    }

    it('runs partner.mjs unmodified on the machine’s Node and hands the user a connection string', async () => {
      const block = await guideFile('partner.mjs');
      expect(block.split('\n').length).toBeLessThan(60);

      const port = await freePort();
      const registered = await registerPartner(store.db, userId, {
        name: 'Minimal Partner',
        redirectUris: [`http://127.0.0.1:${port}/callback`],
        scopes: ['caches:read', 'caches:write'],
      });
      const partner = runGuideFile('partner.mjs', {
        EDGEGATE_URL: url,
        EDGEGATE_CLIENT_ID: registered.clientId,
        EDGEGATE_CLIENT_SECRET: registered.clientSecret!,
        PORT: String(port),
        ORIGIN_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
      });
      await partner.printed(`Open http://127.0.0.1:${port}/`);

      const context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.getByRole('heading', { name: 'Log in to continue to Minimal Partner' }).waitFor();
      await page.getByLabel('Email').fill(EMAIL);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page
        .getByRole('heading', { name: 'Minimal Partner wants to access your Edgegate workspace' })
        .waitFor();
      await page.getByLabel(new RegExp(workspace.name)).check();
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL(new RegExp(`^http://127\\.0\\.0\\.1:${port}/callback`));
      const shown = (await page.textContent('body')) ?? '';
      // On failure this shows the page and what the partner app printed.
      expect(`${shown}\n${partner.output()}`).toMatch(
        /Connect through it with:\s*postgres:\/\/postgres@localhost:6432\/postgres\?application_name=cch_\w+\s/,
      );
      const connectionString = /postgres:\/\/\S+/.exec(shown)?.[0];
      const cacheId = new URL(connectionString!).searchParams.get('application_name')!;
      const cache = await fetch(`${url}/v1/caches/${cacheId}`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      expect(cache.status).toBe(200);
      expect(await cache.json()).toMatchObject({
        data: { id: cacheId, hostname: '127.0.0.1', port: 5432 },
      });
      await context.close();
    }, 120_000);

    it('runs register-webhook.mjs, webhooks.mjs and connect.mjs unmodified: hosted form, connection string, verified events', async () => {
      await guideFile('register-webhook.mjs');
      await guideFile('webhooks.mjs');
      await guideFile('connect.mjs');
      const [receiverPort, connectPort] = [await freePort(), await freePort()];
      const endpoint = `http://127.0.0.1:${receiverPort}/edgegate/webhooks`;
      const api = { EDGEGATE_URL: url, EDGEGATE_API_KEY: apiKey };

      // Register the receiver; the secret is printed once.
      const registering = runGuideFile('register-webhook.mjs', { ...api, WEBHOOK_URL: endpoint });
      expect(await registering.exited, registering.output()).toBe(0);
      const hookId = /^Registered (wh_\w+) for (\S+)$/m.exec(registering.output())?.[1];
      const secret = /^EDGEGATE_WEBHOOK_SECRET=(whsec_\S+)$/m.exec(registering.output())?.[1];
      expect(hookId && secret, registering.output()).toBeTruthy();

      // Without a secret the receiver refuses to start, saying what to set.
      const unset = runGuideFile('webhooks.mjs', { PORT: String(receiverPort) });
      expect(await unset.exited).not.toBe(0);
      expect(unset.output()).toContain('Set EDGEGATE_WEBHOOK_SECRET');
      const receiver = runGuideFile('webhooks.mjs', {
        PORT: String(receiverPort),
        EDGEGATE_WEBHOOK_SECRET: secret!,
      });
      await receiver.printed(`Listening on port ${receiverPort}`);

      // "Send a test event" reaches it, signed, and it trusts it.
      const queued = await fetch(`${url}/v1/webhooks/${hookId}/test`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}` },
      });
      expect(queued.status).toBe(202);
      const { eventId } = ((await queued.json()) as { data: { eventId: string } }).data;
      await receiver.printed(`webhook.test: ${eventId}`);

      // Only Edgegate's signatures pass: a forged, altered, stale or unsigned delivery gets 400,
      // and a delivery that comes again is answered but handled once.
      const body = JSON.stringify({ id: 'evt_replayed', type: 'webhook.test', data: {} });
      const now = Math.floor(Date.now() / 1000);
      const deliver = async (text: string, headers: Record<string, string>) =>
        (await fetch(endpoint, { method: 'POST', headers, body: text })).status;
      const signed = await signWebhookMessage({ id: 'evt_replayed', timestamp: now, body }, [
        secret!,
      ]);
      const forged = await signWebhookMessage({ id: 'evt_replayed', timestamp: now, body }, [
        newWebhookSecret(),
      ]);
      const stale = await signWebhookMessage({ id: 'evt_replayed', timestamp: now - 3600, body }, [
        secret!,
      ]);
      expect(await deliver(body, forged)).toBe(400);
      expect(await deliver(body.replace('evt_replayed', 'evt_other'), signed)).toBe(400);
      expect(await deliver(body, stale)).toBe(400);
      expect(await deliver(body, {})).toBe(400);
      expect(await deliver(body, signed)).toBe(204);
      expect(await deliver(body, signed)).toBe(204);
      expect(receiver.output().match(/webhook\.test: evt_replayed/g)).toHaveLength(1);

      // The connect flow: the partner's page, Edgegate's hosted form, back with a cache.
      const partner = runGuideFile('connect.mjs', { ...api, PORT: String(connectPort) });
      await partner.printed(`Open http://127.0.0.1:${connectPort}/`);
      const context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      await page.goto(`http://127.0.0.1:${connectPort}/`);
      await page.getByRole('button', { name: 'Connect your database' }).click();
      await page.waitForURL(new RegExp(`^${url}/connect/egct_`));
      await page.fill('#field-host', '127.0.0.1');
      await page.fill('#field-port', '5432');
      await page.fill('#field-database', 'postgres');
      await page.fill('#field-user', 'postgres');
      await page.fill('#field-password', 'typed by the user');
      await page.click('#save');
      // The machine's Postgres trusts loopback: the page says the password went unchecked.
      await page.getByText('The server did not check the password').waitFor();
      await page.click('#continue');
      const back = new RegExp(`^http://127\\.0\\.0\\.1:${connectPort}/connected\\?`);
      const landed = await page.waitForURL(back).catch((error: Error) => error);
      expect(landed, `connect.mjs printed:\n${partner.output()}`).toBeUndefined();
      const shown = (await page.textContent('body')) ?? '';
      const string = /Connect through it with:\s*(postgres:\/\/\S+)/.exec(shown)?.[1];
      expect(string, `${shown}\n${partner.output()}`).toBeTruthy();
      const edge = new URL(string!);
      expect(`${edge.username}:${decodeURIComponent(edge.password)}@${edge.host}`).toBe(
        'postgres:typed by the user@localhost:6432',
      );
      const cacheId = edge.searchParams.get('application_name')!;
      expect(cacheId).toMatch(/^cch_/);

      // The same link cannot be used twice: its state is spent.
      await page.goto(page.url());
      expect(await page.textContent('body')).toContain('This link has expired');
      await context.close();

      const created = await receiver.printed(/connection\.created: Orders DB \(conn_\w+\)/);
      expect(created).toContain(`cache.created: ${cacheId}`);
      const deliveries = await fetch(`${url}/v1/webhooks/${hookId}/deliveries`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      const listed = (
        (await deliveries.json()) as { data: { eventType: string; status: string }[] }
      ).data;
      expect(listed.filter((d) => d.eventType === 'connection.created')).toEqual([
        expect.objectContaining({ status: 'delivered' }),
      ]);
    }, 120_000);
  });
});
