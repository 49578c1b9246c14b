// Logins through the MySQL edge with real clients: routing by the cache id in the username, the
// origin's own auth plugins (mysql_native_password, ed25519) relayed without the edge seeing a
// password, the origin's own refusals, TLS at the edge and to the origin, mysql_clear_password only
// over TLS, and COM_CHANGE_USER within the connection's cache.
import { execFile } from 'node:child_process';
import {
  constants,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import mariadb, { type ConnectionConfig } from 'mariadb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionCounts } from '../src/limits/connection-counts.ts';
import {
  PacketParser,
  codes,
  decodeClientHandshake,
  decodeHandshakeV10,
  serialize,
} from '../src/mysql/protocol/index.ts';
import { mariadbCache, startMysqlEdge, type RunningMysqlEdge } from './helpers/mysql-edge.ts';
import { pythonWithPymysql } from './helpers/pymysql.ts';
import { startThrowawayMariadb, type ThrowawayMariadb } from './helpers/throwaway-mariadb.ts';
import { mariadbHandshake, mysql8Handshake } from './mysql-protocol-fixtures.ts';

const PLAIN = 'cch_authplain'; // the throwaway server, in clear text
const SECURE = 'cch_authtls'; // the throwaway server, originTls: 'require'
const NO_TLS_ORIGIN = 'cch_authnotls'; // the machine's MariaDB (no TLS), originTls: 'require'
const PREFER = 'cch_authprefer'; // the throwaway server, originTls: 'prefer'
const PREFER_NO_TLS = 'cch_authprefernotls'; // the machine's MariaDB, originTls: 'prefer'
const POSTGRES = 'cch_authpg';
const SCRIPTED = 'cch_authclear'; // an origin that asks for mysql_clear_password
const SHA2 = 'cch_authsha2'; // a MySQL 8-like origin with caching_sha2_password
const SHA2_TLS = 'cch_authsha2tls'; // the same, originTls: 'require'
const SHA2_PASSWORD = 'sha2-Secret-7';
const OTHER_USER = 'other_user';
const OTHER_PASSWORD = 'other-Secret-42';
const CLEAR_PASSWORD = 'clear-text-Secret';

const connections = new ConnectionCounts(ConnectionCounts.buffer(1), 0, {
  maxConnections: 1_000,
  maxPerAddress: 1_000,
});
let origin: ThrowawayMariadb;
let edge: RunningMysqlEdge;
let clearOrigin: ScriptedOrigin;
let sha2Origin: Sha2Origin;

function cli(
  args: string[],
  file = 'mariadb',
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      file,
      ['--no-defaults', '--protocol=tcp', '-h127.0.0.1', `-P${edge.port}`, ...args],
      { encoding: 'utf8', timeout: 15_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : ((error as { code?: number }).code ?? 1),
          stdout,
          stderr,
        }),
    ),
  );
}

const login = (
  cache: string,
  user: string,
  extra: mysql.ConnectionOptions = {},
): mysql.ConnectionOptions => ({
  host: '127.0.0.1',
  port: edge.port,
  user: `${cache}-${user}`,
  password: user === 'root' ? undefined : origin.password(user as 'native_user'),
  database: origin.database,
  ...extra,
});

beforeAll(async () => {
  origin = await startThrowawayMariadb({ tls: true });
  await origin.sql('SET GLOBAL max_allowed_packet = 64 * 1024 * 1024');
  await origin.sql(
    `CREATE USER ${OTHER_USER}@'%' IDENTIFIED BY '${OTHER_PASSWORD}'; GRANT ALL ON app.* TO ${OTHER_USER}@'%'`,
  );
  clearOrigin = await startClearPasswordOrigin();
  sha2Origin = await startCachingSha2Origin({
    cert: await readFile(origin.certPath as string),
    key: await readFile(origin.keyPath as string),
  });
  const throwaway = { hostname: '127.0.0.1', port: origin.port, defaultMode: 'off' as const };
  edge = await startMysqlEdge({
    connections,
    tls: {
      cert: await readFile(origin.certPath as string),
      key: await readFile(origin.keyPath as string),
    },
    caches: [
      mariadbCache({ id: PLAIN, ...throwaway }),
      mariadbCache({ id: SECURE, ...throwaway, originTls: 'require' }),
      mariadbCache({ id: NO_TLS_ORIGIN, originTls: 'require' }),
      mariadbCache({ id: PREFER, ...throwaway, originTls: 'prefer' }),
      mariadbCache({ id: PREFER_NO_TLS, originTls: 'prefer' }),
      mariadbCache({ id: SCRIPTED, port: clearOrigin.port }),
      mariadbCache({ id: SHA2, type: 'mysql', port: sha2Origin.port }),
      mariadbCache({ id: SHA2_TLS, type: 'mysql', port: sha2Origin.port, originTls: 'require' }),
      {
        ...mariadbCache({ id: POSTGRES }),
        type: 'postgres',
        port: 5432,
      },
    ],
  });
}, 180_000);

afterAll(async () => {
  await edge?.close();
  clearOrigin?.server.close();
  sha2Origin?.server.close();
  await origin?.stop();
});

describe('routing by the cache id in the username', () => {
  const refusals = [
    ['a user without a cache id', 'native_user', /user "native_user" has no cache id/],
    ['an unknown cache', 'cch_nope-native_user', /there is no cache "cch_nope"/],
    ['a name that is not a cache id', 'nocache-native_user', /"nocache" is not a cache id/],
    [
      'a Postgres cache on the MySQL port',
      `${POSTGRES}-native_user`,
      new RegExp(
        `cache "${POSTGRES}" is a postgres cache: connect to it on the edge's postgres port`,
      ),
    ],
  ] as const;

  it.each(refusals)(
    '%s: mysql2 gets the edge’s 1045 with a message that says why',
    async (_name, user, message) => {
      await expect(
        mysql.createConnection({ host: '127.0.0.1', port: edge.port, user, password: 'x' }),
      ).rejects.toMatchObject({
        errno: 1045,
        sqlState: '28000',
        message: expect.stringMatching(message),
      });
    },
  );

  it.each(refusals)('%s: the command-line client prints it', async (_name, user, message) => {
    const result = await cli([`-u${user}`, '-px', '-e', 'select 1']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^ERROR 1045 \(28000\): /);
    expect(result.stderr).toMatch(message);
  });

  it('the mariadb connector gets the same refusal', async () => {
    await expect(
      mariadb.createConnection({
        host: '127.0.0.1',
        port: edge.port,
        user: 'cch_nope-x',
        password: 'x',
      }),
    ).rejects.toMatchObject({
      errno: 1045,
      text: 'there is no cache "cch_nope": it was deleted or never existed',
    });
  });
});

describe('passwords are checked by the origin', () => {
  it('a wrong password gets the origin’s own 1045, naming the origin user', async () => {
    await expect(
      mysql.createConnection({ ...login(PLAIN, 'native_user'), password: 'wrong' }),
    ).rejects.toMatchObject({
      errno: 1045,
      sqlState: '28000',
      message: expect.stringMatching(
        /^Access denied for user 'native_user'@'127\.0\.0\.1' \(using password: YES\)$/,
      ),
    });
    const result = await cli([`-u${PLAIN}-ed25519_user`, '-pwrong', '-e', 'select 1']);
    expect(result.stderr).toMatch(/ERROR 1045 \(28000\): Access denied for user 'ed25519_user'/);
  });

  it('mysql_native_password: mysql2, the mariadb connector, the CLI and PyMySQL log in', async () => {
    const who = `${origin.users.native}@%`;
    const viaMysql2 = await mysql.createConnection(login(PLAIN, 'native_user'));
    expect((await viaMysql2.query('select current_user() as who'))[0]).toEqual([{ who }]);
    await viaMysql2.end();
    const viaConnector = await mariadb.createConnection(
      login(PLAIN, 'native_user') as ConnectionConfig,
    );
    expect(await viaConnector.query('select current_user() as who')).toEqual([{ who }]);
    await viaConnector.end();
    const viaCli = await cli([
      `-u${PLAIN}-native_user`,
      `-p${origin.password('native_user')}`,
      '--skip-ssl',
      '-BNe',
      'select current_user()',
    ]);
    expect(viaCli).toMatchObject({ code: 0, stdout: `${who}\n` });
    const viaPython = await new Promise<string>((resolve, reject) =>
      execFile(
        pythonWithPymysql(),
        [
          '-c',
          `import pymysql
c = pymysql.connect(host='127.0.0.1', port=${edge.port}, user='${PLAIN}-native_user', password='${origin.password('native_user')}', connect_timeout=3, read_timeout=3)
cur = c.cursor(); cur.execute('select current_user()'); print(cur.fetchone()[0])`,
        ],
        { encoding: 'utf8', timeout: 15_000 },
        (error, stdout, stderr) =>
          error ? reject(new Error(stderr + String(error))) : resolve(stdout),
      ),
    );
    expect(viaPython).toBe(`${who}\n`);
  }, 30_000);

  it('ed25519: the mariadb connector and the CLI log in (mysql2 has no client_ed25519)', async () => {
    const who = `${origin.users.ed25519}@%`;
    const viaConnector = await mariadb.createConnection(
      login(PLAIN, 'ed25519_user') as ConnectionConfig,
    );
    expect(await viaConnector.query('select current_user() as who')).toEqual([{ who }]);
    await viaConnector.end();
    const viaCli = await cli([
      `-u${PLAIN}-ed25519_user`,
      `-p${origin.password('ed25519_user')}`,
      '--skip-ssl',
      '-BNe',
      'select current_user()',
    ]);
    expect(viaCli).toMatchObject({ code: 0, stdout: `${who}\n` });
  });
});

describe('TLS', () => {
  it('at the edge: mysql2 and the mariadb connector ask for TLS and get it', async () => {
    const viaMysql2 = await mysql.createConnection(
      login(PLAIN, 'native_user', { ssl: { rejectUnauthorized: false } }),
    );
    const stream = (viaMysql2 as unknown as { connection: { stream: tls.TLSSocket } }).connection
      .stream;
    expect(stream.encrypted).toBe(true);
    expect(stream.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    expect((await viaMysql2.query('select 1 as one'))[0]).toEqual([{ one: 1 }]);
    await viaMysql2.end();
    const ssl = { rejectUnauthorized: false } as tls.ConnectionOptions;
    const viaConnector = await mariadb.createConnection({
      ...(login(PLAIN, 'ed25519_user') as ConnectionConfig),
      ssl,
    });
    expect(await viaConnector.query('select current_user() as who')).toEqual([
      { who: `${origin.users.ed25519}@%` },
    ]);
    await viaConnector.end();
  });

  it('at the edge: a 20 MiB value goes through TLS both ways', { timeout: 60_000 }, async () => {
    const conn = await mysql.createConnection(
      login(PLAIN, 'native_user', { ssl: { rejectUnauthorized: false } }),
    );
    const table = `tls_big_${process.pid}`;
    await conn.query(`create table ${table} (id int primary key, v longblob)`);
    const big = randomBytes(20 * 1024 * 1024);
    await conn.execute(`insert into ${table} values (1, ?)`, [big]);
    const [rows] = await conn.query(`select v from ${table} where id = 1`);
    expect((rows as { v: Buffer }[])[0]?.v.equals(big)).toBe(true);
    await conn.query(`drop table ${table}`);
    await conn.end();
  });

  it('TLS at the edge and to the origin, with ed25519, through the mariadb connector', async () => {
    const conn = await mariadb.createConnection({
      ...(login(SECURE, 'ed25519_user') as ConnectionConfig),
      ssl: { rejectUnauthorized: false } as tls.ConnectionOptions,
    });
    const rows = await conn.query("show session status like 'Ssl_version'");
    expect((rows as { Value: string }[])[0]?.Value).toMatch(/^TLSv1\.[23]$/);
    await conn.end();
    await expect(
      mariadb.createConnection({
        ...(login(SECURE, 'ed25519_user') as ConnectionConfig),
        password: 'wrong',
      }),
    ).rejects.toMatchObject({ errno: 1045 });
  });

  it('at the edge: TLS sessions, ended or dropped, are all released', async () => {
    await expect.poll(() => connections.total, { timeout: 5_000 }).toBe(0);
    const open = await Promise.all(
      Array.from({ length: 6 }, () =>
        mysql.createConnection(login(PLAIN, 'native_user', { ssl: { rejectUnauthorized: false } })),
      ),
    );
    expect(connections.total).toBe(6);
    for (const [i, conn] of open.entries()) {
      if (i % 2 === 0) await conn.end();
      else conn.destroy();
    }
    await expect.poll(() => connections.total, { timeout: 5_000 }).toBe(0);
  });

  it('at the edge: the CLI reports the cipher it uses', async () => {
    const result = await cli([
      `-u${PLAIN}-native_user`,
      `-p${origin.password('native_user')}`,
      '--ssl',
      '--disable-ssl-verify-server-cert',
      '-e',
      'status',
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/SSL:\s+Cipher in use is \S+/);
  });

  it('to the origin: a cache with originTls require reaches it over TLS', async () => {
    const conn = await mysql.createConnection(login(SECURE, 'native_user'));
    const [rows] = await conn.query("show session status like 'Ssl_version'");
    expect((rows as { Value: string }[])[0]?.Value).toMatch(/^TLSv1\.[23]$/);
    await conn.end();
    const plain = await mysql.createConnection(login(PLAIN, 'native_user'));
    const [clear] = await plain.query("show session status like 'Ssl_version'");
    expect((clear as { Value: string }[])[0]?.Value).toBe('');
    await plain.end();
  });

  it('to the origin: a user that REQUIRE SSL logs in only over an originTls cache', async () => {
    const conn = await mysql.createConnection(login(SECURE, 'tls_user'));
    expect((await conn.query('select current_user() as who'))[0]).toEqual([{ who: 'tls_user@%' }]);
    await conn.end();
    await expect(mysql.createConnection(login(PLAIN, 'tls_user'))).rejects.toMatchObject({
      errno: 1045,
      message: expect.stringContaining("'tls_user'"),
    });
  });

  it('to the origin: prefer uses TLS where the origin offers it, and goes on without', async () => {
    const secure = await mysql.createConnection(login(PREFER, 'native_user'));
    const [rows] = await secure.query("show session status like 'Ssl_version'");
    expect((rows as { Value: string }[])[0]?.Value).toMatch(/^TLSv1\.[23]$/);
    await secure.end();
    const clear = await mysql.createConnection({
      host: '127.0.0.1',
      port: edge.port,
      user: `${PREFER_NO_TLS}-root`,
    });
    const [plain] = await clear.query("show session status like 'Ssl_version'");
    expect((plain as { Value: string }[])[0]?.Value).toBe('');
    await clear.end();
  });

  it('to the origin: an origin without TLS is refused when the cache requires it', async () => {
    await expect(
      mysql.createConnection({ host: '127.0.0.1', port: edge.port, user: `${NO_TLS_ORIGIN}-root` }),
    ).rejects.toMatchObject({
      message: 'the origin does not accept TLS, and this cache requires it (originTls: require)',
    });
  });

  it('mysql_clear_password is refused over a clear-text client link, relayed over TLS', async () => {
    const options = {
      host: '127.0.0.1',
      port: edge.port,
      user: `${SCRIPTED}-app`,
      password: CLEAR_PASSWORD,
      authPlugins: {
        mysql_clear_password: () => () => Buffer.from(`${CLEAR_PASSWORD}\0`),
      },
    };
    await expect(mysql.createConnection(options)).rejects.toMatchObject({
      errno: 1045,
      message: expect.stringMatching(/mysql_clear_password.*connect to the edge with TLS/),
    });
    expect(clearOrigin.passwords).toEqual([]);
    const secure = await mysql.createConnection({ ...options, ssl: { rejectUnauthorized: false } });
    expect(clearOrigin.passwords).toEqual([CLEAR_PASSWORD]);
    await secure.end();
  });
});

describe('COM_CHANGE_USER to a user with mysql_clear_password', () => {
  const clearOptions = (extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions => ({
    host: '127.0.0.1',
    port: edge.port,
    user: `${SCRIPTED}-nativeuser`,
    password: 'anything',
    authPlugins: {
      mysql_clear_password: () => () => Buffer.from(`${CLEAR_PASSWORD}\0`),
    },
    ...extra,
  });

  it('is refused over a clear-text client link before the password is sent', async () => {
    const conn = await mysql.createConnection(clearOptions());
    const before = clearOrigin.passwords.length;
    await expect(
      conn.changeUser({ user: `${SCRIPTED}-app`, password: CLEAR_PASSWORD }),
    ).rejects.toMatchObject({
      errno: 1045,
      message: expect.stringMatching(/mysql_clear_password.*connect to the edge with TLS/),
    });
    expect(clearOrigin.passwords.length).toBe(before);
    conn.destroy();
  });

  it('is relayed over TLS', async () => {
    const conn = await mysql.createConnection(clearOptions({ ssl: { rejectUnauthorized: false } }));
    await conn.changeUser({ user: `${SCRIPTED}-app`, password: CLEAR_PASSWORD });
    expect(clearOrigin.passwords.at(-1)).toBe(CLEAR_PASSWORD);
    await conn.ping();
    await conn.end();
  });
});

describe('caching_sha2_password (a scripted MySQL 8 origin: no such server installs here)', () => {
  const sha2Login = (extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions => ({
    host: '127.0.0.1',
    port: edge.port,
    user: `${SHA2}-app`,
    password: SHA2_PASSWORD,
    ...extra,
  });

  it('fast auth: the scramble answer and AuthMoreData(3) are relayed', async () => {
    sha2Origin.mode = 'fast';
    const conn = await mysql.createConnection(sha2Login());
    await conn.ping();
    await conn.end();
    expect(sha2Origin.logins.at(-1)).toBe('fast');
  });

  it('full auth over a clear-text link: the client fetches the origin’s RSA key', async () => {
    sha2Origin.mode = 'full';
    const conn = await mysql.createConnection(sha2Login({ allowPublicKeyRetrieval: true }));
    await conn.ping();
    await conn.end();
    expect(sha2Origin.logins.at(-1)).toBe('rsa');
  });

  it('full auth with TLS on both links: the password goes in clear through TLS', async () => {
    sha2Origin.mode = 'full';
    const conn = await mysql.createConnection(
      sha2Login({ user: `${SHA2_TLS}-app`, ssl: { rejectUnauthorized: false } }),
    );
    await conn.ping();
    await conn.end();
    expect(sha2Origin.logins.at(-1)).toBe('clear');
  });

  it('full auth with TLS at the edge only: the edge sends the password RSA-encrypted, never in clear', async () => {
    sha2Origin.mode = 'full';
    const conn = await mysql.createConnection(sha2Login({ ssl: { rejectUnauthorized: false } }));
    await conn.ping();
    await conn.end();
    // The client sent it in clear over its TLS link; the origin got it encrypted with its key.
    expect(sha2Origin.logins.at(-1)).toBe('rsa');
    expect(sha2Origin.clearWithoutTls).toBe(0);
    // And a wrong one is still the origin's own refusal.
    sha2Origin.mode = 'full';
    await expect(
      mysql.createConnection(sha2Login({ password: 'wrong', ssl: { rejectUnauthorized: false } })),
    ).rejects.toMatchObject({ errno: 1045, message: "Access denied for user 'app'" });
    expect(sha2Origin.clearWithoutTls).toBe(0);
  });

  it('a wrong password gets the origin’s 1045', async () => {
    sha2Origin.mode = 'fast';
    await expect(mysql.createConnection(sha2Login({ password: 'wrong' }))).rejects.toMatchObject({
      errno: 1045,
      message: "Access denied for user 'app'",
    });
  });
});

describe('COM_CHANGE_USER', () => {
  it('mysql2 changes to another user of the same cache, with its password', async () => {
    const conn = await mysql.createConnection(login(PLAIN, 'native_user'));
    await conn.changeUser({ user: `${PLAIN}-${OTHER_USER}`, password: OTHER_PASSWORD });
    expect((await conn.query('select current_user() as who'))[0]).toEqual([
      { who: `${OTHER_USER}@%` },
    ]);
    expect((await conn.query('select name from items where id = 1'))[0]).toEqual([
      { name: 'anvil' },
    ]);
    await conn.end();
  });

  it('a change to another cache id is refused, and the session stays the same user', async () => {
    const conn = await mysql.createConnection(login(PLAIN, 'native_user'));
    await expect(
      conn.changeUser({ user: `${SECURE}-${OTHER_USER}`, password: OTHER_PASSWORD }),
    ).rejects.toMatchObject({
      errno: 1045,
      message: expect.stringContaining(`COM_CHANGE_USER must keep this connection's cache`),
    });
    conn.destroy();
  });

  it('a wrong password in COM_CHANGE_USER gets the origin’s 1045', async () => {
    const conn = await mysql.createConnection(login(PLAIN, 'native_user'));
    await expect(
      conn.changeUser({ user: `${PLAIN}-${OTHER_USER}`, password: 'wrong' }),
    ).rejects.toMatchObject({
      errno: 1045,
      message: expect.stringContaining(`'${OTHER_USER}'`),
    });
    conn.destroy();
  });
});

interface ScriptedOrigin {
  server: net.Server;
  port: number;
  /** The clear-text passwords the origin received. */
  passwords: string[];
}

// A MariaDB-like origin whose only user authenticates with mysql_clear_password (as PAM or LDAP
// setups do): greets, switches the login to mysql_clear_password, accepts any password.
async function startClearPasswordOrigin(): Promise<ScriptedOrigin> {
  const passwords: string[] = [];
  const server = net.createServer((socket) => {
    const parser = new PacketParser();
    let step: 'login' | 'password' | 'commands' = 'login';
    const send = (sequenceId: number, payload: Buffer) =>
      socket.write(serialize.packet(sequenceId, payload));
    const ok = (sequenceId: number) =>
      send(
        sequenceId,
        serialize.okPacket(
          { statusFlags: codes.SERVER_STATUS_AUTOCOMMIT },
          codes.CLIENT_PROTOCOL_41,
        ),
      );
    // `nativeuser` logs in with mysql_native_password (any answer will do); everyone else, also
    // through COM_CHANGE_USER, with mysql_clear_password.
    const switchFor = (user: string, sequenceId: number) => {
      step = 'password';
      const plugin =
        user === 'nativeuser' ? codes.MYSQL_NATIVE_PASSWORD : codes.MYSQL_CLEAR_PASSWORD;
      send(
        sequenceId,
        serialize.authSwitchRequest(
          plugin,
          Buffer.alloc(plugin === codes.MYSQL_NATIVE_PASSWORD ? 21 : 0, 0x41),
        ),
      );
      clearRound = plugin === codes.MYSQL_CLEAR_PASSWORD;
    };
    let clearRound = false;
    socket.on('error', () => socket.destroy());
    send(0, mariadbHandshake);
    socket.on('data', (chunk: Buffer) =>
      parser.parse(chunk, (packet) => {
        const payload = packet.payload;
        if (step === 'login') {
          const login = decodeClientHandshake(payload);
          switchFor(
            login.kind === 'handshakeResponse' ? login.username : '',
            packet.sequenceId + 1,
          );
        } else if (step === 'password') {
          step = 'commands';
          if (clearRound) passwords.push(payload.toString('utf8').replace(/\0$/, ''));
          ok(packet.sequenceId + 1);
        } else if (payload[0] === codes.COM_CHANGE_USER) {
          switchFor(payload.subarray(1, payload.indexOf(0, 1)).toString(), 1);
        } else if (payload[0] === codes.COM_QUIT) {
          socket.end();
        } else {
          ok(1);
        }
        return undefined;
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as net.AddressInfo).port, passwords };
}

interface Sha2Origin {
  server: net.Server;
  port: number;
  /** 'fast': the scramble answer suffices; 'full': the password itself is asked for. */
  mode: 'fast' | 'full';
  /** How each successful login ended: 'fast', 'rsa' (through the key) or 'clear' (over TLS). */
  logins: ('fast' | 'rsa' | 'clear')[];
  /** Passwords that reached it in clear over a link without TLS (refused, as MySQL does). */
  clearWithoutTls: number;
}

// A MySQL 8-like origin whose user `app` authenticates with caching_sha2_password: switches the
// login to it, then either accepts the scramble answer (fast auth) or asks for the password itself,
// which the client sends in clear (accepted only over TLS) or encrypted with the RSA key it asks for.
async function startCachingSha2Origin(certificate: {
  cert: Buffer;
  key: Buffer;
}): Promise<Sha2Origin> {
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = keys.publicKey.export({ type: 'spki', format: 'pem' });
  const state: Sha2Origin = {
    server: net.createServer(),
    port: 0,
    mode: 'fast',
    logins: [],
    clearWithoutTls: 0,
  };
  state.server.on('connection', (socket) => {
    let parser = new PacketParser();
    let link: net.Socket = socket;
    let startTls = false;
    const nonce = Buffer.from(randomBytes(20).map((byte) => 0x21 + (byte % 94)));
    let step: 'login' | 'token' | 'full' | 'key' | 'commands' = 'login';
    const send = (sequenceId: number, payload: Buffer) =>
      link.write(serialize.packet(sequenceId & 0xff, payload));
    const ok = (sequenceId: number, how: Sha2Origin['logins'][number]) => {
      state.logins.push(how);
      step = 'commands';
      send(
        sequenceId,
        serialize.okPacket(
          { statusFlags: codes.SERVER_STATUS_AUTOCOMMIT },
          codes.CLIENT_PROTOCOL_41,
        ),
      );
    };
    const refuse = (sequenceId: number) => {
      send(
        sequenceId,
        serialize.errPacket({
          code: codes.ER_ACCESS_DENIED_ERROR,
          sqlState: '28000',
          message: "Access denied for user 'app'",
        }),
      );
      link.end();
    };
    socket.on('error', () => socket.destroy());
    // MySQL 8.0.36's greeting with this connection's scramble.
    send(
      0,
      serialize.handshakeV10({ ...decodeHandshakeV10(mysql8Handshake), authPluginData: nonce }),
    );
    const onData = (chunk: Buffer) => {
      parser.parse(chunk, (packet) => {
        const next = packet.sequenceId + 1;
        const payload = packet.payload;
        switch (step) {
          case 'login':
            if (payload.length === 32 && link === socket) {
              // SSLRequest: the TLS handshake follows at once, maybe in this very chunk.
              startTls = true;
              return 'pause';
            }
            step = 'token';
            send(
              next,
              serialize.authSwitchRequest(
                'caching_sha2_password',
                Buffer.concat([nonce, Buffer.from([0])]),
              ),
            );
            break;
          case 'token': {
            const stage1 = sha256(Buffer.from(SHA2_PASSWORD));
            const mask = sha256(Buffer.concat([sha256(stage1), nonce]));
            const expected = Buffer.from(stage1.map((byte, i) => byte ^ (mask[i] as number)));
            if (!payload.equals(expected)) return refuse(next);
            if (state.mode === 'fast') {
              send(next, serialize.authMoreData(Buffer.from([3])));
              ok(next + 1, 'fast');
            } else {
              step = 'full';
              send(next, serialize.authMoreData(Buffer.from([4])));
            }
            break;
          }
          case 'full':
            if (payload.length === 1 && payload[0] === 2) {
              step = 'key';
              send(next, serialize.authMoreData(Buffer.from(publicPem)));
            } else if (payload.toString() === `${SHA2_PASSWORD}\0` && link !== socket) {
              ok(next, 'clear');
            } else {
              if (link === socket) state.clearWithoutTls += 1;
              refuse(next);
            }
            break;
          case 'key': {
            const mixed = privateDecrypt(
              { key: keys.privateKey, oaepHash: 'sha1', padding: constants.RSA_PKCS1_OAEP_PADDING },
              payload,
            );
            const clear = Buffer.from(
              mixed.map((byte, i) => byte ^ (nonce[i % nonce.length] as number)),
            );
            if (clear.toString() === `${SHA2_PASSWORD}\0`) ok(next, 'rsa');
            else refuse(next);
            break;
          }
          case 'commands':
            if (payload[0] === codes.COM_QUIT) link.end();
            else
              send(
                1,
                serialize.okPacket(
                  { statusFlags: codes.SERVER_STATUS_AUTOCOMMIT },
                  codes.CLIENT_PROTOCOL_41,
                ),
              );
            break;
        }
        return undefined;
      });
      if (!startTls) return;
      startTls = false;
      const held = parser.takeHeld();
      socket.removeAllListeners('data');
      const feed = new Duplex({
        read: () => undefined,
        write: (bytes: Buffer, _encoding, done) => socket.write(bytes, done),
      });
      feed.push(held);
      socket.on('data', (bytes: Buffer) => feed.push(bytes));
      link = new tls.TLSSocket(feed as net.Socket, { isServer: true, ...certificate });
      link.on('error', () => socket.destroy());
      parser = new PacketParser();
      link.on('data', onData);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', () => resolve()));
  state.port = (state.server.address() as net.AddressInfo).port;
  return state;
}
