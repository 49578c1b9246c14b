// A private MariaDB server for tests that need password users, ed25519, TLS or a binary log: the
// machine's own MariaDB has a passwordless root and must never be reconfigured.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createSelfSignedCertificate } from './throwaway-cluster.ts';

// Bounds for each step, so a wedged install or server fails the hook instead of hanging it.
const INSTALL_TIMEOUT_MS = 90_000;
const START_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;
const INSTALL_ATTEMPTS = 2;
const OS_USER = 'mysql';

/** One login per authentication method; `tls` exists only with `tls: true` and requires TLS. */
export const MARIADB_USERS = {
  native: 'native_user',
  ed25519: 'ed25519_user',
  tls: 'tls_user',
} as const;

export type MariadbUser = (typeof MARIADB_USERS)[keyof typeof MARIADB_USERS] | 'root';

export interface ThrowawayMariadb {
  host: '127.0.0.1';
  port: number;
  /** Database with `items(id int primary key, name varchar(40))`, usable by every user. */
  database: 'app';
  users: typeof MARIADB_USERS;
  password(user: MariadbUser): string;
  /** The server's self-signed certificate (also its CA) and key; null without `tls`. */
  certPath: string | null;
  keyPath: string | null;
  /** Runs SQL as root through the `mariadb` command-line client; returns its tab-separated output. */
  sql(statements: string): Promise<string>;
  stop(): Promise<void>;
}

export interface ThrowawayMariadbOptions {
  tls?: boolean;
  /** A row-based binary log in the data directory (`--log-bin --binlog-format=ROW --server-id=1`). */
  binlog?: boolean;
}

export async function startThrowawayMariadb(
  options: ThrowawayMariadbOptions = {},
): Promise<ThrowawayMariadb> {
  for (const tool of ['mariadb-install-db', 'mariadbd', 'mariadb-admin', 'mariadb']) {
    requireTool(tool, 'mariadb-server mariadb-client');
  }
  const owner = osUser(OS_USER);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edge-mariadb-'));
  const dataDir = path.join(dir, 'data');
  // The server's own temporary files: with the default (/tmp) a bootstrap shared the folder
  // with every other process on the machine and once lost a temporary table it had just made.
  const tmpDir = path.join(dir, 'tmp');
  const socket = path.join(dataDir, 's');
  const passwords = new Map<string, string>(
    ['root', ...Object.values(MARIADB_USERS)].map((user) => [
      user,
      `${user}-${randomBytes(9).toString('base64url')}`,
    ]),
  );
  const rootPassword = passwords.get('root') as string;
  let server: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;

  // Root logs in over the server's socket; the password exists once the setup has set it.
  let rootArgs = ['--no-defaults', `--socket=${socket}`, '--user=root'];
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    if (server !== null && server.exitCode === null && server.signalCode === null) {
      const child = server;
      await exec('mariadb-admin', [...rootArgs, 'shutdown'], STEP_TIMEOUT_MS).catch(
        () => undefined,
      );
      const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  // A test process that dies without its afterAll must not leave a server running.
  function killOnExit(): void {
    if (stopped) return;
    server?.kill('SIGKILL');
    try {
      execFileSync('rm', ['-rf', dir], { stdio: 'ignore' });
    } catch {
      // Best effort while exiting.
    }
  }
  process.once('exit', killOnExit);

  try {
    await chown(dir, owner.uid, owner.gid);
    await install(dataDir, tmpDir, owner);

    let certPath: string | null = null;
    let keyPath: string | null = null;
    if (options.tls === true) {
      ({ certPath, keyPath } = await createSelfSignedCertificate(dir));
      await chown(certPath, owner.uid, owner.gid);
      await chown(keyPath, owner.uid, owner.gid);
    }

    const logPath = path.join(dir, 'error.log');
    let port = 0;
    for (let attempt = 1; ; attempt += 1) {
      port = await freePort();
      const args = [
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--tmpdir=${tmpDir}`,
        `--port=${port}`,
        `--socket=${socket}`,
        '--bind-address=127.0.0.1',
        `--user=${OS_USER}`,
        `--log-error=${logPath}`,
        `--pid-file=${path.join(dataDir, 'pid')}`,
        // A throwaway server needs neither durability nor a large buffer pool.
        '--innodb-flush-log-at-trx-commit=0',
        '--innodb-buffer-pool-size=32M',
        '--skip-name-resolve',
        ...(options.binlog === true
          ? [`--log-bin=${path.join(dataDir, 'bin')}`, '--binlog-format=ROW', '--server-id=1']
          : []),
        ...(certPath !== null && keyPath !== null
          ? [`--ssl-cert=${certPath}`, `--ssl-key=${keyPath}`, `--ssl-ca=${certPath}`]
          : []),
      ];
      const child = spawn('mariadbd', args, { stdio: 'ignore' });
      server = child;
      exited = new Promise((resolve) => child.once('exit', () => resolve()));
      const ready = await waitUntilReady(port, child);
      if (ready) break;
      const log = await readFile(logPath, 'utf8').catch(() => '(no server log)');
      if (attempt < START_ATTEMPTS && /Can't start server: Bind/i.test(log)) continue;
      child.kill('SIGKILL');
      throw new Error(`the throwaway MariaDB did not start on port ${port}\n${log}`);
    }

    const users = MARIADB_USERS;
    const quoted = (user: string) => `'${passwords.get(user)}'`;
    await exec(
      'mariadb',
      [
        ...rootArgs,
        '--batch',
        '-e',
        [
          `INSTALL SONAME 'auth_ed25519'`,
          'CREATE DATABASE app',
          'CREATE TABLE app.items (id int primary key, name varchar(40))',
          `INSERT INTO app.items VALUES (1, 'anvil'), (2, 'bellows'), (3, 'chisel')`,
          `CREATE USER ${users.native}@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD(${quoted(users.native)})`,
          `CREATE USER ${users.ed25519}@'%' IDENTIFIED VIA ed25519 USING PASSWORD(${quoted(users.ed25519)})`,
          ...(options.tls === true
            ? [`CREATE USER ${users.tls}@'%' IDENTIFIED BY ${quoted(users.tls)} REQUIRE SSL`]
            : []),
          ...Object.values(users)
            .filter((user) => user !== users.tls || options.tls === true)
            .map((user) => `GRANT ALL ON app.* TO ${user}@'%'`),
          `ALTER USER root@localhost IDENTIFIED BY '${rootPassword}'`,
        ].join(';\n'),
      ],
      STEP_TIMEOUT_MS,
    );
    rootArgs = [...rootArgs, `--password=${rootPassword}`];

    return {
      host: '127.0.0.1',
      port,
      database: 'app',
      users,
      password(user) {
        const password = passwords.get(user);
        if (password === undefined || (user === users.tls && options.tls !== true)) {
          throw new Error(`no such throwaway MariaDB user: ${user}`);
        }
        return password;
      },
      certPath,
      keyPath,
      sql: (statements) =>
        exec(
          'mariadb',
          [...rootArgs, '--batch', '--skip-column-names', '-e', statements],
          STEP_TIMEOUT_MS,
        ),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

// Ready when `mariadb-admin ping` over TCP answers (it does so even before any login succeeds);
// false when the server exited first.
/**
 * Creates the system tables in a fresh data directory. A bootstrap that fails is tried once more
 * on an empty directory (its error kept), since a half-made one cannot be bootstrapped again.
 */
async function install(
  dataDir: string,
  tmpDir: string,
  owner: { uid: number; gid: number },
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    for (const folder of [dataDir, tmpDir]) {
      await rm(folder, { recursive: true, force: true });
      await mkdir(folder);
      await chown(folder, owner.uid, owner.gid);
    }
    try {
      await exec(
        'mariadb-install-db',
        [
          '--no-defaults',
          `--datadir=${dataDir}`,
          `--tmpdir=${tmpDir}`,
          `--user=${OS_USER}`,
          '--auth-root-authentication-method=normal',
          '--skip-test-db',
        ],
        INSTALL_TIMEOUT_MS,
      );
      return;
    } catch (error) {
      if (attempt >= INSTALL_ATTEMPTS) throw error;
      console.error(`throwaway MariaDB: bootstrap failed, trying again\n${String(error)}`);
    }
  }
}

async function waitUntilReady(port: number, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const answered = await exec(
      'mariadb-admin',
      [
        '--no-defaults',
        '--protocol=tcp',
        '--host=127.0.0.1',
        `--port=${port}`,
        '--connect-timeout=2',
        'ping',
      ],
      STEP_TIMEOUT_MS,
    ).then(
      () => true,
      () => false,
    );
    if (answered) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

function osUser(name: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`there is no \`${name}\` OS user to own the throwaway MariaDB`);
  }
}

function requireTool(tool: string, apt: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`\`${tool}\` is not installed: apt-get install -y ${apt}`);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function exec(file: string, args: string[], timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        if (error === null) return resolve(stdout);
        const why = error.killed ? `timed out after ${timeout} ms` : error.message;
        // Passwords never reach the error message.
        const shown = args.map((arg) => (arg.startsWith('--password=') ? '--password=…' : arg));
        reject(new Error(`${file} ${shown.join(' ')}: ${why}\n${stderr}`));
      },
    );
  });
}
