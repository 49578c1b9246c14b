// The throwaway MariaDB helper: password users of each plugin log in, TLS and the binary log are on,
// and stopping it leaves no server behind.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import mariadb from 'mariadb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayMariadb } from './helpers/throwaway-mariadb.ts';
import type { ThrowawayMariadb } from './helpers/throwaway-mariadb.ts';

let server: ThrowawayMariadb;

beforeAll(async () => {
  server = await startThrowawayMariadb({ tls: true, binlog: true });
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

function mysql2Options(user: string) {
  return {
    host: server.host,
    port: server.port,
    user,
    password: server.password(user as never),
    database: server.database,
  };
}

describe('throwaway MariaDB', () => {
  it('a mysql_native_password user logs in through mysql2 and reads the seeded table', async () => {
    const connection = await mysql.createConnection(mysql2Options(server.users.native));
    try {
      const [rows] = await connection.query('SELECT name FROM items ORDER BY id');
      expect(rows).toEqual([{ name: 'anvil' }, { name: 'bellows' }, { name: 'chisel' }]);
    } finally {
      await connection.end();
    }
  });

  it('keeps its temporary files in a folder of its own, not the machine-wide /tmp', async () => {
    const tmpdir = (await server.sql('SELECT @@tmpdir')).trim().split('\n').pop() ?? '';
    expect(tmpdir).toMatch(/edge-mariadb-[^/]+\/tmp$/);
  });

  it('a wrong password gets 1045 from the server', async () => {
    const attempt = mysql.createConnection({
      ...mysql2Options(server.users.native),
      password: 'wrong',
    });
    await expect(attempt).rejects.toMatchObject({ errno: 1045, sqlState: '28000' });
  });

  it('the ed25519 user logs in through the mariadb connector; mysql2 has no client_ed25519 plugin', async () => {
    const connection = await mariadb.createConnection(mysql2Options(server.users.ed25519));
    try {
      const rows = await connection.query('SELECT CURRENT_USER() AS who');
      expect(rows[0].who).toBe(`${server.users.ed25519}@%`);
    } finally {
      await connection.end();
    }
    await expect(mysql.createConnection(mysql2Options(server.users.ed25519))).rejects.toThrow(
      /client_ed25519/,
    );
  });

  it('the users are stored with the plugins they are named after', async () => {
    const output = await server.sql(
      `SELECT user, plugin FROM mysql.user WHERE user LIKE '%\\_user' ORDER BY user`,
    );
    expect(output.trim().split('\n')).toEqual([
      'ed25519_user\ted25519',
      'native_user\tmysql_native_password',
      'tls_user\tmysql_native_password',
    ]);
  });

  it('the TLS user needs TLS: refused in clear text, accepted with the server certificate', async () => {
    await expect(mysql.createConnection(mysql2Options(server.users.tls))).rejects.toMatchObject({
      errno: 1045,
    });
    const ca = await readFile(server.certPath as string, 'utf8');
    const connection = await mysql.createConnection({
      ...mysql2Options(server.users.tls),
      ssl: { ca },
    });
    try {
      const [rows] = await connection.query(`SHOW SESSION STATUS LIKE 'Ssl_version'`);
      expect((rows as { Value: string }[])[0]?.Value).toMatch(/^TLSv1\.[23]$/);
    } finally {
      await connection.end();
    }
  });

  it('writes a row-based binary log', async () => {
    expect(await server.sql(`SELECT @@log_bin, @@binlog_format, @@server_id`)).toBe('1\tROW\t1\n');
    await server.sql(`INSERT INTO app.items VALUES (4, 'drill')`);
    expect(await server.sql('SHOW BINARY LOGS')).toMatch(/^bin\.000001\t\d+/);
  });

  it('the mariadb command-line client logs in with each password user', async () => {
    for (const user of [server.users.native, server.users.ed25519]) {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          'mariadb',
          [
            '--no-defaults',
            '--protocol=tcp',
            '-h',
            server.host,
            '-P',
            String(server.port),
            '-u',
            user,
            `--password=${server.password(user)}`,
            '--batch',
            '--skip-column-names',
            '-e',
            'SELECT CURRENT_USER()',
          ],
          { timeout: 15_000 },
          (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout)),
        ),
      );
      expect(out.trim()).toBe(`${user}@%`);
    }
  });
});

describe('stopping', () => {
  it('a second server stops cleanly and its port closes', async () => {
    const other = await startThrowawayMariadb();
    const connection = await mysql.createConnection({
      host: other.host,
      port: other.port,
      user: other.users.native,
      password: other.password(other.users.native),
      database: other.database,
    });
    await connection.end();
    await other.stop();
    await expect(
      mysql.createConnection({
        host: other.host,
        port: other.port,
        user: 'x',
        connectTimeout: 2000,
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }, 180_000);
});
