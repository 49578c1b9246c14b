// PostgreSQL: the connect form's fields and a credential test that logs in and asks the version.
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import { isIP } from 'node:net';
import pg from 'pg';
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
  databaseField,
  hostField,
  passwordField,
  portField,
  userField,
} from './fields.ts';
import type { ConnectionTypeDef, TestContext, TestFailure, TestOutcome } from './types.ts';

const SSL_MODES = ['disable', 'prefer', 'require', 'verify-full'] as const;

/** SQLSTATEs a login can end with (PostgreSQL appendix A). */
const INVALID_PASSWORD = '28P01';
const INVALID_AUTHORIZATION = '28000';
const INVALID_CATALOG_NAME = '3D000';

/** pg's events for the server's password requests (AuthenticationCleartextPassword, MD5, SASL). */
const PASSWORD_REQUESTS = [
  'authenticationCleartextPassword',
  'authenticationMD5Password',
  'authenticationSASL',
] as const;

/** pg's words for its connectionTimeoutMillis and for the socket it destroys when that fires. */
const TIMEOUT_MESSAGES = new Set([
  'Connection terminated due to connection timeout',
  'timeout expired',
]);

const postgresqlSchema = z.strictObject({
  host: hostField({ order: 1 }),
  port: portField(5432, { order: 2 }),
  database: databaseField({ order: 3 }),
  user: userField({ order: 4 }),
  password: passwordField({
    order: 5,
    description: 'Leave empty when the server does not ask for one.',
  }),
  sslmode: choiceField(SSL_MODES, 'prefer', {
    order: 6,
    title: 'TLS (sslmode)',
    description:
      'As libpq: prefer uses TLS when offered, require insists without checking the certificate, verify-full checks it against the host name.',
  }),
});

export type PostgresqlConfig = z.output<typeof postgresqlSchema>;

export const postgresqlType: ConnectionTypeDef<PostgresqlConfig> = {
  id: 'postgresql',
  title: 'PostgreSQL',
  description: 'PostgreSQL 12 or later, or a compatible server.',
  cacheType: 'postgres',
  schema: postgresqlSchema,
  secretFields: ['password'],
  origin: ({ host, port }) => ({ host, port }),
  test: testPostgresql,
};

async function testPostgresql(config: PostgresqlConfig, ctx: TestContext): Promise<TestOutcome> {
  return withinDeadline(ctx, config, config.password, async (signal) => {
    if (config.sslmode !== 'prefer') {
      return login(config, ctx, signal, config.sslmode);
    }
    // libpq's `prefer`: TLS without checking the certificate, plaintext only when the server
    // declines TLS or pg_hba.conf refuses it (`hostnossl`). A network attacker can force that
    // downgrade, which is why the outcome notes it.
    const encrypted = await login(config, ctx, signal, 'require');
    if (encrypted.ok || encrypted.code !== 'tls_unavailable') return encrypted;
    const plain = await login(config, ctx, signal, 'disable');
    return plain.ok
      ? { ...plain, note: 'The server declined TLS: this connection is not encrypted.' }
      : plain;
  });
}

async function login(
  config: PostgresqlConfig,
  ctx: TestContext,
  signal: AbortSignal,
  sslmode: Exclude<PostgresqlConfig['sslmode'], 'prefer'>,
): Promise<TestOutcome> {
  const client = new pg.Client({
    host: ctx.address,
    port: config.port,
    user: config.user,
    database: config.database,
    // A function keeps an empty password empty: pg would fill a falsy one from PGPASSWORD or
    // ~/.pgpass, which are this server's own secrets, and send them to the partner's host.
    password: () => config.password,
    ssl: tlsOptions(config.host, sslmode),
    // Never direct TLS from PGSSLNEGOTIATION: the test must behave the same on every deployment.
    sslnegotiation: 'postgres',
    connectionTimeoutMillis: ctx.timeoutMs,
    application_name: 'edgegate-connect-test',
  });
  // Errors after connecting arrive as events; unheard, they would crash the process.
  client.on('error', () => undefined);
  capReceived(client.connection.stream);
  // After the TLS upgrade pg reads a TLS socket the plain one no longer sees data for: cap it too.
  client.connection.once('sslconnect', () => capReceived(client.connection.stream));
  // A server that trusts this user answers the startup with AuthenticationOk at once: any
  // password would have done, so the one typed was never checked.
  let askedForPassword = false;
  for (const request of PASSWORD_REQUESTS)
    client.connection.once(request, () => (askedForPassword = true));
  const close = () => client.connection.stream.destroy();
  signal.addEventListener('abort', close, { once: true });
  try {
    await client.connect();
    const result = await client.query<{ server_version: string }>('SHOW server_version');
    await client.end();
    return {
      ok: true,
      serverVersion: result.rows[0]?.server_version,
      passwordVerified: askedForPassword && config.password !== '',
    };
  } catch (error) {
    return describeFailure(error, config);
  } finally {
    signal.removeEventListener('abort', close);
    close();
  }
}

function tlsOptions(
  host: string,
  sslmode: Exclude<PostgresqlConfig['sslmode'], 'prefer'>,
): false | ConnectionOptions {
  if (sslmode === 'disable') return false;
  // SNI carries the name the user typed; the socket itself goes to the guard-checked address.
  const servername = isIP(host) === 0 ? { servername: host } : {};
  if (sslmode === 'require') return { ...servername, rejectUnauthorized: false };
  return {
    ...servername,
    rejectUnauthorized: true,
    checkServerIdentity: (_address, certificate) => checkServerIdentity(host, certificate),
  };
}

function describeFailure(error: unknown, config: PostgresqlConfig): TestFailure {
  const target: Target = config;
  const message = errorMessage(error);
  switch (errorCode(error)) {
    case INVALID_PASSWORD:
      return authFailed('password', `The password for user "${config.user}" was not accepted.`);
    case INVALID_AUTHORIZATION:
      return describeAuthorizationFailure(message, config);
    case INVALID_CATALOG_NAME:
      return {
        ok: false,
        code: 'database_missing',
        field: 'database',
        message: `Database "${config.database}" does not exist on this server.`,
      };
  }
  if (message.includes('client password must be a non-empty string')) {
    return authFailed('password', `The server asks user "${config.user}" for a password.`);
  }
  if (message === 'The server does not support SSL connections') {
    return {
      ok: false,
      code: 'tls_unavailable',
      field: 'sslmode',
      message: `${formatTarget(target)} does not offer TLS: set sslmode to prefer or disable.`,
    };
  }
  if (message === 'There was an error establishing an SSL connection') {
    return {
      ok: false,
      code: 'tls_failed',
      field: 'sslmode',
      message: `${formatTarget(target)} answered the TLS request with an error.`,
    };
  }
  if (TIMEOUT_MESSAGES.has(message)) {
    return {
      ok: false,
      code: 'timeout',
      field: 'host',
      message: `${formatTarget(target)} did not finish logging in in time.`,
    };
  }
  if (message.startsWith('Connection terminated')) {
    return {
      ok: false,
      code: 'protocol_error',
      field: 'port',
      message: `${formatTarget(target)} closed the connection: is this a PostgreSQL server?`,
    };
  }
  const network = networkFailure(error, target, 'sslmode');
  if (network) return network;
  const sqlstate = errorCode(error);
  return {
    ok: false,
    code: 'unknown',
    message: `The server refused the connection${sqlstate ? ` (SQLSTATE ${sqlstate})` : ''}: ${redact(message, config.password)}`,
  };
}

// 28000 covers both "who you are" and "where you come from" (pg_hba.conf); the text tells them apart.
function describeAuthorizationFailure(message: string, config: PostgresqlConfig): TestFailure {
  if (message.includes('SSL encryption')) {
    return {
      ok: false,
      code: 'tls_unavailable',
      field: 'sslmode',
      message: `The server accepts user "${config.user}" only without TLS: set sslmode to prefer or disable.`,
    };
  }
  if (message.includes('no encryption')) {
    return {
      ok: false,
      code: 'tls_required',
      field: 'sslmode',
      message: `The server accepts user "${config.user}" only over TLS: set sslmode to require or verify-full.`,
    };
  }
  if (message.includes('does not exist')) {
    return authFailed('user', `There is no user "${config.user}" on this server.`);
  }
  if (message.includes('pg_hba.conf')) {
    return authFailed(
      'user',
      `The server's pg_hba.conf does not let user "${config.user}" reach database "${config.database}" from Edgegate's address.`,
    );
  }
  return authFailed('password', `The password for user "${config.user}" was not accepted.`);
}

function authFailed(field: 'user' | 'password', message: string): TestFailure {
  return { ok: false, code: 'auth_failed', field, message };
}
