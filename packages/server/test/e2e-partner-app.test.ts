// The product from a partner's chair, end to end (issue 7): Edgegate started as an operator starts
// it, the example partner app, and a person in Chromium who connects their workspace, gets a
// connection string for the machine's Postgres, and later revokes the app. The string really
// works through the edge: a repeated read is a hit in the metrics, a write makes the next read
// fresh; the same for a MariaDB cache the partner creates through the API, read with mysql2 on the
// edge's MySQL port.
// After the revocation the partner app asks to reconnect and its old token gets 401.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES, startPartnerApp, type PartnerApp } from '../../../examples/partner-app/src/app.ts';
import { launchChromium } from './helpers/chromium.ts';
import { freePort } from './helpers/listening-app.ts';

const CLI = resolve(import.meta.dirname, '../../cli/src/main.ts');
const ORIGIN = { host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres' };
const EMAIL = 'grace@example.com';
const PASSWORD = 'correct horse battery staple';
const APP_NAME = 'Acme Dashboards';
const run = promisify(execFile);

describe('a partner app integrates Edgegate, from consent to a working connection string', () => {
  const temporary: string[] = [];
  let server: ChildProcess;
  let serverOutput = '';
  let edgegateUrl: string;
  let edgePort: number;
  let edgeMysqlPort: number;
  let serverEnv: Record<string, string>;
  let partner: PartnerApp;
  let partnerDataDir: string;
  let browser: Browser;
  const table = `e2e_partner_${randomBytes(4).toString('hex')}`;
  const clients: pg.Client[] = [];

  /** The operator's CLI against the running server (same DATA_DIR: it uses the admin socket). */
  async function edgegate<T>(args: string[]): Promise<T> {
    const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], {
      env: { ...process.env, ...serverEnv },
      timeout: 60_000,
    });
    return JSON.parse(stdout) as T;
  }

  async function connect(connectionString: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000 });
    clients.push(client);
    await client.connect();
    return client;
  }

  beforeAll(async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'eg-e2e-'));
    partnerDataDir = await mkdtemp(join(tmpdir(), 'eg-e2e-partner-'));
    temporary.push(dataDir, partnerDataDir);
    const port = await freePort();
    edgePort = await freePort();
    edgeMysqlPort = await freePort();
    edgegateUrl = `http://127.0.0.1:${port}`;
    serverEnv = {
      DATA_DIR: dataDir,
      PORT: String(port),
      EDGE_PG_PORT: String(edgePort),
      EDGE_MYSQL_PORT: String(edgeMysqlPort),
      PUBLIC_URL: edgegateUrl,
      EDGE_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    };
    server = spawn(process.execPath, [CLI, 'start'], {
      env: { ...process.env, ...serverEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
    server.stderr!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
    await waitForHealth(edgegateUrl, server, () => serverOutput);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    for (const client of clients) await client.end().catch(() => undefined);
    const origin = new pg.Client(ORIGIN);
    await origin.connect();
    await origin.query(`DROP TABLE IF EXISTS ${table}`);
    await origin.end();
    await partner?.close();
    await browser?.close();
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      const stopped = await Promise.race([
        exited.then(() => true),
        sleep(15_000).then(() => false),
      ]);
      if (!stopped) server.kill('SIGKILL');
    }
    for (const dir of temporary) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('connects, hands out a string that caches through the edge, and ends on revocation', async () => {
    // The operator: a user with a second workspace (so the consent page has a real choice), and
    // the partner's app registered for them.
    await edgegate([
      'users',
      'create',
      '--email',
      EMAIL,
      '--password',
      PASSWORD,
      '--name',
      'Grace',
    ]);
    const team = await edgegate<{ id: string; name: string }>([
      'workspaces',
      'create',
      '--name',
      'Acme Analytics',
      '--owner',
      EMAIL,
    ]);
    const partnerPort = await freePort();
    const registered = await edgegate<{ clientId: string; clientSecret: string }>([
      'apps',
      'create',
      '--owner-user',
      EMAIL,
      '--name',
      APP_NAME,
      '--redirect-uri',
      `http://127.0.0.1:${partnerPort}/callback`,
      '--scopes',
      SCOPES.join(' '),
    ]);
    partner = await startPartnerApp({
      edgegateUrl,
      clientId: registered.clientId,
      clientSecret: registered.clientSecret,
      port: partnerPort,
      dataDir: partnerDataDir,
    });

    // The person: Connect Edgegate → log in → pick the team workspace → Allow.
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(partner.url);
    await page.getByTestId('connect').click();
    await page.getByRole('heading', { name: `Log in to continue to ${APP_NAME}` }).waitFor();
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page
      .getByRole('heading', { name: `${APP_NAME} wants to access your Edgegate workspace` })
      .waitFor();
    await page.getByLabel(/Acme Analytics/).check();
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back at the partner: the origin form, for the machine's Postgres (trust auth).
    await page.getByRole('heading', { name: 'Which database should we cache?' }).waitFor();
    expect(await page.textContent('main')).toContain('Acme Analytics');
    await page.getByLabel('Host').fill(ORIGIN.host);
    await page.getByLabel('Port').fill(String(ORIGIN.port));
    await page.getByLabel('Database').fill(ORIGIN.database);
    await page.getByLabel('User').fill(ORIGIN.user);
    await page.getByLabel('Password').fill('any password');
    await page.getByRole('button', { name: 'Create the cache' }).click();
    const connectionString = (await page.getByTestId('connection-string').textContent()) ?? '';
    expect(connectionString).toMatch(
      new RegExp(
        `^postgres://postgres:any%20password@127\\.0\\.0\\.1:${edgePort}/test\\?application_name=cch_\\w{22}$`,
      ),
    );
    const cacheId = new URL(connectionString).searchParams.get('application_name')!;

    // Stored like an environment variable, and the tokens beside it, for the owner only.
    const envFile = join(partnerDataDir, '.env');
    expect(await readFile(envFile, 'utf8')).toBe(`DATABASE_URL=${connectionString}\n`);
    const stateFile = join(partnerDataDir, 'edgegate.json');
    for (const file of [envFile, stateFile]) expect((await stat(file)).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(await readFile(stateFile, 'utf8')) as {
      tokens: { accessToken: string; workspaceId: string };
    };
    expect(stored.tokens.workspaceId).toBe(team.id);
    const accessToken = stored.tokens.accessToken;

    // The application's side: exactly that string, through the edge.
    const origin = await connect(
      `postgres://${ORIGIN.user}@${ORIGIN.host}:${ORIGIN.port}/${ORIGIN.database}`,
    );
    await origin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, label text NOT NULL)`);
    await origin.query(`INSERT INTO ${table} VALUES (1, 'before'), (2, 'other')`);
    const app = await connect(connectionString);
    const read = `SELECT label FROM ${table} WHERE id = 1`;
    expect((await app.query(read)).rows).toEqual([{ label: 'before' }]);
    expect((await app.query(read)).rows).toEqual([{ label: 'before' }]);

    const metricsOf = async (token: string) =>
      fetch(`${edgegateUrl}/v1/caches/${cacheId}/metrics?window=15m`, {
        headers: { authorization: `Bearer ${token}` },
      });
    const metrics = (await (await metricsOf(accessToken)).json()) as {
      data: { hits: number; misses: number };
    };
    expect(metrics.data.hits).toBeGreaterThanOrEqual(1);
    expect(metrics.data.misses).toBeGreaterThanOrEqual(1);
    // The partner's status area asks the same API on each page view.
    await page.reload();
    expect(Number(await page.getByTestId('hits').textContent())).toBeGreaterThanOrEqual(1);

    await app.query(`UPDATE ${table} SET label = 'after' WHERE id = 1`);
    expect((await app.query(read)).rows).toEqual([{ label: 'after' }]);

    // The MariaDB leg: the partner creates a cache for the machine's MariaDB with its token, has
    // the server convert the user's string, and the application's mysql2 reads through the edge's
    // MySQL port: a repeated read is a hit, a write makes the next read fresh.
    const api = async (path: string, body: unknown) => {
      const response = await fetch(`${edgegateUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as { data: never } };
    };
    const created = await api('/v1/caches', {
      name: 'Shop MariaDB',
      type: 'mariadb',
      hostname: '127.0.0.1',
      port: 3306,
    });
    expect(created.status).toBe(201);
    const mariadbCache = (created.body.data as { id: string }).id;
    const converted = await api('/v1/connection-strings', {
      cacheId: mariadbCache,
      connectionString: 'mysql://root@127.0.0.1:3306/test',
    });
    const mysqlString = (converted.body.data as { connectionString: string }).connectionString;
    expect(mysqlString).toBe(`mysql://${mariadbCache}-root@127.0.0.1:${edgeMysqlPort}/test`);
    const shop = await mysql.createConnection(mysqlString);
    try {
      await shop.query(`CREATE TABLE ${table} (id int PRIMARY KEY, label text NOT NULL)`);
      await shop.query(`INSERT INTO ${table} VALUES (1, 'before')`);
      const [first] = await shop.query(read);
      const [second] = await shop.query(read);
      expect([first, second]).toEqual([[{ label: 'before' }], [{ label: 'before' }]]);
      await shop.query(`UPDATE ${table} SET label = 'after' WHERE id = 1`);
      const [third] = await shop.query(read);
      expect(third).toEqual([{ label: 'after' }]);
      const shopMetrics = (await (
        await fetch(`${edgegateUrl}/v1/caches/${mariadbCache}/metrics?window=15m`, {
          headers: { authorization: `Bearer ${accessToken}` },
        })
      ).json()) as { data: { hits: number; misses: number } };
      expect(shopMetrics.data.hits).toBe(1);
      expect(shopMetrics.data.misses).toBe(2);
    } finally {
      await shop.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
      await shop.end();
    }

    // The person revokes the app in Edgegate's account settings.
    await page.goto(`${edgegateUrl}/settings/account/authorized-apps`);
    await page
      .getByRole('row', { name: new RegExp(APP_NAME) })
      .getByRole('button', { name: 'Revoke' })
      .click();
    await page.getByRole('button', { name: 'Yes, revoke access' }).click();
    await page.getByText('Access revoked.').waitFor();

    const refused = await metricsOf(accessToken);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
    await page.goto(partner.url);
    await page.getByTestId('reconnect').waitFor();
    expect(await page.textContent('main')).toContain('Edgegate access was revoked — reconnect');
    expect(JSON.parse(await readFile(stateFile, 'utf8'))).not.toHaveProperty('tokens');
    // Only the partner's API access ended: the application's database traffic never needed it.
    expect((await app.query(read)).rows).toEqual([{ label: 'after' }]);

    // Reconnecting (already logged in to Edgegate) brings the same cache back.
    await page.getByTestId('reconnect').click();
    await page.getByLabel(/Acme Analytics/).check();
    await page.getByRole('button', { name: 'Allow' }).click();
    expect(await page.getByTestId('connection-string').textContent()).toBe(connectionString);
    await context.close();
  }, 180_000);
});

async function waitForHealth(url: string, server: ChildProcess, output: () => string) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`edgegate start exited early: ${output()}`);
    const healthy = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) return;
    await sleep(200);
  }
  throw new Error(`edgegate start was not healthy within 60 s: ${output()}`);
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
