// The connect catalog: each type's form as JSON Schema, human validation errors, and credential
// tests that really log in to the machine's PostgreSQL, MariaDB and Redis.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONNECTION_TYPES,
  describeConnectionType,
  findConnectionType,
  validateConnectionConfig,
  type ConnectionTypeDef,
  type TestOutcome,
} from '../src/connect/catalog/index.ts';
import { mariadbType, mysqlType } from '../src/connect/catalog/mysql.ts';
import { mssqlType } from '../src/connect/catalog/mssql.ts';
import { postgresqlType } from '../src/connect/catalog/postgresql.ts';
import { redisType } from '../src/connect/catalog/redis.ts';
import {
  ENCRYPT_OFF,
  ENCRYPT_REQ,
  PRELOGIN,
  parsePreloginResponse,
} from '../src/connect/catalog/tds-prelogin.ts';
import {
  startThrowawayCluster,
  type ThrowawayCluster,
} from '../../edge/test/helpers/throwaway-cluster.ts';

const LOOPBACK = '127.0.0.1';
const ctx = { timeoutMs: 5_000, address: LOOPBACK };

/** Validates like the hosted page does, so every test starts from a form a user could submit. */
function configOf<C>(def: ConnectionTypeDef<C>, input: Record<string, unknown>): C {
  const result = validateConnectionConfig(def, input);
  if (!result.ok) throw new Error(`invalid test config: ${JSON.stringify(result.errors)}`);
  return result.config;
}

function failureOf(outcome: TestOutcome) {
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome)}`);
  return outcome;
}

/** A port nothing listens on: free when asked, and nobody here binds it again. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: LOOPBACK, port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A TCP server that runs `onConnection` for each client and tracks which sockets are still open.
 * By default it reads and never answers; reading lets it see the client hang up.
 */
async function tcpServer(onConnection: (socket: net.Socket) => void = (socket) => socket.resume()) {
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => open.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: LOOPBACK, port: 0 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function eventually(check: () => boolean, ms = 2_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return check();
}

describe('the catalog', () => {
  it('offers every database type, each fronted by the cache of the same database', () => {
    expect(CONNECTION_TYPES.map((def) => [def.id, def.cacheType])).toEqual([
      ['postgresql', 'postgres'],
      ['mysql', 'mysql'],
      ['mariadb', 'mariadb'],
      ['mssql', 'mssql'],
      ['redis', null],
    ]);
    expect(findConnectionType('mariadb')).toBe(mariadbType);
    expect(findConnectionType('oracle')).toBeUndefined();
  });

  it('describes a form as JSON Schema with the UI hints under x-edgegate', () => {
    const entry = describeConnectionType(postgresqlType);
    const schema = entry.schema as {
      properties: Record<string, Record<string, unknown>>;
      required: string[];
      additionalProperties: boolean;
    };
    expect(entry).toMatchObject({ id: 'postgresql', title: 'PostgreSQL', cacheType: 'postgres' });
    expect(schema.additionalProperties).toBe(false);
    // Fields with a default may be left out of the form.
    expect(schema.required.sort()).toEqual(['database', 'host', 'user']);
    expect(schema.properties.host).toMatchObject({
      type: 'string',
      title: 'Host',
      examples: ['db.example.com'],
      pattern: expect.any(String),
      'x-edgegate': { order: 1, placeholder: 'db.example.com', secret: false, widget: 'text' },
    });
    expect(schema.properties.port).toMatchObject({
      default: 5432,
      'x-edgegate': { order: 2, widget: 'number' },
    });
    expect(schema.properties.sslmode).toMatchObject({
      enum: ['disable', 'prefer', 'require', 'verify-full'],
      default: 'prefer',
      'x-edgegate': { widget: 'select' },
    });
    expect(schema.properties.password).toMatchObject({
      'x-edgegate': { secret: true, widget: 'password' },
    });
    // The hints live only under x-edgegate, never as unknown top-level keywords.
    expect(schema.properties.host).not.toHaveProperty('order');
    expect(schema.properties.password).not.toHaveProperty('secret');
  });

  it('marks exactly the secret fields of every type as secret', () => {
    for (const def of CONNECTION_TYPES) {
      const { schema, secretFields } = describeConnectionType(def);
      const properties = schema.properties ?? {};
      const marked = Object.keys(properties).filter((n) => properties[n]?.['x-edgegate']?.secret);
      expect(marked, def.id).toEqual([...def.secretFields]);
      expect(secretFields).toEqual(['password']);
      const orders = Object.values(properties).map((p) => p['x-edgegate']?.order);
      expect(new Set(orders).size, `${def.id} field orders are distinct`).toBe(orders.length);
    }
  });

  it('explains each invalid field in words a user understands', () => {
    const result = validateConnectionConfig(postgresqlType, {
      port: 0,
      database: 'app',
      user: 'alice',
      sslmode: 'sometimes',
      colour: 'blue',
    });
    expect(result).toEqual({
      ok: false,
      errors: expect.arrayContaining([
        { path: 'host', message: 'is required' },
        { path: 'port', message: 'must be between 1 and 65535' },
        { path: 'sslmode', message: 'must be one of disable, prefer, require, verify-full' },
        { path: 'colour', message: 'is not a field of this connection type' },
      ]),
    });
    expect(validateConnectionConfig(redisType, { host: 'cache', database: 16 })).toEqual({
      ok: false,
      errors: [{ path: 'database', message: 'must be between 0 and 15' }],
    });
    expect(validateConnectionConfig(mysqlType, { host: 'db/../x', user: 'u' })).toEqual({
      ok: false,
      errors: [{ path: 'host', message: 'must be a host name or an IP address' }],
    });
    expect(validateConnectionConfig(mysqlType, 'mysql://root@db')).toEqual({
      ok: false,
      errors: [{ path: '(config)', message: 'must be an object of form fields' }],
    });
  });

  it('fills in the defaults of fields left out', () => {
    expect(configOf(mariadbType, { host: ' db.internal ', user: 'app' })).toEqual({
      host: 'db.internal',
      port: 3306,
      database: '',
      user: 'app',
      password: '',
      tls: 'prefer',
    });
    expect(
      mssqlType.origin(configOf(mssqlType, { host: 'sql', database: 'd', user: 'u' })),
    ).toEqual({ host: 'sql', port: 1433 });
  });
});

describe('PostgreSQL', () => {
  const local = (input: Record<string, unknown> = {}) =>
    configOf(postgresqlType, {
      host: LOOPBACK,
      database: 'test',
      user: 'postgres',
      ...input,
    });

  it('logs in and reports the server version', async () => {
    const outcome = await postgresqlType.test(local({ sslmode: 'disable' }), ctx);
    expect(outcome).toEqual({
      ok: true,
      serverVersion: expect.stringMatching(/^\d+\.\d+/),
      passwordVerified: false,
    });
  });

  it('says the password was not checked when the server trusts the user (any password passes)', async () => {
    // This machine's Postgres trusts loopback: it answers the startup with AuthenticationOk.
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    const outcome = await postgresqlType.test(local({ sslmode: 'disable', password: wrong }), ctx);
    expect(outcome).toMatchObject({ ok: true, passwordVerified: false });
  });

  it('falls back to plaintext under prefer when the server has no TLS, and says so', async () => {
    const outcome = await postgresqlType.test(local(), ctx);
    expect(outcome).toMatchObject({ ok: true, note: expect.stringContaining('not encrypted') });
  });

  it('names a database that does not exist', async () => {
    const failure = failureOf(await postgresqlType.test(local({ database: 'nope' }), ctx));
    expect(failure).toEqual({
      ok: false,
      code: 'database_missing',
      field: 'database',
      message: 'Database "nope" does not exist on this server.',
    });
  });

  it('says the server has no TLS when sslmode requires it', async () => {
    const failure = failureOf(await postgresqlType.test(local({ sslmode: 'require' }), ctx));
    expect(failure).toMatchObject({ code: 'tls_unavailable', field: 'sslmode' });
  });

  it('says nothing listens on a closed port', async () => {
    const port = await closedPort();
    const failure = failureOf(await postgresqlType.test(local({ port }), ctx));
    expect(failure).toEqual({
      ok: false,
      code: 'connection_refused',
      field: 'port',
      message: `Nothing is listening on 127.0.0.1:${port}.`,
    });
  });

  it('asks for TLS when pg_hba.conf only accepts encrypted connections', async () => {
    // The server's own words for a `hostssl`-only rule, as an ErrorResponse to the startup message.
    const fields = [
      'SFATAL',
      'C28000',
      'Mno pg_hba.conf entry for host "127.0.0.1", user "alice", database "app", no encryption',
    ];
    const body = Buffer.from(`${fields.join('\0')}\0\0`);
    const length = Buffer.alloc(4);
    length.writeInt32BE(body.length + 4);
    const server = await tcpServer((socket) =>
      socket.once('data', () => socket.end(Buffer.concat([Buffer.from('E'), length, body]))),
    );
    try {
      const config = local({
        port: server.port,
        user: 'alice',
        database: 'app',
        sslmode: 'disable',
      });
      const failure = failureOf(await postgresqlType.test(config, ctx));
      expect(failure).toMatchObject({ code: 'tls_required', field: 'sslmode' });
      expect(failure.message).toContain('require or verify-full');
    } finally {
      await server.close();
    }
  });

  describe('with a server that checks passwords', () => {
    let cluster: ThrowawayCluster;
    const cred = (input: Record<string, unknown>) =>
      configOf(postgresqlType, {
        host: LOOPBACK,
        port: cluster.port,
        database: cluster.database,
        user: cluster.users.scram,
        ...input,
      });

    beforeAll(async () => {
      cluster = await startThrowawayCluster({ tls: true });
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    it('accepts the right password over TLS', async () => {
      const password = cluster.password(cluster.users.scram);
      const outcome = await postgresqlType.test(cred({ password, sslmode: 'require' }), ctx);
      expect(outcome).toEqual({
        ok: true,
        serverVersion: expect.any(String),
        passwordVerified: true,
      });
    });

    it('records which logins depended on the password: md5 and cleartext did, trust did not', async () => {
      for (const user of [cluster.users.md5, cluster.users.cleartext]) {
        const password = cluster.password(user);
        const outcome = await postgresqlType.test(cred({ user, password }), ctx);
        expect(outcome, user).toMatchObject({ ok: true, passwordVerified: true });
      }
      const trusted = await postgresqlType.test(
        cred({ user: cluster.users.trust, password: 'anything at all' }),
        ctx,
      );
      expect(trusted).toMatchObject({ ok: true, passwordVerified: false });
    });

    it('names the user whose password was wrong, without repeating it', async () => {
      const password = `wrong-${randomBytes(6).toString('hex')}`;
      const failure = failureOf(await postgresqlType.test(cred({ password }), ctx));
      expect(failure).toEqual({
        ok: false,
        code: 'auth_failed',
        field: 'password',
        message: `The password for user "${cluster.users.scram}" was not accepted.`,
      });
    });

    it("never sends this server's own PGPASSWORD when the password is left empty", async () => {
      const saved = process.env.PGPASSWORD;
      process.env.PGPASSWORD = cluster.password(cluster.users.scram);
      try {
        const failure = failureOf(await postgresqlType.test(cred({ password: '' }), ctx));
        expect(failure).toMatchObject({ code: 'auth_failed', field: 'password' });
      } finally {
        if (saved === undefined) delete process.env.PGPASSWORD;
        else process.env.PGPASSWORD = saved;
      }
    });

    it('rejects a certificate no authority signed under verify-full', async () => {
      const password = cluster.password(cluster.users.scram);
      const config = cred({ password, sslmode: 'verify-full' });
      const failure = failureOf(await postgresqlType.test(config, ctx));
      expect(failure).toMatchObject({ code: 'tls_failed', field: 'sslmode' });
      expect(failure.message).toContain('self-signed certificate');
    });
  });
});

describe('MariaDB', () => {
  const TEST_USER = 'edgegate_connect_test';
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  let admin: mysql.Connection;
  const cred = (input: Record<string, unknown>) =>
    configOf(mariadbType, { host: LOOPBACK, user: TEST_USER, password, ...input });

  beforeAll(async () => {
    admin = await mysql.createConnection({ host: LOOPBACK, port: 3306, user: 'root' });
    await admin.query(`DROP USER IF EXISTS '${TEST_USER}'@'%'`);
    await admin.query(`CREATE USER '${TEST_USER}'@'%' IDENTIFIED BY ?`, [password]);
    await admin.query(`GRANT SELECT ON test.* TO '${TEST_USER}'@'%'`);
  });
  afterAll(async () => {
    await admin?.query(`DROP USER IF EXISTS '${TEST_USER}'@'%'`);
    await admin?.end();
  });

  it('logs in with the right password and says TLS was not available', async () => {
    const outcome = await mariadbType.test(cred({ database: 'test' }), ctx);
    expect(outcome).toEqual({
      ok: true,
      serverVersion: expect.stringContaining('MariaDB'),
      note: expect.stringContaining('not encrypted'),
      passwordVerified: true,
    });
  });

  it('logs in without TLS when told to, through the MySQL entry too', async () => {
    const outcome = await mysqlType.test(
      configOf(mysqlType, { host: LOOPBACK, user: TEST_USER, password, tls: 'disable' }),
      ctx,
    );
    expect(outcome).toEqual({
      ok: true,
      serverVersion: expect.stringContaining('MariaDB'),
      passwordVerified: true,
    });
  });

  it('names the user whose password was wrong, without repeating it', async () => {
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    const failure = failureOf(await mariadbType.test(cred({ password: wrong }), ctx));
    expect(failure).toEqual({
      ok: false,
      code: 'auth_failed',
      field: 'password',
      message: `The password for user "${TEST_USER}" was not accepted.`,
    });
  });

  it('names a database that does not exist', async () => {
    const config = configOf(mariadbType, { host: LOOPBACK, user: 'root', database: 'nope' });
    const failure = failureOf(await mariadbType.test(config, ctx));
    expect(failure).toEqual({
      ok: false,
      code: 'database_missing',
      field: 'database',
      message: 'Database "nope" does not exist on this server.',
    });
  });

  it('checks a password even for an account that has none, so a login with one verified it', async () => {
    // Why the MySQL family's passwordVerified is true whenever a password was given: this
    // machine's root has no password, and MariaDB still refuses a wrong one.
    const config = configOf(mariadbType, { host: LOOPBACK, user: 'root', password: 'wrong' });
    const failure = failureOf(await mariadbType.test(config, ctx));
    expect(failure).toMatchObject({ code: 'auth_failed', field: 'password' });
  });

  it('says the server has no TLS when TLS is required', async () => {
    const failure = failureOf(await mariadbType.test(cred({ tls: 'require' }), ctx));
    expect(failure).toMatchObject({ code: 'tls_unavailable', field: 'tls' });
  });

  it('says nothing listens on a closed port', async () => {
    const port = await closedPort();
    const failure = failureOf(await mariadbType.test(cred({ port }), ctx));
    expect(failure).toEqual({
      ok: false,
      code: 'connection_refused',
      field: 'port',
      message: `Nothing is listening on 127.0.0.1:${port}.`,
    });
  });
});

describe('Redis', () => {
  const TEST_USER = 'edgegate_connect_test';
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  let admin: Redis;
  const local = (input: Record<string, unknown> = {}) =>
    configOf(redisType, { host: LOOPBACK, ...input });

  beforeAll(async () => {
    admin = new Redis({ host: LOOPBACK, port: 6379, lazyConnect: true });
    await admin.connect();
    await admin.acl('DELUSER', TEST_USER);
    await admin.acl('SETUSER', TEST_USER, 'on', `>${password}`, '~*', '+@all');
  });
  afterAll(async () => {
    await admin?.acl('DELUSER', TEST_USER);
    await admin?.quit();
  });

  it('pings and reports the server version', async () => {
    const outcome = await redisType.test(local({ database: 3 }), ctx);
    expect(outcome).toEqual({
      ok: true,
      serverVersion: expect.stringMatching(/^\d+\.\d+\.\d+$/),
      passwordVerified: false,
    });
  });

  it('logs in as an ACL user with the right password', async () => {
    const outcome = await redisType.test(local({ username: TEST_USER, password }), ctx);
    expect(outcome).toMatchObject({ ok: true, passwordVerified: true });
  });

  it('names the user whose password was wrong, without repeating it', async () => {
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    const config = local({ username: TEST_USER, password: wrong });
    const failure = failureOf(await redisType.test(config, ctx));
    expect(failure).toEqual({
      ok: false,
      code: 'auth_failed',
      field: 'password',
      message: `The password for user "${TEST_USER}" was not accepted.`,
    });
  });

  it('accepts a password the server does not need, and says it is not needed', async () => {
    const outcome = await redisType.test(local({ password: 'unneeded' }), ctx);
    expect(outcome).toMatchObject({
      ok: true,
      note: expect.stringContaining('not needed'),
      passwordVerified: false,
    });
  });

  it('names a database number the server does not have', async () => {
    // The form allows 0-15, but a server configured with fewer databases refuses some of those.
    const failure = failureOf(await redisType.test({ ...local(), database: 16 }, ctx));
    expect(failure).toMatchObject({ code: 'database_missing', field: 'database' });
  });

  it('points at the TLS switch when a plaintext server never answers the TLS handshake', async () => {
    // Redis reads a ClientHello as the start of an inline command and waits for its newline.
    const config = local({ tls: true });
    const failure = failureOf(await redisType.test(config, { ...ctx, timeoutMs: 500 }));
    expect(failure).toMatchObject({ code: 'timeout', field: 'tls' });
    expect(failure.message).toContain('TLS');
  });

  it('says nothing listens on a closed port', async () => {
    const port = await closedPort();
    const failure = failureOf(await redisType.test(local({ port }), ctx));
    expect(failure).toMatchObject({ code: 'connection_refused', field: 'port' });
  });
});

describe('SQL Server', () => {
  const probeOf = (port: number, input: Record<string, unknown> = {}) =>
    configOf(mssqlType, {
      host: LOOPBACK,
      port,
      database: 'app',
      user: 'sa',
      password: 'not-sent',
      ...input,
    });

  /** A PRELOGIN response as SQL Server 2022 (16.0.1000) sends it: VERSION, ENCRYPTION, terminator. */
  function preloginResponse(encryption: number): Buffer {
    const payload = Buffer.concat([
      Buffer.from([0x00, 0x00, 0x0b, 0x00, 0x06]), // VERSION at 11, 6 bytes
      Buffer.from([0x01, 0x00, 0x11, 0x00, 0x01]), // ENCRYPTION at 17, 1 byte
      Buffer.from([0xff]), // end of the option table
      Buffer.from([0x10, 0x00, 0x03, 0xe8, 0x00, 0x00]), // 16.0.1000, subbuild 0
      Buffer.from([encryption]),
    ]);
    const header = Buffer.from([0x04, 0x01, 0x00, 8 + payload.length, 0x00, 0x00, 0x01, 0x00]);
    return Buffer.concat([header, payload]);
  }

  async function fakeSqlServer(encryption: number) {
    const requests: Buffer[] = [];
    const server = await tcpServer((socket) =>
      socket.once('data', (request: Buffer) => {
        requests.push(request);
        socket.write(preloginResponse(encryption));
      }),
    );
    return { ...server, requests };
  }

  it('reads the version from the PRELOGIN answer and says it did not log in', async () => {
    const server = await fakeSqlServer(ENCRYPT_OFF);
    try {
      const outcome = await mssqlType.test(probeOf(server.port, { encrypt: 'prefer' }), ctx);
      expect(outcome).toEqual({
        ok: true,
        serverVersion: '16.0.1000',
        note: expect.stringContaining('does not log in'),
        passwordVerified: false,
      });
      expect(server.requests[0]?.[0]).toBe(PRELOGIN);
      expect(server.requests[0]?.readUInt16BE(2)).toBe(server.requests[0]?.length);
      expect(server.requests[0]?.toString('latin1')).not.toContain('not-sent');
    } finally {
      await server.close();
    }
  });

  it('says encryption is required when the form disables it', async () => {
    const server = await fakeSqlServer(ENCRYPT_REQ);
    try {
      const failure = failureOf(
        await mssqlType.test(probeOf(server.port, { encrypt: 'disable' }), ctx),
      );
      expect(failure).toMatchObject({ code: 'tls_required', field: 'encrypt' });
    } finally {
      await server.close();
    }
  });

  it('waits for a whole PRELOGIN packet and refuses one that is not', () => {
    const response = preloginResponse(ENCRYPT_OFF);
    expect(parsePreloginResponse(response.subarray(0, 12))).toEqual({ kind: 'incomplete' });
    expect(parsePreloginResponse(response)).toEqual({
      kind: 'prelogin',
      version: '16.0.1000',
      encryption: ENCRYPT_OFF,
    });
    // The option table points past the packet's end.
    const truncated = Buffer.from(response);
    truncated.writeUInt16BE(200, 8 + 1);
    expect(parsePreloginResponse(truncated)).toMatchObject({ kind: 'not_tds' });
    expect(parsePreloginResponse(Buffer.from('HTTP/1.1 400'))).toMatchObject({ kind: 'not_tds' });
  });

  it('says nothing listens on a closed port', async () => {
    const port = await closedPort();
    const failure = failureOf(await mssqlType.test(probeOf(port), ctx));
    expect(failure).toMatchObject({ code: 'connection_refused', field: 'port' });
  });

  it('says a PostgreSQL server does not speak TDS', async () => {
    const failure = failureOf(await mssqlType.test(probeOf(5432), ctx));
    expect(failure).toMatchObject({ code: 'protocol_error', field: 'port' });
    expect(failure.message).toContain('does not speak TDS');
  });
});

describe('deadlines', () => {
  const inputs: Record<string, Record<string, unknown>> = {
    postgresql: { database: 'app', user: 'alice' },
    mysql: { user: 'alice' },
    mariadb: { user: 'alice' },
    mssql: { database: 'app', user: 'alice' },
    redis: {},
  };

  it.each(CONNECTION_TYPES.map((def) => [def.id, def] as const))(
    '%s gives up at the deadline on a server that never answers, and hangs up',
    async (_id, def) => {
      const server = await tcpServer();
      try {
        const config = configOf(def, { host: LOOPBACK, port: server.port, ...inputs[def.id] });
        const started = Date.now();
        const failure = failureOf(await def.test(config, { timeoutMs: 400, address: LOOPBACK }));
        const elapsed = Date.now() - started;
        expect(failure).toMatchObject({ code: 'timeout', field: 'host' });
        expect(elapsed).toBeGreaterThanOrEqual(350);
        expect(elapsed).toBeLessThan(1_500);
        expect(await eventually(() => server.open.size === 0), 'every socket was closed').toBe(
          true,
        );
      } finally {
        await server.close();
      }
    },
  );

  // A hostile server announces a huge message and streams it: the driver would buffer all of it.
  const floods: [string, Buffer][] = [
    ['postgresql', Buffer.from([0x52, 0x7f, 0xff, 0xff, 0xff])],
    ['mysql', Buffer.from([0xff, 0xff, 0xff, 0x00])],
    ['redis', Buffer.from('$900000000\r\n')],
  ];
  it.each(floods)(
    '%s stops reading a server that floods it, long before the deadline',
    async (id, header) => {
      const def = CONNECTION_TYPES.find((d) => d.id === id)!;
      const server = await tcpServer((socket) => {
        socket.resume();
        flood(socket, header);
      });
      try {
        const config = configOf(def, {
          host: LOOPBACK,
          port: server.port,
          ...inputs[def.id],
          ...(id === 'postgresql' ? { sslmode: 'disable' } : {}),
        });
        const started = Date.now();
        const failure = failureOf(await def.test(config, { timeoutMs: 5_000, address: LOOPBACK }));
        expect(failure).toMatchObject({ code: 'protocol_error' });
        expect(failure.message).toContain('1024 KiB');
        expect(Date.now() - started).toBeLessThan(4_000);
        expect(await eventually(() => server.open.size === 0)).toBe(true);
      } finally {
        await server.close();
      }
    },
  );

  // The same flood after a TLS handshake: the drivers then read a TLS socket of their own, and the
  // cap must follow them there.
  const tlsFloods: [
    string,
    (socket: net.Socket, secure: (raw: net.Socket, early?: Buffer) => tls.TLSSocket) => void,
  ][] = [
    [
      'postgresql',
      (raw, secure) =>
        raw.once('data', () => {
          raw.write('S'); // yes to the SSLRequest
          const socket = secure(raw);
          socket.once('data', () => flood(socket, Buffer.from([0x52, 0x7f, 0xff, 0xff, 0xff])));
        }),
    ],
    [
      'mysql',
      (raw, secure) => {
        raw.write(mysqlGreetingOfferingTls());
        raw.once('data', (data) => {
          // The 36-byte SSLRequest, and the client's TLS hello right behind it.
          const socket = secure(raw, data.subarray(36));
          socket.once('data', () => flood(socket, Buffer.from([0xff, 0xff, 0xff, 0x02])));
        });
      },
    ],
  ];
  it.each(tlsFloods)(
    '%s stops reading a server that floods it after the TLS handshake',
    async (id, serve) => {
      const def = CONNECTION_TYPES.find((d) => d.id === id)!;
      const { key, cert } = selfSignedCertificate();
      const server = await tcpServer((raw) => {
        raw.on('error', () => undefined);
        serve(raw, (plain, early) => {
          // TLS over a stream fed by hand, so bytes already read off the socket are not lost.
          const carrier = new Duplex({
            read() {},
            write(chunk, _encoding, done) {
              plain.write(chunk, done);
            },
          });
          if (early?.length) carrier.push(early);
          plain.on('data', (chunk) => carrier.push(chunk));
          plain.on('close', () => carrier.destroy());
          const socket = new tls.TLSSocket(carrier, { isServer: true, key, cert });
          socket.on('error', () => undefined);
          return socket;
        });
      });
      try {
        const config = configOf(def, {
          host: LOOPBACK,
          port: server.port,
          ...inputs[def.id],
          ...(id === 'postgresql' ? { sslmode: 'require' } : { tls: 'require' }),
        });
        const started = Date.now();
        const failure = failureOf(await def.test(config, { timeoutMs: 5_000, address: LOOPBACK }));
        expect(failure).toMatchObject({ code: 'protocol_error' });
        expect(failure.message).toContain('1024 KiB');
        expect(Date.now() - started).toBeLessThan(4_000);
      } finally {
        await server.close();
      }
    },
  );

  it('stops when the caller cancels', async () => {
    const server = await tcpServer();
    try {
      const config = configOf(redisType, { host: LOOPBACK, port: server.port });
      const signal = AbortSignal.timeout(100);
      const failure = failureOf(await redisType.test(config, { ...ctx, signal }));
      expect(failure.message).toContain('cancelled');
      expect(await eventually(() => server.open.size === 0)).toBe(true);
    } finally {
      await server.close();
    }
  });
});

function flood(socket: net.Socket | tls.TLSSocket, header: Buffer): void {
  socket.write(header);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const pump = () => {
    while (!socket.destroyed && socket.write(chunk));
    if (!socket.destroyed) socket.once('drain', pump);
  };
  pump();
}

/** A MySQL protocol-10 greeting that offers TLS (CLIENT_SSL) and native password auth. */
function mysqlGreetingOfferingTls(): Buffer {
  const capabilities = 0x0000_0200 | 0x0000_0800 | 0x0000_8000 | 0x0008_0000; // 4.1, SSL, secure, plugin auth
  const lower = Buffer.alloc(2);
  lower.writeUInt16LE(capabilities & 0xffff);
  const upper = Buffer.alloc(2);
  upper.writeUInt16LE(capabilities >>> 16);
  const payload = Buffer.concat([
    Buffer.from([10]),
    Buffer.from('8.0.0-flood\0'),
    Buffer.from([1, 0, 0, 0]), // connection id
    Buffer.from('abcdefgh'),
    Buffer.from([0]),
    lower,
    Buffer.from([33]), // utf8_general_ci
    Buffer.from([2, 0]), // status: autocommit
    upper,
    Buffer.from([21]),
    Buffer.alloc(10),
    Buffer.from('ijklmnopqrst\0'),
    Buffer.from('mysql_native_password\0'),
  ]);
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = 0;
  return Buffer.concat([header, payload]);
}

let certificate: { key: string; cert: string } | undefined;
/** A throwaway self-signed certificate (openssl), made once per run. */
function selfSignedCertificate(): { key: string; cert: string } {
  if (certificate) return certificate;
  const dir = mkdtempSync(join(tmpdir(), 'edgegate-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    certificate = {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
    return certificate;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
