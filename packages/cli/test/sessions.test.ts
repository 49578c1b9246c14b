// `edgegate sessions list|kill` (PgBouncer's SHOW CLIENTS and KILL) against a real `edgegate edge`
// on a Postgres store, through its admin socket: real pg and mysql2 clients are listed, filtered by
// cache, and ended with 57P01 / MySQL 1927; without a running process the command says where it
// looked.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertCache } from '../../server/src/db/queries/caches.ts';
import { migrateToLatest, openStore } from '../../server/src/db/store.ts';
import { signUp } from '../../server/src/services/accounts.ts';
import { newId } from '../../server/src/services/crypto.ts';
import { createTestDatabase } from '../../server/test/helpers/stores.ts';
import { spawnEdgegate, stopEdgegate, type Edgegate } from './helpers/spawn-edgegate.ts';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
const run = promisify(execFile);

interface Row {
  id: string;
  protocol: string;
  cacheId: string | null;
  user: string | null;
  database: string | null;
  state: string;
  queries: number;
}

describe('edgegate sessions', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let dataDir: string;
  let running: Edgegate;
  let pgCache: string;
  let mysqlCache: string;
  let pgPort: number;
  let mysqlPort: number;

  async function edgegate(args: string[], dir = dataDir) {
    try {
      const { stdout, stderr } = await run(
        process.execPath,
        [BIN, ...args, '--data-dir', dir, '--database-url', database.url],
        { env: { ...process.env, LOG_LEVEL: 'warn' }, timeout: 30_000 },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  async function list(...extra: string[]): Promise<Row[]> {
    const result = await edgegate(['sessions', 'list', '--json', ...extra]);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as Row[];
  }

  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
    const store = await openStore({ databaseUrl: database.url, dataDir: 'unused' });
    await migrateToLatest(store.db);
    const { personalWorkspace } = await signUp(store.db, {
      email: 'sessions-cli@example.com',
      password: 'long enough pw',
    });
    const cache = async (type: 'postgres' | 'mariadb', port: number) =>
      (
        await insertCache(store.db, {
          id: newId('cch'),
          workspaceId: personalWorkspace.id,
          name: type,
          description: '',
          type,
          hostname: '127.0.0.1',
          port,
          defaultMode: 'auto',
          defaultTtlSeconds: 60,
          originTls: 'disable',
        })
      ).id;
    pgCache = await cache('postgres', 5432);
    mysqlCache = await cache('mariadb', 3306);
    await store.close();
    dataDir = mkdtempSync(join(tmpdir(), 'eg-sessions-cli-'));
    running = spawnEdgegate(
      [
        'edge',
        '--database-url',
        database.url,
        '--data-dir',
        dataDir,
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
      ],
      { EDGEGATE_SECRET: 'c'.repeat(48), EDGE_THREADS: '2' },
    );
    const line = await running.logged(/:(\d+) \(Postgres\) and [^"]+?:(\d+) \(MySQL/);
    const [, pgText, mysqlText] = /:(\d+) \(Postgres\) and [^"]+?:(\d+) \(MySQL/.exec(line) ?? [];
    pgPort = Number(pgText);
    mysqlPort = Number(mysqlText);
    await running.url;
  }, 30_000);

  afterAll(async () => {
    await stopEdgegate(running);
    await database?.drop();
  });

  it('lists the sessions of every thread and protocol, by cache, and kills one with 57P01 / 1927', async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: pgPort,
      user: 'postgres',
      database: 'test',
      application_name: pgCache,
    });
    await client.connect();
    const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: mysqlPort,
      user: `${mysqlCache}-root`,
      database: 'test',
    });
    const mysqlEnded = new Promise<Error>((resolve) => connection.on('error', resolve));
    await client.query('SELECT 1');

    const all = await list();
    expect(all.map((row) => row.protocol).sort()).toEqual(['mysql', 'postgres']);
    const pgRow = all.find((row) => row.protocol === 'postgres')!;
    expect(pgRow).toMatchObject({
      cacheId: pgCache,
      user: 'postgres',
      database: 'test',
      state: 'idle',
      queries: 1,
    });
    expect((await list('--cache', mysqlCache)).map((row) => row.cacheId)).toEqual([mysqlCache]);

    const human = await edgegate(['sessions', 'list']);
    expect(human.stdout).toContain('STATE');
    expect(human.stdout).toContain(pgRow.id);
    expect(human.stdout).toContain('2 sessions.');

    const kill = await edgegate(['sessions', 'kill', '--id', pgRow.id]);
    expect(kill.code, kill.stderr).toBe(0);
    expect(kill.stdout).toContain(`Ended session ${pgRow.id}`);
    expect((await ended).code).toBe('57P01');
    const mysqlRow = (await list()).find((row) => row.protocol === 'mysql')!;
    expect((await edgegate(['sessions', 'kill', '--id', mysqlRow.id])).code).toBe(0);
    // mysql2 reports an error on an idle connection by its message (no errno).
    expect((await mysqlEnded).message).toContain('Connection was killed');
    expect(await list()).toEqual([]);

    const unknown = await edgegate(['sessions', 'kill', '--id', '12345']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('No open session 12345');
    connection.destroy();
  }, 60_000);

  it('is listed in --help, with its own --help', async () => {
    const help = await edgegate(['--help']);
    expect(help.stdout).toContain('sessions list');
    expect(help.stdout).toContain('sessions kill');
    const own = await edgegate(['sessions', 'kill', '--help']);
    expect(own.stdout).toContain('edgegate sessions kill --id ID');
  });

  it('says where it looked when no running process answers', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'eg-sessions-none-'));
    const result = await edgegate(['sessions', 'list'], elsewhere);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `no running Edgegate process answers on ${elsewhere}/admin.sock`,
    );
  });
});
