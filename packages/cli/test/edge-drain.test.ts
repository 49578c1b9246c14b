// SIGTERM drains a real edge (`edgegate edge` on two threads, and the edge of `edgegate start`):
// both ports refuse new connections and /readyz answers 503 at once; idle sessions end at once;
// a query in flight and a transaction that commits within EDGE_DRAIN_SECONDS go through; what
// is still busy at the end gets Postgres 57P01 or MySQL 1053, never a bare EOF; then it exits.
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { insertCache } from '../../server/src/db/queries/caches.ts';
import { migrateToLatest, openStore } from '../../server/src/db/store.ts';
import { signUp } from '../../server/src/services/accounts.ts';
import { newId } from '../../server/src/services/crypto.ts';
import { createTestDatabase } from '../../server/test/helpers/stores.ts';
import { spawnEdgegate, stopEdgegate, type Edgegate } from './helpers/spawn-edgegate.ts';

const DRAIN_SECONDS = 2;

interface Ports {
  pg: number;
  mysql: number;
}

/**
 * Whether TCP connections to the port are refused (nothing listens any more) within `ms`: the
 * signal reaches the edge's threads by message, a few milliseconds after the log line.
 */
async function refused(port: number, ms = 500): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await refusedNow(port))) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function refusedNow(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/**
 * The first error an idle connection's client reports when the server ends it (later ones:
 * ignored), with when it came.
 */
function nextError(emitter: {
  on(event: 'error', listener: (error: Error) => void): unknown;
}): Promise<Error & { code?: string; errno?: number; at: number }> {
  return new Promise((resolve) =>
    emitter.on('error', (error) => resolve(Object.assign(error, { at: Date.now() }))),
  );
}

describe('edge drain on SIGTERM', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let pgCache: string;
  let mysqlCache: string;
  let running: Edgegate | undefined;

  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
    const store = await openStore({ databaseUrl: database.url, dataDir: 'unused' });
    await migrateToLatest(store.db);
    const { personalWorkspace } = await signUp(store.db, {
      email: 'drain@example.com',
      password: 'long enough pw',
    });
    const cache = (id: string, type: 'postgres' | 'mariadb', port: number) =>
      insertCache(store.db, {
        id,
        workspaceId: personalWorkspace.id,
        name: id,
        description: '',
        type,
        hostname: '127.0.0.1',
        port,
        defaultMode: 'auto',
        defaultTtlSeconds: 60,
        originTls: 'disable',
      });
    pgCache = (await cache(newId('cch'), 'postgres', 5432)).id;
    mysqlCache = (await cache(newId('cch'), 'mariadb', 3306)).id;
    await store.close();
  }, 30_000);

  afterEach(async () => {
    await stopEdgegate(running);
    running = undefined;
  });

  afterAll(async () => {
    await database?.drop();
  });

  async function start(
    command: 'edge' | 'start',
    threads: number,
    delaySeconds: number,
  ): Promise<Ports> {
    running = spawnEdgegate(
      [
        command,
        '--database-url',
        database.url,
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
      ],
      {
        EDGE_DRAIN_SECONDS: String(DRAIN_SECONDS),
        EDGE_THREADS: String(threads),
        SHUTDOWN_DELAY_SECONDS: String(delaySeconds),
        EDGEGATE_SECRET: 'd'.repeat(48),
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-drain-')),
      },
    );
    const line = await running.logged(
      /edge listening on [^"]+?:(\d+) \(Postgres\) and [^"]+?:(\d+) \(MySQL/,
    );
    const [, pgPort, mysqlPort] = /:(\d+) \(Postgres\) and [^"]+?:(\d+) \(MySQL/.exec(line) ?? [];
    await running.url;
    return { pg: Number(pgPort), mysql: Number(mysqlPort) };
  }

  async function pgClient(port: number): Promise<pg.Client> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      database: 'test',
      application_name: pgCache,
    });
    await client.connect();
    return client;
  }

  function mysqlClient(port: number): Promise<mysql.Connection> {
    return mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: `${mysqlCache}-root`,
      database: 'test',
    });
  }

  it('`edgegate edge` on two threads: in-flight work finishes, the rest gets 57P01 / 1053, new connections are refused', async () => {
    const ports = await start('edge', 2, 1);
    const base = await running!.url;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    const pgIdle = await pgClient(ports.pg);
    const pgBusy = await pgClient(ports.pg);
    const pgTx = await pgClient(ports.pg);
    const pgStuck = await pgClient(ports.pg);
    const myIdle = await mysqlClient(ports.mysql);
    const myBusy = await mysqlClient(ports.mysql);
    const myTx = await mysqlClient(ports.mysql);
    const myStuck = await mysqlClient(ports.mysql);
    // Every client ends with an error event once the edge ends its session: none may go unheard.
    const pgIdleEnded = nextError(pgIdle);
    for (const client of [pgBusy, pgTx, pgStuck]) client.on('error', () => {});
    const myIdleEnded = nextError(myIdle);
    for (const client of [myBusy, myTx, myStuck]) client.on('error', () => {});

    await pgTx.query('BEGIN');
    await pgTx.query('SELECT txid_current()');
    await myTx.query('BEGIN');
    await myTx.query('SELECT 1');
    const pgBusyQuery = pgBusy.query('SELECT pg_sleep(1) AS slept, 42 AS answer');
    const pgStuckQuery = pgStuck.query('SELECT pg_sleep(10)').then(
      () => null,
      (error: Error & { code?: string }) => error,
    );
    const myBusyQuery = myBusy.query('SELECT SLEEP(1) AS slept, 42 AS answer');
    const myStuckQuery = myStuck.query('SELECT SLEEP(10)').then(
      () => null,
      (error: Error & { errno?: number; sqlState?: string }) => error,
    );
    // The queries reach the origin before the signal.
    await new Promise((resolve) => setTimeout(resolve, 200));

    const signalled = Date.now();
    running!.child.kill('SIGTERM');
    await running!.logged(/SIGTERM received/);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(await refused(ports.pg)).toBe(true);
    expect(await refused(ports.mysql)).toBe(true);

    // Idle sessions end at once, with the protocol's shutdown error.
    const pgIdleError = await pgIdleEnded;
    expect(pgIdleError.code).toBe('57P01');
    expect(pgIdleError.message).toContain('terminating connection due to administrator command');
    const myIdleError = await myIdleEnded;
    expect(myIdleError.message).toContain('Server shutdown in progress');
    // At once: well before the queries in flight are answered (the machine may be busy).
    expect(pgIdleError.at - signalled).toBeLessThan(900);
    expect(myIdleError.at - signalled).toBeLessThan(900);

    // A transaction that commits within the window goes through.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await expect(pgTx.query('COMMIT')).resolves.toMatchObject({ command: 'COMMIT' });
    await expect(myTx.query('COMMIT')).resolves.toBeDefined();

    // A query in flight at the signal completes.
    const pgBusyResult = await pgBusyQuery;
    expect(pgBusyResult.rows[0]).toMatchObject({ answer: 42 });
    const [myBusyRows] = (await myBusyQuery) as [Array<{ answer: number }>, unknown];
    expect(myBusyRows[0]).toMatchObject({ answer: 42 });

    // Whatever is still busy when the drain is over gets the shutdown error, not a bare EOF.
    const pgStuckError = await pgStuckQuery;
    expect(pgStuckError?.code).toBe('57P01');
    const myStuckError = await myStuckQuery;
    expect(myStuckError?.errno).toBe(1053);
    expect(myStuckError?.sqlState).toBe('08S01');
    const ended = Date.now() - signalled;
    expect(ended).toBeGreaterThanOrEqual(DRAIN_SECONDS * 1000 - 100);

    expect(await running!.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(DRAIN_SECONDS * 1000 + 5_000);
    expect(running!.output()).toContain('ending 2 session(s) still busy');
    for (const client of [pgBusy, pgTx, pgStuck]) await client.end().catch(() => {});
    for (const client of [myBusy, myTx, myStuck]) client.destroy();
  }, 30_000);

  it('`edgegate start`: the edge drains while the control plane waits SHUTDOWN_DELAY_SECONDS; an idle drain ends at once', async () => {
    // The pre-stop delay outlasts the drain here: HTTP still answers while the edge has drained.
    const ports = await start('start', 1, DRAIN_SECONDS + 1);
    const base = await running!.url;
    const pgIdle = await pgClient(ports.pg);
    const pgIdleEnded = nextError(pgIdle);
    const pgBusy = await pgClient(ports.pg);
    pgBusy.on('error', () => {});
    const busyQuery = pgBusy.query('SELECT pg_sleep(0.5) AS slept, 7 AS answer');
    await new Promise((resolve) => setTimeout(resolve, 100));

    const signalled = Date.now();
    running!.child.kill('SIGTERM');
    const line = await running!.logged(/SIGTERM received: [^"]*/);
    expect(line).toContain(
      `/readyz answers 503 for ${DRAIN_SECONDS + 1} s (SHUTDOWN_DELAY_SECONDS)`,
    );
    expect(line).toContain(
      `open sessions finish for up to ${DRAIN_SECONDS} s (EDGE_DRAIN_SECONDS)`,
    );
    expect((await pgIdleEnded).code).toBe('57P01');
    expect(await refused(ports.pg)).toBe(true);
    expect(await refused(ports.mysql)).toBe(true);
    expect((await busyQuery).rows[0]).toMatchObject({ answer: 7 });
    await running!.logged(/edge drained: every session ended/);
    // The HTTP side still serves during its pre-stop delay, after the edge has drained.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    expect(await running!.exited).toBe(0);
    // The pre-stop delay was the longer wait; the HTTP side then closed at once.
    const took = Date.now() - signalled;
    expect(took).toBeGreaterThanOrEqual((DRAIN_SECONDS + 1) * 1000 - 100);
    expect(took).toBeLessThan((DRAIN_SECONDS + 1) * 1000 + 4_000);
    await pgBusy.end().catch(() => {});
  }, 30_000);
});
