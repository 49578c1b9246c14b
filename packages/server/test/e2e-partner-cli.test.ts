// The example partner CLI (examples/partner-cli) as its user runs it: Edgegate started with
// `edgegate start`, the operator's CLI registering a public app, `partner-cli login` printing a URL
// that Chromium follows through log-in, workspace picker and consent, then caches managed with the
// stored tokens, which rotate on disk and stop working once the user revokes the app.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { run, type Io } from '../../../examples/partner-cli/src/cli.ts';
import type { StoredCredentials } from '../../../examples/partner-cli/src/credentials-file.ts';
import { launchChromium } from './helpers/chromium.ts';
import { freePort } from './helpers/listening-app.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const EDGEGATE = join(ROOT, 'packages/cli/src/main.ts');
const PARTNER_CLI = join(ROOT, 'examples/partner-cli/src/main.ts');
// The example imports @edgegate/sdk; this condition loads its sources rather than its build.
const SDK_SOURCES = '--conditions=edgegate-source';
const PASSWORD = 'correct horse battery staple';
/** What `login` prints under "Open this page to connect to Edgegate:". */
const SIGN_IN_URL = /^ {2}(http:\/\/\S+\/oauth2\/auth\?\S+)$/m;
/** What `login --device` prints after the code: the page with the code filled in. */
const DEVICE_URL = /^\(or open (http:\/\/\S+)\)$/m;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (at most `timeoutMs`), never throwing on a non-zero exit. */
function runProcess(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Outcome> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [SDK_SOURCES, ...args],
      { env, timeout: timeoutMs },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** `run` of the CLI in this process, with what it printed. */
async function runInProcess(argv: string[], env: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (line) => out.push(line), err: (line) => err.push(line) };
  const code = await run(argv, env, io);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('partner-cli without a server', () => {
  const home = mkdtempSync(join(tmpdir(), 'eg-partner-cli-home-'));
  const env = { HOME: home };
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it.each(['', 'login', 'logout', 'caches', 'caches list', 'caches create'])(
    'has --help for "%s"',
    async (command) => {
      const words = command ? command.split(' ') : [];
      const { code, stdout } = await runInProcess([...words, '--help'], env);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: partner-cli ${command || '<command>'}`));
      expect(stdout).toContain('PARTNER_CLIENT_ID');
    },
  );

  it('exits 2 with the help to read when the command line is wrong', async () => {
    const cases: [string[], string][] = [
      [['frobnicate'], 'partner-cli: unknown command "frobnicate"\nRun `partner-cli --help`'],
      [['caches'], 'partner-cli: caches needs a command: list or create'],
      [
        ['caches', 'create', '--hostname', 'db.example', '--port', '5432'],
        'partner-cli: --name is required\nRun `partner-cli caches create --help` for usage.',
      ],
      [
        ['caches', 'create', '--name', 'x', '--hostname', 'db.example', '--port', 'eighty'],
        'partner-cli: --port must be a whole number between 1 and 65535',
      ],
      [
        ['caches', 'create', '--name', 'x', '--hostname', 'h', '--port', '1', '--type', 'oracle'],
        'partner-cli: --type must be one of postgres, mysql, mariadb, mssql',
      ],
      [['login', '--browser'], "partner-cli: Unknown option '--browser'"],
    ];
    for (const [argv, message] of cases) {
      const result = await runInProcess(argv, env);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr, argv.join(' ')).toContain(message);
    }
  });

  it('asks to log in when there are no credentials, and to register an app when none is set', async () => {
    const list = await runInProcess(['caches', 'list'], env);
    expect(list).toMatchObject({ code: 1, stdout: '' });
    expect(list.stderr).toBe('partner-cli: you are not logged in: run partner-cli login');
    const login = await runInProcess(['login'], env);
    expect(login.code).toBe(1);
    expect(login.stderr).toMatch(/^partner-cli: PARTNER_CLIENT_ID is not set/);
    const logout = await runInProcess(['logout'], env);
    expect(logout).toMatchObject({ code: 0, stdout: 'You were not logged in.' });
  });

  it('keeps credentials in the XDG config directory, else ~/.config, tied to their server', async () => {
    const stored: StoredCredentials = {
      baseUrl: 'http://edgegate.test',
      clientId: 'partner-cli',
      tokens: { accessToken: 'x', expiresAt: 0, scope: '', workspaceId: 'ws_1' },
    };
    const xdg = join(home, 'xdg');
    for (const dir of [
      join(xdg, 'edgegate-partner-cli'),
      join(home, '.config/edgegate-partner-cli'),
    ]) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'credentials.json'), JSON.stringify({ ...stored, baseUrl: dir }));
    }
    const other = { EDGEGATE_URL: 'http://other.test' };
    expect(
      (await runInProcess(['caches', 'list'], { ...env, ...other, XDG_CONFIG_HOME: xdg })).stderr,
    ).toBe(
      `partner-cli: you are logged in to ${join(xdg, 'edgegate-partner-cli')}, not http://other.test: run partner-cli login`,
    );
    expect((await runInProcess(['caches', 'list'], { ...env, ...other })).stderr).toContain(
      `logged in to ${join(home, '.config/edgegate-partner-cli')},`,
    );
  });

  it('says so when Edgegate cannot be reached', async () => {
    const port = await freePort();
    const result = await runInProcess(['login'], {
      ...env,
      EDGEGATE_URL: `http://127.0.0.1:${port}`,
      PARTNER_CLIENT_ID: 'partner-cli',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^partner-cli: could not reach Edgegate \(.*ECONNREFUSED.*\): check EDGEGATE_URL$/,
    );
  });
});

describe('partner-cli against a running Edgegate, with Chromium for the user', () => {
  const root = mkdtempSync(join(tmpdir(), 'eg-partner-cli-'));
  const dataDir = join(root, 'data');
  const configDir = join(root, 'config', 'partner-cli');
  const credentialsFile = join(configDir, 'credentials.json');
  let url: string;
  let server: ChildProcess | undefined;
  let serverOutput = '';
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let clientId: string;
  const children = new Set<ChildProcess>();

  const edgegate = (args: string[]) =>
    runProcess([EDGEGATE, ...args, '--json'], {
      ...process.env,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
    });

  const partnerEnv = () => ({
    ...process.env,
    EDGEGATE_URL: url,
    PARTNER_CLIENT_ID: clientId,
    PARTNER_CLI_CONFIG_DIR: configDir,
    PARTNER_CLI_BROWSER: 'none',
  });
  const partnerCli = (...args: string[]) =>
    runProcess([PARTNER_CLI, ...args], partnerEnv(), 30_000);
  const readCredentials = () =>
    JSON.parse(readFileSync(credentialsFile, 'utf8')) as StoredCredentials;

  beforeAll(async () => {
    const [port, edgePgPort, edgeMysqlPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    url = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, [EDGEGATE, 'start'], {
      env: {
        ...process.env,
        DATA_DIR: dataDir,
        PORT: String(port),
        EDGE_PG_PORT: String(edgePgPort),
        EDGE_MYSQL_PORT: String(edgeMysqlPort),
        PUBLIC_URL: url,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
    server.stderr!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`edgegate start exited: ${serverOutput}`);
      const healthy = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (healthy) break;
      if (Date.now() > deadline)
        throw new Error(`Edgegate did not become healthy: ${serverOutput}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    const user = await edgegate([
      'users',
      'create',
      '--email',
      'ada@example.com',
      '--password',
      PASSWORD,
      '--name',
      'Ada',
    ]);
    expect(user.code, user.stderr).toBe(0);
    const team = await edgegate([
      'workspaces',
      'create',
      '--name',
      'Data Team',
      '--owner',
      'ada@example.com',
    ]);
    expect(team.code, team.stderr).toBe(0);
    const app = await edgegate([
      'apps',
      'create',
      '--owner-user',
      'ada@example.com',
      '--name',
      'Partner CLI',
      '--public',
      '--redirect-uri',
      'http://127.0.0.1/callback',
      '--scopes',
      'caches:read caches:write offline_access',
    ]);
    expect(app.code, app.stderr).toBe(0);
    const registered = JSON.parse(app.stdout) as { clientId: string; clientSecret: string | null };
    expect(registered.clientSecret).toBeNull();
    clientId = registered.clientId;

    browser = await launchChromium();
    context = await browser.newContext();
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
  }, 120_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await browser?.close();
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    rmSync(root, { recursive: true, force: true });
  }, 30_000);

  /** `partner-cli login` in its own process; `consent` plays the user in Chromium at the printed URL. */
  async function login(
    consent: (signInUrl: string) => Promise<void>,
    { args = [], printed: pattern = SIGN_IN_URL }: { args?: string[]; printed?: RegExp } = {},
  ): Promise<Outcome> {
    const child = spawn(process.execPath, [SDK_SOURCES, PARTNER_CLI, 'login', ...args], {
      env: partnerEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const printed = new Promise<string>((resolveUrl, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const found = pattern.exec(stderr)?.[1];
        if (found) resolveUrl(found);
      });
      child.once('exit', () => reject(new Error(`partner-cli login exited early: ${stderr}`)));
    });
    const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? -1)));
    try {
      await consent(await printed);
      const code = await exited;
      return { code, stdout, stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Chromium on Edgegate's pages after the sign-in link: the log-in form when it asks (`logIn`
   * says whether it must), then consent: pick the Data Team workspace and Allow.
   */
  async function logInAndAllow({
    logIn,
    decision = 'Allow',
  }: {
    logIn: boolean;
    decision?: 'Allow' | 'Deny';
  }) {
    const logInHeading = page.getByRole('heading', { name: 'Log in to continue to Partner CLI' });
    const consentHeading = page.getByRole('heading', {
      name: 'Partner CLI wants to access your Edgegate workspace',
    });
    await logInHeading.or(consentHeading).waitFor();
    expect(await logInHeading.isVisible()).toBe(logIn);
    if (logIn) {
      await page.getByLabel('Email').fill('ada@example.com');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();
    }
    await consentHeading.waitFor();
    expect(await page.content()).toContain('Create, change and delete caches');
    await page.getByLabel(/Data Team/).check();
    await page.getByRole('button', { name: decision }).click();
  }

  /** The browser follows the printed sign-in URL and comes back to the CLI's loopback page. */
  async function allowInBrowser(signInUrl: string, { logIn }: { logIn: boolean }) {
    await page.goto(signInUrl);
    await logInAndAllow({ logIn });
    await page.getByText('You can close this tab').waitFor();
    expect(new URL(page.url()).origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await expect(
      page.getByRole('heading', { name: 'Connected to Edgegate' }).isVisible(),
    ).resolves.toBe(true);
  }

  it('logs in through the browser and keeps the tokens readable by the user alone', async () => {
    const result = await login((signInUrl) => {
      const sent = new URL(signInUrl);
      expect(`${sent.origin}${sent.pathname}`).toBe(`${url}/oauth2/auth`);
      expect(sent.searchParams.get('client_id')).toBe(clientId);
      expect(sent.searchParams.get('code_challenge_method')).toBe('S256');
      expect(sent.searchParams.get('redirect_uri')).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/callback$/,
      );
      return allowInBrowser(signInUrl, { logIn: true });
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('Open this page to connect to Edgegate:');
    expect(result.stdout).toContain(`Logged in to ${url}, workspace “Data Team” (data-team).`);
    expect(result.stdout).toContain(`Credentials saved in ${credentialsFile}.`);

    expect(statSync(credentialsFile).mode & 0o777).toBe(0o600);
    expect(statSync(configDir).mode & 0o777).toBe(0o700);
    const stored = readCredentials();
    expect(stored).toMatchObject({ baseUrl: url, clientId });
    expect(stored.tokens.refreshToken).toBeTruthy();
    // offline_access brought the refresh token; the API scopes are what it may do.
    expect(stored.tokens.scope.split(' ')).toEqual(
      expect.arrayContaining(['caches:read', 'caches:write']),
    );
  }, 90_000);

  it('creates a cache and lists it with the stored tokens', async () => {
    const created = await partnerCli(
      'caches',
      'create',
      '--name',
      'orders',
      '--hostname',
      '127.0.0.1',
      '--port',
      '5432',
    );
    expect(created.code, created.stderr).toBe(0);
    const id = /\((cch_\w+)\)/.exec(created.stdout)?.[1];
    expect(created.stdout).toContain(
      `Created cache “orders” (${id}) for postgres at 127.0.0.1:5432.`,
    );
    expect(created.stdout).toContain(`application_name=${id}`);

    const listed = await partnerCli('caches', 'list');
    expect(listed.code, listed.stderr).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+TYPE\s+ORIGIN$/);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^${id}\\s+orders\\s+postgres\\s+127\\.0\\.0\\.1:5432$`)),
    );

    const asJson = await partnerCli('caches', 'list', '--json');
    expect(JSON.parse(asJson.stdout)).toEqual([
      expect.objectContaining({
        id,
        name: 'orders',
        type: 'postgres',
        hostname: '127.0.0.1',
        port: 5432,
      }),
    ]);
  }, 60_000);

  it("shows the server's field errors and exits 1", async () => {
    const refused = await partnerCli(
      'caches',
      'create',
      '--name',
      'nowhere',
      '--hostname',
      'db.nonexistent.invalid',
      '--port',
      '5432',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^partner-cli: Unprocessable content: hostname: /);
  }, 60_000);

  it('refreshes an expired access token and writes the rotated pair back, still 0600', async () => {
    const before = readCredentials();
    writeFileSync(
      credentialsFile,
      JSON.stringify({ ...before, tokens: { ...before.tokens, expiresAt: Date.now() - 1000 } }),
    );
    const listed = await partnerCli('caches', 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toHaveLength(1);
    const after = readCredentials();
    expect(after.tokens.accessToken).not.toBe(before.tokens.accessToken);
    expect(after.tokens.refreshToken).not.toBe(before.tokens.refreshToken);
    expect(after.tokens.expiresAt).toBeGreaterThan(Date.now() + 3000_000);
    expect(statSync(credentialsFile).mode & 0o777).toBe(0o600);
    // The rotated pair is the one that works: the next call needs no refresh.
    expect((await partnerCli('caches', 'list')).code).toBe(0);
    expect(readCredentials().tokens.refreshToken).toBe(after.tokens.refreshToken);
  }, 60_000);

  it('says access was revoked once the user revokes the app, and logs out cleanly', async () => {
    await page.goto(`${url}/settings/account/authorized-apps`);
    const row = page.getByRole('row', { name: /Partner CLI/ });
    expect(await row.textContent()).toContain('Data Team');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: 'Yes, revoke access' }).click();
    await page.getByText('Access revoked.').waitFor();

    const refused = await partnerCli('caches', 'list');
    expect(refused).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'partner-cli: access was revoked, run partner-cli login\n',
    });

    const loggedOut = await partnerCli('logout');
    expect(loggedOut.code, loggedOut.stderr).toBe(0);
    expect(loggedOut.stdout).toBe(`Logged out of ${url}.\n`);
    expect(() => statSync(credentialsFile)).toThrow(/ENOENT/);
    expect((await partnerCli('caches', 'list')).stderr).toBe(
      'partner-cli: you are not logged in: run partner-cli login\n',
    );
  }, 60_000);

  it('fails with a clear message when the user denies access, and stores nothing', async () => {
    const denied = await login(async (signInUrl) => {
      await page.goto(signInUrl);
      await logInAndAllow({ logIn: false, decision: 'Deny' });
      await page.getByText('Access was denied on the consent page.').waitFor();
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('partner-cli: access was denied on the consent page\n');
    expect(denied.stdout).toBe('');
    expect(() => statSync(credentialsFile)).toThrow(/ENOENT/);
  }, 60_000);

  it('logs in again (already logged in to Edgegate) and logout revokes the tokens at the server', async () => {
    const result = await login((signInUrl) => allowInBrowser(signInUrl, { logIn: false }));
    expect(result.code, result.stderr).toBe(0);
    const { tokens } = readCredentials();
    const asPartner = () =>
      fetch(`${url}/v1/workspace`, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
    expect((await asPartner()).status).toBe(200);
    expect((await partnerCli('caches', 'list', '--json')).code).toBe(0);

    expect((await partnerCli('logout')).code).toBe(0);
    expect((await asPartner()).status).toBe(401);
  }, 90_000);

  it('logs in with a device code, and a new login revokes the authorization it replaces', async () => {
    const device = await login(
      async (deviceUrl) => {
        // The page with the code filled in goes straight to confirming it.
        await page.goto(deviceUrl);
        await page.getByRole('heading', { name: 'Confirm the device' }).waitFor();
        await page.getByRole('button', { name: 'Continue' }).click();
        await logInAndAllow({ logIn: false });
        await page.getByRole('heading', { name: 'Device connected' }).waitFor();
      },
      { args: ['--device'], printed: DEVICE_URL },
    );
    expect(device.code, device.stderr).toBe(0);
    expect(device.stderr).toMatch(
      /open http:\/\/\S+\/oauth2\/device and enter the code [A-Z]{4}-[A-Z]{4}/,
    );
    expect(device.stdout).toContain('workspace “Data Team” (data-team)');
    const replaced = readCredentials().tokens;

    const again = await login((signInUrl) => allowInBrowser(signInUrl, { logIn: false }));
    expect(again.code, again.stderr).toBe(0);
    const current = readCredentials().tokens;
    const status = async (accessToken: string) =>
      (await fetch(`${url}/v1/workspace`, { headers: { authorization: `Bearer ${accessToken}` } }))
        .status;
    expect(await status(replaced.accessToken)).toBe(401);
    expect(await status(current.accessToken)).toBe(200);
    expect((await partnerCli('logout')).code).toBe(0);
  }, 90_000);
});
