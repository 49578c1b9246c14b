// MySQL and MariaDB: the connect form's fields and a credential test that logs in and asks the version.
import { connect as dialTcp } from 'node:net';
import mysql from 'mysql2';
import { z } from 'zod';
import { withinDeadline } from './deadline.ts';
import {
  capReceived,
  errorCode,
  errorMessage,
  formatTarget,
  networkFailure,
  redact,
  type Target,
} from './failures.ts';
import {
  choiceField,
  hints,
  hostField,
  passwordField,
  portField,
  text,
  userField,
} from './fields.ts';
import type { ConnectionTypeDef, TestContext, TestFailure, TestOutcome } from './types.ts';

const TLS_MODES = ['disable', 'prefer', 'require'] as const;

/** Server error numbers a login can end with (MySQL's server error reference). */
const ER_DBACCESS_DENIED_ERROR = 1044;
const ER_ACCESS_DENIED_ERROR = 1045;
const ER_BAD_DB_ERROR = 1049;
const ER_HOST_NOT_PRIVILEGED = 1130;
const ER_SECURE_TRANSPORT_REQUIRED = 3159;

function mysqlSchema(defaultPort: number) {
  return z.strictObject({
    host: hostField({ order: 1 }),
    port: portField(defaultPort, { order: 2 }),
    database: text()
      .max(64, 'must be at most 64 characters')
      .default('')
      .meta(
        hints({
          title: 'Database',
          description: 'Optional: the database to use by default.',
          placeholder: 'app',
          example: 'app',
          order: 3,
        }),
      ),
    user: userField({ order: 4 }),
    password: passwordField({ order: 5 }),
    tls: choiceField(TLS_MODES, 'prefer', {
      order: 6,
      title: 'TLS',
      description:
        'prefer uses TLS when the server offers it, require insists; neither checks the certificate.',
    }),
  });
}

export type MysqlConfig = z.output<ReturnType<typeof mysqlSchema>>;

interface MysqlFamilyMember {
  id: 'mysql' | 'mariadb';
  title: string;
  description: string;
  defaultPort: number;
}

function mysqlFamily({
  id,
  title,
  description,
  defaultPort,
}: MysqlFamilyMember): ConnectionTypeDef<MysqlConfig> {
  return {
    id,
    title,
    description,
    cacheType: id,
    schema: mysqlSchema(defaultPort),
    secretFields: ['password'],
    origin: ({ host, port }) => ({ host, port }),
    test: testMysql,
  };
}

export const mysqlType = mysqlFamily({
  id: 'mysql',
  title: 'MySQL',
  description: 'MySQL 5.7 or later, or a compatible server.',
  defaultPort: 3306,
});

export const mariadbType = mysqlFamily({
  id: 'mariadb',
  title: 'MariaDB',
  description: 'MariaDB 10.4 or later.',
  defaultPort: 3306,
});

async function testMysql(config: MysqlConfig, ctx: TestContext): Promise<TestOutcome> {
  return withinDeadline(ctx, config, config.password, async (signal) => {
    if (config.tls !== 'prefer') return login(config, ctx, signal, config.tls === 'require');
    // mysql2 has no `prefer`: it is TLS first, then plaintext only when the server's greeting
    // says it has no TLS at all, as the mysql client's ssl-mode=PREFERRED does. A network
    // attacker can force that downgrade, which is why it is a note.
    const encrypted = await login(config, ctx, signal, true);
    if (encrypted.ok || encrypted.code !== 'tls_unavailable') return encrypted;
    const plain = await login(config, ctx, signal, false);
    return plain.ok
      ? { ...plain, note: 'The server does not offer TLS: this connection is not encrypted.' }
      : plain;
  });
}

async function login(
  config: MysqlConfig,
  ctx: TestContext,
  signal: AbortSignal,
  useTls: boolean,
): Promise<TestOutcome> {
  // The socket goes to the guard-checked address; mysql2 gets the host name only for SNI.
  const socket = dialTcp({ host: ctx.address, port: config.port });
  capReceived(socket);
  const close = () => socket.destroy();
  signal.addEventListener('abort', close, { once: true });
  // The core API rather than mysql2/promise: its connection exists before the handshake ends, so
  // a listener can hear every error (an unheard one would crash the process).
  const connection = mysql.createConnection({
    host: config.host,
    port: config.port,
    stream: socket,
    user: config.user,
    password: config.password,
    database: config.database === '' ? undefined : config.database,
    connectTimeout: ctx.timeoutMs,
    ssl: useTls ? { rejectUnauthorized: false } : undefined,
  });
  capTlsUpgrade(connection);
  const failed = new Promise<never>((_resolve, reject) => connection.on('error', reject));
  failed.catch(() => undefined);
  try {
    await Promise.race([
      new Promise<void>((resolve) => connection.once('connect', () => resolve())),
      failed,
    ]);
    const version = await Promise.race([
      new Promise<string | undefined>((resolve, reject) =>
        connection.query<mysql.RowDataPacket[]>('SELECT VERSION() AS version', (error, rows) =>
          error ? reject(error) : resolve(rows[0]?.version as string | undefined),
        ),
      ),
      failed,
    ]);
    // COM_QUIT first, so the server does not log the test as an aborted connection.
    await new Promise<void>((resolve) => connection.end(() => resolve()));
    // The MySQL family always checks the scramble, even for an account without a password (a
    // wrong one is refused with 1045), so a login that used a password verified it.
    return { ok: true, serverVersion: version, passwordVerified: config.password !== '' };
  } catch (error) {
    return describeFailure(error, config);
  } finally {
    signal.removeEventListener('abort', close);
    close();
  }
}

function describeFailure(error: unknown, config: MysqlConfig): TestFailure {
  const target: Target = config;
  switch ((error as { errno?: unknown }).errno) {
    case ER_ACCESS_DENIED_ERROR:
      return {
        ok: false,
        code: 'auth_failed',
        field: 'password',
        message: `The password for user "${config.user}" was not accepted.`,
      };
    case ER_DBACCESS_DENIED_ERROR:
      return {
        ok: false,
        code: 'auth_failed',
        field: 'database',
        message: `User "${config.user}" may not use database "${config.database}".`,
      };
    case ER_BAD_DB_ERROR:
      return {
        ok: false,
        code: 'database_missing',
        field: 'database',
        message: `Database "${config.database}" does not exist on this server.`,
      };
    case ER_HOST_NOT_PRIVILEGED:
      return {
        ok: false,
        code: 'auth_failed',
        field: 'host',
        message: `${formatTarget(target)} does not accept connections from Edgegate's address.`,
      };
    case ER_SECURE_TRANSPORT_REQUIRED:
      return {
        ok: false,
        code: 'tls_required',
        field: 'tls',
        message: `${formatTarget(target)} only accepts TLS connections: set TLS to prefer or require.`,
      };
  }
  switch (errorCode(error)) {
    case 'HANDSHAKE_NO_SSL_SUPPORT':
      return {
        ok: false,
        code: 'tls_unavailable',
        field: 'tls',
        message: `${formatTarget(target)} does not offer TLS: set TLS to prefer or disable.`,
      };
    case 'PROTOCOL_CONNECTION_LOST':
      return {
        ok: false,
        code: 'protocol_error',
        field: 'port',
        message: `${formatTarget(target)} closed the connection: is this a MySQL or MariaDB server?`,
      };
  }
  const network = networkFailure(error, target, 'tls');
  if (network) return network;
  return {
    ok: false,
    code: 'unknown',
    message: `The server refused the connection: ${redact(errorMessage(error), config.password)}`,
  };
}

/**
 * mysql2 upgrades to TLS on a socket of its own (and drops the plain socket's data listeners, the
 * cap's among them), so the cap follows it there: without this a hostile server could stream
 * unbounded data once the handshake is done. `startTLS` is mysql2's internal upgrade step; the
 * catalog's TLS flood test fails if a mysql2 release renames it.
 */
function capTlsUpgrade(connection: mysql.Connection): void {
  const internal = connection as unknown as {
    startTLS?: (onSecure: (error?: Error) => void) => void;
    stream: Parameters<typeof capReceived>[0];
  };
  const startTLS = internal.startTLS?.bind(connection);
  if (startTLS === undefined) return;
  internal.startTLS = (onSecure) => {
    startTLS(onSecure);
    capReceived(internal.stream);
  };
}
