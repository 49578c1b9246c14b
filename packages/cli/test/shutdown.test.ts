// A server on a Postgres store stops within a bounded time on SIGTERM, whatever its store
// connections are doing: here Postgres terminates every one of them (pooled, pipelined, LISTEN)
// around the signal, at the moments a dropped LISTEN connection is being reopened.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_DATABASE_URL, createTestDatabase } from '../../server/test/helpers/stores.ts';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
/** Far below a process manager's patience (Kubernetes waits 30 s), and above the 10 s request grace. */
const EXIT_BOUND_MS = 10_000;

describe('shutdown while Postgres drops the store connections', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: pg.Client;
  const databaseName = () => new URL(database.url).pathname.slice(1);

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await database?.drop();
  });

  /** Ends every backend of this test's database (and no other). */
  async function terminateStoreConnections(): Promise<number> {
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM (
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()) ended`,
      [databaseName()],
    );
    return rows[0].n;
  }

  function startServer(command: 'server' | 'start') {
    const child = spawn(
      process.execPath,
      [
        BIN,
        command,
        '--database-url',
        database.url,
        '--data-dir',
        mkdtempSync(join(tmpdir(), 'eg-shutdown-')),
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
      ],
      {
        env: { ...process.env, LOG_LEVEL: 'info', SHUTDOWN_DELAY_SECONDS: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const url = new Promise<string>((resolveUrl, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /"url":"(http:\/\/[^"]+)"/.exec(output);
        if (match?.[1]) resolveUrl(match[1]);
      });
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      void exited.then((code) => reject(new Error(`exited early (${code}): ${output}`)));
    });
    return { child, url, exited, output: () => output };
  }

  // Delays between terminating the connections and the signal: at once, and around the moment a
  // dropped LISTEN connection is reopened (a second later).
  const delays = [0, 950, 1000, 1050];

  it.each(['server', 'start'] as const)(
    '`edgegate %s` exits within the bound every time',
    async (command) => {
      for (const delay of delays) {
        const server = startServer(command);
        try {
          const base = await server.url;
          // Open the pooled and pipelined connections, as traffic would.
          await Promise.all(
            Array.from({ length: 4 }, () => fetch(`${base}/readyz`).then((r) => r.text())),
          );
          await fetch(`${base}/oauth2/token`, { method: 'POST' }).then((r) => r.text());
          // Requests keep arriving throughout, as they would from a load balancer.
          let loading = true;
          const load = (async () => {
            while (loading) {
              await Promise.all(
                ['/readyz', '/v1/caches', '/oauth2/introspect'].map((path) =>
                  fetch(`${base}${path}`, {
                    method: path === '/readyz' ? 'GET' : 'POST',
                    headers: { authorization: 'Bearer made-up' },
                    signal: AbortSignal.timeout(2_000),
                  })
                    .then((r) => r.text())
                    .catch(() => undefined),
                ),
              );
            }
          })();
          expect(await terminateStoreConnections()).toBeGreaterThan(0);
          await new Promise((r) => setTimeout(r, delay));
          const signalled = Date.now();
          const ending = terminateStoreConnections();
          server.child.kill('SIGTERM');
          await ending;
          loading = false;
          await load;
          const bound = new Promise<'timeout'>((r) =>
            setTimeout(() => r('timeout'), EXIT_BOUND_MS),
          );
          const outcome = await Promise.race([server.exited, bound]);
          expect(outcome, `${command} after ${delay} ms: ${server.output().slice(-2000)}`).not.toBe(
            'timeout',
          );
          expect(Date.now() - signalled).toBeLessThan(EXIT_BOUND_MS);
        } finally {
          if (server.child.exitCode === null && server.child.signalCode === null)
            server.child.kill('SIGKILL');
          await server.exited;
        }
      }
    },
    120_000,
  );

  it('exits within the bound while requests wait on the store forever (a lock never released)', async () => {
    const server = startServer('server');
    const locker = new pg.Client({ connectionString: database.url });
    try {
      const base = await server.url;
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE api_keys, sessions IN ACCESS EXCLUSIVE MODE');
      // One waits on a pooled connection (the session lookup), one on a pipelined one (the key).
      const stuck = [
        fetch(`${base}/workspaces`, { headers: { cookie: 'eg_session=stuck' } }),
        fetch(`${base}/v1/caches`, { headers: { authorization: 'Bearer egk_stuck' } }),
      ].map((request) => request.then((r) => r.status).catch(() => 'dropped'));
      await waitForLockWaits(2);
      const signalled = Date.now();
      server.child.kill('SIGTERM');
      // The 10 s grace for in-flight requests, then at most a few seconds to give up on the store.
      const bound = 14_000;
      const outcome = await Promise.race([
        server.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), bound)),
      ]);
      expect(outcome, server.output().slice(-2000)).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(bound);
      await Promise.all(stuck);
    } finally {
      await locker.end().catch(() => undefined);
      if (server.child.exitCode === null && server.child.signalCode === null)
        server.child.kill('SIGKILL');
      await server.exited;
    }
  }, 60_000);

  /** Waits until `n` backends of the test database wait for a lock. */
  async function waitForLockWaits(n: number) {
    for (let i = 0; i < 100; i++) {
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`,
        [databaseName()],
      );
      if (rows[0].n >= n) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`fewer than ${n} queries wait for the lock`);
  }
});
