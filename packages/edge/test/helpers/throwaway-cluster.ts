// A private PostgreSQL cluster for tests that need real password authentication: the machine's
// own Postgres trusts loopback and so never asks for a password.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const POSTGRES_ROOT = '/usr/lib/postgresql';
const SUPERUSER = 'postgres';
// Bounds for each step, so a wedged initdb or server fails the hook instead of hanging it.
const INITDB_TIMEOUT_MS = 60_000;
const START_TIMEOUT_S = 30;
const STEP_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;

/** One login role per authentication method, named as pg_hba.conf names them. */
export const CLUSTER_USERS = {
  scram: 'scram_user',
  md5: 'md5_user',
  cleartext: 'plain_user',
  trust: 'trust_user',
} as const;

export type ClusterUser = (typeof CLUSTER_USERS)[keyof typeof CLUSTER_USERS];

export interface ThrowawayCluster {
  host: '127.0.0.1';
  port: number;
  /** Database with `items(id int primary key, name text)`, readable and writable by every user. */
  database: 'app';
  superuser: string;
  users: typeof CLUSTER_USERS;
  password(user: ClusterUser | typeof SUPERUSER): string;
  /** The server's self-signed certificate and key (PEM files); null without `tls`. */
  certPath: string | null;
  keyPath: string | null;
  stop(): Promise<void>;
}

// Later lines never match a user named earlier: pg_hba.conf takes the first match.
const HBA = `# Written by throwaway-cluster.ts: one authentication method per user.
local all all scram-sha-256
host all ${CLUSTER_USERS.scram} 127.0.0.1/32 scram-sha-256
host all ${CLUSTER_USERS.md5} 127.0.0.1/32 md5
host all ${CLUSTER_USERS.cleartext} 127.0.0.1/32 password
host all ${CLUSTER_USERS.trust} 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
`;

export interface ThrowawayClusterOptions {
  tls?: boolean;
  /** `logical` lets replication clients read changes through `pgoutput` (default: replica). */
  walLevel?: 'replica' | 'logical';
}

export async function startThrowawayCluster(
  options: ThrowawayClusterOptions = {},
): Promise<ThrowawayCluster> {
  const bin = postgresBinDir();
  const asPostgres = process.getuid?.() === 0;
  if (asPostgres) requireTool('runuser', 'util-linux');
  if (options.tls === true) requireTool('openssl', 'openssl');

  const dir = await mkdtemp(path.join(os.tmpdir(), 'edge-pg-'));
  const dataDir = path.join(dir, 'data');
  const logPath = path.join(dir, 'postgres.log');
  // Run as the cluster's owner: initdb refuses root, so root drops to the `postgres` OS user.
  const command = (tool: string, args: string[]): [string, string[]] =>
    asPostgres
      ? ['runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]]
      : [path.join(bin, tool), args];
  const run = (tool: string, args: string[], timeout = STEP_TIMEOUT_MS) =>
    exec(...command(tool, args), { cwd: dir, timeout });
  const stopArgs = ['-D', dataDir, 'stop', '-m', 'immediate', '-w'];
  // A server may be up even when its start timed out: its pid file says so.
  const running = () => existsSync(path.join(dataDir, 'postmaster.pid'));
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stopOnExit);
    if (running()) {
      await run('pg_ctl', stopArgs).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  };
  // A test process that dies without its afterAll must not leave a server running.
  function stopOnExit(): void {
    if (stopped) return;
    try {
      if (running()) {
        execFileSync(...command('pg_ctl', stopArgs), {
          stdio: 'ignore',
          timeout: STEP_TIMEOUT_MS,
        });
      }
      execFileSync('rm', ['-rf', dir], { stdio: 'ignore' });
    } catch {
      // Best effort while exiting.
    }
  }
  process.once('exit', stopOnExit);

  try {
    const owner = asPostgres ? postgresOsUser() : null;
    if (owner !== null) await chown(dir, owner.uid, owner.gid);

    const passwords = new Map<string, string>(
      [SUPERUSER, ...Object.values(CLUSTER_USERS)].map((user) => [
        user,
        `${user}-${randomBytes(9).toString('base64url')}`,
      ]),
    );
    const pwfile = path.join(dir, 'superuser-password');
    await writeFile(pwfile, `${passwords.get(SUPERUSER)}\n`, { mode: 0o600 });
    if (owner !== null) await chown(pwfile, owner.uid, owner.gid);

    await run(
      'initdb',
      [
        '-D',
        dataDir,
        '-U',
        SUPERUSER,
        '--auth=scram-sha-256',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      INITDB_TIMEOUT_MS,
    );
    await rm(pwfile);

    let certPath: string | null = null;
    let keyPath: string | null = null;
    if (options.tls === true) {
      ({ certPath, keyPath } = await createSelfSignedCertificate(dir));
      // Postgres refuses a key file that others can read or that it does not own.
      if (owner !== null) {
        await chown(certPath, owner.uid, owner.gid);
        await chown(keyPath, owner.uid, owner.gid);
      }
    }

    // pg_hba.conf is in place before the first start, so no connection ever sees initdb's rules.
    await writeFile(path.join(dataDir, 'pg_hba.conf'), HBA);
    const settings = [
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      `password_encryption = 'scram-sha-256'`,
      // A throwaway cluster needs no durability.
      'fsync = off',
      ...(options.walLevel === 'logical' ? ['wal_level = logical'] : []),
      ...(certPath !== null && keyPath !== null
        ? ['ssl = on', `ssl_cert_file = '${certPath}'`, `ssl_key_file = '${keyPath}'`]
        : []),
    ];
    const conf = path.join(dataDir, 'postgresql.conf');
    await writeFile(conf, `${await readFile(conf, 'utf8')}\n${settings.join('\n')}\n`);
    if (owner !== null) {
      await chown(path.join(dataDir, 'pg_hba.conf'), owner.uid, owner.gid);
      await chown(conf, owner.uid, owner.gid);
    }

    // The free port is only free when asked: another process may take it before the server binds.
    let port = 0;
    let started = false;
    for (let attempt = 1; !started; attempt += 1) {
      port = await freePort();
      try {
        await run(
          'pg_ctl',
          [
            '-D',
            dataDir,
            '-l',
            logPath,
            '-o',
            `-p ${port}`,
            '-w',
            '-t',
            String(START_TIMEOUT_S),
            'start',
          ],
          (START_TIMEOUT_S + 5) * 1000,
        );
        started = true;
      } catch (error) {
        const log = await readFile(logPath, 'utf8').catch(() => '(no server log)');
        if (attempt < START_ATTEMPTS && log.includes('could not bind')) continue;
        throw new Error(
          `the throwaway cluster did not start: ${(error as Error).message}\n${log}`,
          { cause: error },
        );
      }
    }

    await setUp(port, passwords);

    return {
      host: '127.0.0.1',
      port,
      database: 'app',
      superuser: SUPERUSER,
      users: CLUSTER_USERS,
      password(user) {
        const password = passwords.get(user);
        if (password === undefined) throw new Error(`no such cluster user: ${user}`);
        return password;
      },
      certPath,
      keyPath,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A self-signed certificate for 127.0.0.1 (EC P-256, valid one day) written into `dir`. */
export async function createSelfSignedCertificate(
  dir: string,
): Promise<{ certPath: string; keyPath: string }> {
  requireTool('openssl', 'openssl');
  const certPath = path.join(dir, 'server.crt');
  const keyPath = path.join(dir, 'server.key');
  await exec(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { cwd: dir, timeout: STEP_TIMEOUT_MS },
  );
  await chmod(keyPath, 0o600);
  return { certPath, keyPath };
}

// The roles, the md5-stored password and the `app` database, made as the superuser over TCP.
async function setUp(port: number, passwords: Map<string, string>): Promise<void> {
  const connect = async (database: string) => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      password: passwords.get(SUPERUSER),
      database,
      connectionTimeoutMillis: STEP_TIMEOUT_MS,
    });
    await client.connect();
    return client;
  };
  const admin = await connect('postgres');
  try {
    for (const user of Object.values(CLUSTER_USERS)) {
      // Stored as md5 only while the session says so: the md5 method needs an md5 hash.
      await admin.query(
        `set password_encryption = '${user === CLUSTER_USERS.md5 ? 'md5' : 'scram-sha-256'}'`,
      );
      await admin.query(
        `create role ${user} login password ${admin.escapeLiteral(passwords.get(user) as string)}`,
      );
    }
    const stored = await admin.query<{ rolname: string; rolpassword: string }>(
      'select rolname, rolpassword from pg_authid where rolname = any($1)',
      [Object.values(CLUSTER_USERS)],
    );
    for (const { rolname, rolpassword } of stored.rows) {
      const md5 = rolpassword.startsWith('md5');
      if (md5 !== (rolname === CLUSTER_USERS.md5)) {
        throw new Error(`${rolname}'s password was stored in the wrong format`);
      }
    }
    await admin.query('create database app');
  } finally {
    await admin.end();
  }
  const app = await connect('app');
  try {
    const users = Object.values(CLUSTER_USERS).join(', ');
    await app.query('create table items (id int primary key, name text)');
    await app.query(`insert into items values (1, 'anvil'), (2, 'bellows'), (3, 'chisel')`);
    await app.query(`grant select, insert, update, delete on items to ${users}`);
  } finally {
    await app.end();
  }
}

// The newest installed major version's server binaries.
function postgresBinDir(): string {
  const versions = existsSync(POSTGRES_ROOT)
    ? readdirSync(POSTGRES_ROOT)
        .filter((name) => /^\d+$/.test(name))
        .filter((name) => existsSync(path.join(POSTGRES_ROOT, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) {
    throw new Error(
      `no PostgreSQL server binaries (initdb) under ${POSTGRES_ROOT}/<version>/bin: ` +
        'install the server package (apt-get install -y postgresql)',
    );
  }
  return path.join(POSTGRES_ROOT, versions[0], 'bin');
}

function postgresOsUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      'there is no `postgres` OS user to own the throwaway cluster (tests run as root)',
    );
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
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function exec(
  file: string,
  args: string[],
  options: { cwd: string; timeout: number },
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { ...options, encoding: 'utf8', killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        if (error === null) return resolve(stdout);
        const why = error.killed ? `timed out after ${options.timeout} ms` : error.message;
        reject(new Error(`${path.basename(file)} ${args.join(' ')}: ${why}\n${stderr}`));
      },
    );
  });
}
