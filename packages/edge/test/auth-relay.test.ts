// Logging in through the edge to origins that ask for passwords: every method is relayed between a
// real client and a real Postgres, the origin's own errors reach the client, routing errors carry
// their SQLSTATE, and cancel keys lead back to the right origin backend.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeCacheConfig } from '../src/index.ts';
import { cacheConfig as baseConfig } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';
import {
  CLUSTER_USERS,
  startThrowawayCluster,
  type ClusterUser,
  type ThrowawayCluster,
} from './helpers/throwaway-cluster.ts';

// Caches: the plain origin as is, the TLS origin over TLS, and the plain origin with TLS demanded.
const PLAIN = 'cch_authplain';
const ORIGIN_TLS = 'cch_authorigintls';
const PLAIN_BUT_REQUIRED = 'cch_authtlsrequired';
const PLAIN_PREFERRED = 'cch_authtlspreferred';

const CANCEL_REQUEST_CODE = 80877102; // 1234.5678

let plainOrigin: ThrowawayCluster;
let tlsOrigin: ThrowawayCluster;
let edge: RunningEdge;
// Answers SSLRequest with TLS, using the TLS origin's self-signed certificate.
let tlsEdge: RunningEdge;

beforeAll(async () => {
  [plainOrigin, tlsOrigin] = await Promise.all([
    startThrowawayCluster(),
    startThrowawayCluster({ tls: true }),
  ]);
  const source = new StaticConfigSource([
    cacheOn(PLAIN, plainOrigin, 'disable'),
    cacheOn(ORIGIN_TLS, tlsOrigin, 'require'),
    cacheOn(PLAIN_BUT_REQUIRED, plainOrigin, 'require'),
    cacheOn(PLAIN_PREFERRED, plainOrigin, 'prefer'),
  ]);
  edge = await startEdge({ source });
  tlsEdge = await startEdge({
    source,
    tls: {
      cert: await readFile(tlsOrigin.certPath as string),
      key: await readFile(tlsOrigin.keyPath as string),
    },
  });
}, 60_000);

afterAll(async () => {
  await Promise.all([edge?.close(), tlsEdge?.close()]);
  await Promise.all([plainOrigin?.stop(), tlsOrigin?.stop()]);
}, 60_000);

function cacheOn(
  id: string,
  origin: ThrowawayCluster,
  originTls: EdgeCacheConfig['originTls'],
): EdgeCacheConfig {
  return baseConfig(id, { hostname: origin.host, port: origin.port, originTls });
}

function originOf(cacheId: string): ThrowawayCluster {
  return cacheId === ORIGIN_TLS ? tlsOrigin : plainOrigin;
}

// A `pg` client for the edge; the password is the one the origin knows unless one is given.
function edgeClient(
  user: ClusterUser,
  options: { cacheId?: string; via?: RunningEdge } & pg.ClientConfig = {},
): pg.Client {
  const { cacheId = PLAIN, via = edge, ...config } = options;
  return new pg.Client({
    host: via.host,
    port: via.port,
    user,
    password: originOf(cacheId).password(user),
    database: 'app',
    application_name: cacheId,
    connectionTimeoutMillis: 10_000,
    ...config,
  });
}

// The authentication requests and startup reports a `pg` client receives, as they arrive.
function recordStartup(client: pg.Client) {
  const seen = {
    authRequests: [] as string[],
    saslMechanisms: [] as string[],
    parameters: new Map<string, string>(),
  };
  const auth = [
    'authenticationSASL',
    'authenticationMD5Password',
    'authenticationCleartextPassword',
    'authenticationOk',
  ];
  for (const name of auth) {
    client.connection.on(name, (message: { mechanisms?: string[] }) => {
      seen.authRequests.push(name);
      if (message.mechanisms) seen.saslMechanisms.push(...message.mechanisms);
    });
  }
  client.connection.on(
    'parameterStatus',
    (message: { parameterName: string; parameterValue: string }) =>
      seen.parameters.set(message.parameterName, message.parameterValue),
  );
  return seen;
}

async function withClient<T>(client: pg.Client, use: (client: pg.Client) => Promise<T>) {
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The error a refused login fails with; fails the test if the login succeeds. */
async function refusal(client: pg.Client): Promise<Error & { code?: string }> {
  try {
    await client.connect();
  } catch (error) {
    return error as Error & { code?: string };
  }
  await client.end();
  throw new Error('the edge let this client in');
}

function edgeUrl(
  user: ClusterUser,
  params: Record<string, string>,
  options: { via?: RunningEdge; password?: string } = {},
): string {
  const via = options.via ?? edge;
  const url = new URL(`postgresql://127.0.0.1:${via.port}/app`);
  url.username = user;
  if (options.password !== undefined) url.password = options.password;
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

/** Runs one statement with psql (libpq) and returns its unaligned output; rejects with stderr. */
function psql(url: string, sql: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'psql',
      ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql],
      {
        timeout: 20_000,
        env: { ...process.env, PGPASSFILE: '/dev/null', PGCONNECT_TIMEOUT: '10' },
      },
      (error, stdout, stderr) => {
        if (error) reject(new Error(stderr.trim() || error.message));
        else resolve(stdout.trim());
      },
    );
  });
}

const METHODS: { method: string; user: ClusterUser; request: string }[] = [
  { method: 'SCRAM-SHA-256', user: CLUSTER_USERS.scram, request: 'authenticationSASL' },
  { method: 'MD5', user: CLUSTER_USERS.md5, request: 'authenticationMD5Password' },
  {
    method: 'cleartext password',
    user: CLUSTER_USERS.cleartext,
    request: 'authenticationCleartextPassword',
  },
  { method: 'trust', user: CLUSTER_USERS.trust, request: 'authenticationOk' },
];

describe('each authentication method is relayed to the origin', () => {
  it.each(METHODS)('$method: a pg client logs in and reads', async ({ user, request }) => {
    const client = edgeClient(user);
    const seen = recordStartup(client);
    await withClient(client, async () => {
      const { rows } = await client.query(
        'select current_user as who, name from items order by id',
      );
      expect(rows).toEqual([
        { who: user, name: 'anvil' },
        { who: user, name: 'bellows' },
        { who: user, name: 'chisel' },
      ]);
    });
    // The client was asked for exactly what the origin's pg_hba.conf asks this user for.
    expect(seen.authRequests[0]).toBe(request);
    expect(seen.authRequests.at(-1)).toBe('authenticationOk');
  });

  it.each(METHODS)('$method: psql logs in and reads', async ({ user }) => {
    const url = edgeUrl(
      user,
      { application_name: PLAIN, sslmode: 'disable' },
      { password: plainOrigin.password(user) },
    );
    await expect(psql(url, 'select current_user, count(*) from items')).resolves.toBe(`${user}|3`);
  });

  it('SCRAM: the client is offered SCRAM-SHA-256 alone, never the -PLUS variant', async () => {
    // The TLS origin offers SCRAM-SHA-256-PLUS too; the binding would be to the edge's TLS session.
    const client = edgeClient(CLUSTER_USERS.scram, { cacheId: ORIGIN_TLS });
    const seen = recordStartup(client);
    await withClient(client, async () => undefined);
    expect(seen.saslMechanisms).toEqual(['SCRAM-SHA-256']);
  });

  it.each([CLUSTER_USERS.scram, CLUSTER_USERS.md5, CLUSTER_USERS.cleartext])(
    '%s: a wrong password is refused with the origin’s own 28P01',
    async (user) => {
      const error = await refusal(edgeClient(user, { password: 'not-the-password' }));
      expect(error.code).toBe('28P01');
      expect(error.message).toBe(`password authentication failed for user "${user}"`);
    },
  );

  it('psql shows the origin’s refusal of a wrong password', async () => {
    const url = edgeUrl(
      CLUSTER_USERS.md5,
      { application_name: PLAIN, sslmode: 'disable' },
      { password: 'not-the-password' },
    );
    await expect(psql(url, 'select 1')).rejects.toThrow(
      /FATAL: {2}password authentication failed for user "md5_user"/,
    );
  });
});

describe('routing by application_name', () => {
  it('an unknown cache id is refused with 08004 and says which cache is missing', async () => {
    const error = await refusal(
      edgeClient(CLUSTER_USERS.scram, { application_name: 'cch_doesnotexist' }),
    );
    expect(error.code).toBe('08004');
    expect(error.message).toBe(
      'there is no cache "cch_doesnotexist": it was deleted or never existed',
    );
  });

  it("says what application_name should be when a client sent its own name (psql's default)", async () => {
    const error = await refusal(edgeClient(CLUSTER_USERS.scram, { application_name: 'psql' }));
    expect(error.code).toBe('08004');
    expect(error.message).toBe(
      'application_name "psql" is not a cache id: set application_name to the cache id (cch_…), as in the connection string Edgegate gave you',
    );
  });

  it('a connection without application_name is refused with 08004', async () => {
    const error = await refusal(edgeClient(CLUSTER_USERS.scram, { application_name: undefined }));
    expect(error.code).toBe('08004');
    expect(error.message).toMatch(
      /^no cache id: connect with application_name set to the cache id/,
    );
  });

  it('psql names the missing cache too', async () => {
    const url = edgeUrl(
      CLUSTER_USERS.trust,
      { application_name: 'cch_doesnotexist', sslmode: 'disable' },
      {},
    );
    await expect(psql(url, 'select 1')).rejects.toThrow(/there is no cache "cch_doesnotexist"/);
  });

  it('the application name after "cache id:" reaches the origin', async () => {
    const client = edgeClient(CLUSTER_USERS.scram, { application_name: `${PLAIN}:myapp` });
    const name = await withClient(client, async () => {
      const { rows } = await client.query<{ name: string; seen: string }>(
        `select current_setting('application_name') as name,
                (select application_name from pg_stat_activity where pid = pg_backend_pid()) as seen`,
      );
      return rows[0];
    });
    expect(name).toEqual({ name: 'myapp', seen: 'myapp' });
  });

  it('with the cache id alone the origin sees an empty application_name', async () => {
    const client = edgeClient(CLUSTER_USERS.scram);
    const name = await withClient(client, async () => {
      const { rows } = await client.query<{ name: string }>(
        `select current_setting('application_name') as name`,
      );
      return rows[0]?.name;
    });
    expect(name).toBe('');
  });
});

describe('TLS', () => {
  it('originTls require: SCRAM logs in over TLS to the origin', async () => {
    const client = edgeClient(CLUSTER_USERS.scram, { cacheId: ORIGIN_TLS });
    const ssl = await withClient(client, async () => {
      const { rows } = await client.query<{ ssl: boolean }>(
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
      );
      return rows[0]?.ssl;
    });
    expect(ssl).toBe(true);
  });

  it('originTls require against an origin without TLS is refused with 08001', async () => {
    const error = await refusal(edgeClient(CLUSTER_USERS.scram, { cacheId: PLAIN_BUT_REQUIRED }));
    expect(error.code).toBe('08001');
    expect(error.message).toMatch(/does not accept TLS/);
  });

  it('originTls prefer falls back to plain TCP when the origin has no TLS', async () => {
    const client = edgeClient(CLUSTER_USERS.scram, { cacheId: PLAIN_PREFERRED });
    const ssl = await withClient(client, async () => {
      const { rows } = await client.query<{ ssl: boolean }>(
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
      );
      return rows[0]?.ssl;
    });
    expect(ssl).toBe(false);
  });

  it('a pg client with TLS to the edge logs in with SCRAM', async () => {
    // pg's equivalent of sslmode=require: encrypted, certificate not checked.
    const client = edgeClient(CLUSTER_USERS.scram, {
      via: tlsEdge,
      ssl: { rejectUnauthorized: false },
    });
    await withClient(client, async () => {
      expect(client.connection.stream).toBeInstanceOf(TLSSocket);
      const { rows } = await client.query('select count(*)::int as n from items');
      expect(rows).toEqual([{ n: 3 }]);
    });
  });

  it('psql with sslmode=require logs in with SCRAM through a TLS edge', async () => {
    const params = { application_name: PLAIN, sslmode: 'require' };
    const password = plainOrigin.password(CLUSTER_USERS.scram);
    await expect(
      psql(edgeUrl(CLUSTER_USERS.scram, params, { via: tlsEdge, password }), 'select 1'),
    ).resolves.toBe('1');
    // The same request to an edge without a certificate fails: sslmode=require is really honoured.
    await expect(
      psql(edgeUrl(CLUSTER_USERS.scram, params, { via: edge, password }), 'select 1'),
    ).rejects.toThrow(/server does not support SSL/);
  });

  // With TLS on both legs, libpq (channel_binding=prefer, its default) is offered SCRAM-SHA-256
  // without -PLUS over TLS and so answers with the gs2 flag 'y' ("I support channel binding, you
  // don't"). The origin, on TLS itself, does support it and rejects that as a downgrade. The edge
  // cannot fix this without the client's password, so SCRAM clients on TLS to an edge in front of
  // a TLS origin must connect with channel_binding=disable. `pg` sends 'n' unless
  // enableChannelBinding is set, so it works as is.
  it('both legs on TLS: psql logs in with channel_binding=disable', async () => {
    const password = tlsOrigin.password(CLUSTER_USERS.scram);
    const url = edgeUrl(
      CLUSTER_USERS.scram,
      { application_name: ORIGIN_TLS, sslmode: 'require', channel_binding: 'disable' },
      { via: tlsEdge, password },
    );
    await expect(
      psql(url, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'),
    ).resolves.toBe('t');
  });

  it('both legs on TLS: channel binding left on is refused by the origin', async () => {
    const password = tlsOrigin.password(CLUSTER_USERS.scram);
    const url = edgeUrl(
      CLUSTER_USERS.scram,
      { application_name: ORIGIN_TLS, sslmode: 'require' },
      { via: tlsEdge, password },
    );
    await expect(psql(url, 'select 1')).rejects.toThrow(/SCRAM channel binding negotiation error/);
    const error = await refusal(
      edgeClient(CLUSTER_USERS.scram, {
        cacheId: ORIGIN_TLS,
        via: tlsEdge,
        ssl: { rejectUnauthorized: false },
        enableChannelBinding: true,
      }),
    );
    // The origin's own refusal, relayed as is (the edge's own errors are class 08).
    expect(error.message).toBe('SCRAM channel binding negotiation error');
  });

  it('both legs on TLS: a pg client logs in with SCRAM', async () => {
    const client = edgeClient(CLUSTER_USERS.scram, {
      cacheId: ORIGIN_TLS,
      via: tlsEdge,
      ssl: { rejectUnauthorized: false },
    });
    const ssl = await withClient(client, async () => {
      const { rows } = await client.query<{ ssl: boolean }>(
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
      );
      return rows[0]?.ssl;
    });
    expect(ssl).toBe(true);
  });
});

describe('startup reports and cancellation', () => {
  it('the client gets the origin’s ParameterStatus and BackendKeyData', async () => {
    const direct = new pg.Client({
      host: plainOrigin.host,
      port: plainOrigin.port,
      user: plainOrigin.superuser,
      password: plainOrigin.password('postgres'),
      database: 'app',
    });
    const originVersion = await withClient(direct, async () => {
      const { rows } = await direct.query<{ server_version: string }>('show server_version');
      return rows[0]?.server_version;
    });

    const client = edgeClient(CLUSTER_USERS.md5);
    const seen = recordStartup(client);
    const backend = await withClient(client, async () => {
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      return rows[0]?.pid;
    });
    expect(seen.parameters.get('server_version')).toBe(originVersion);
    expect(seen.parameters.get('client_encoding')).toBe('UTF8');
    expect(seen.parameters.get('integer_datetimes')).toBe('on');
    // The cancel key is the origin backend's own, so its process id is that backend's pid.
    expect(backendKey(client).processID).toBe(backend);
  });

  it.each([PLAIN, ORIGIN_TLS])(
    '%s: a CancelRequest sent to the edge cancels a running query with 57014',
    async (cacheId) => {
      const client = edgeClient(CLUSTER_USERS.scram, { cacheId });
      await withClient(client, async () => {
        const sleeping = client.query('select pg_sleep(30)').then(
          () => null,
          (error: Error & { code?: string }) => error,
        );
        await untilActive(originOf(cacheId), client, 'select pg_sleep(30)');
        const sentAt = Date.now();
        const { processID, secretKey } = backendKey(client);
        await sendCancelRequest(edge.port, processID, secretKey);
        const outcome = await Promise.race([sleeping, delay(10_000, 'still running')]);
        expect(outcome).toMatchObject({ code: '57014' });
        expect(Date.now() - sentAt).toBeLessThan(5_000);
        // The session survives its cancelled query.
        const { rows } = await client.query('select 1 as one');
        expect(rows).toEqual([{ one: 1 }]);
      });
    },
  );

  it('a CancelRequest with the wrong secret cancels nothing', async () => {
    const client = edgeClient(CLUSTER_USERS.scram);
    await withClient(client, async () => {
      const sleeping = client.query('select pg_sleep(1.5) as slept');
      await untilActive(plainOrigin, client, 'select pg_sleep(1.5) as slept');
      const { processID, secretKey } = backendKey(client);
      await sendCancelRequest(edge.port, processID, secretKey ^ 1);
      await expect(sleeping).resolves.toMatchObject({ rows: [{ slept: '' }] });
    });
  });
});

function backendKey(client: pg.Client): { processID: number; secretKey: number } {
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  return { processID, secretKey };
}

// Waits until the origin backend behind `client` is running `sql`, asking as the superuser.
async function untilActive(origin: ThrowawayCluster, client: pg.Client, sql: string) {
  const observer = new pg.Client({
    host: origin.host,
    port: origin.port,
    user: origin.superuser,
    password: origin.password('postgres'),
    database: 'app',
  });
  await withClient(observer, async () => {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const { rowCount } = await observer.query(
        `select 1 from pg_stat_activity where pid = $1 and state = 'active' and query = $2`,
        [backendKey(client).processID, sql],
      );
      if (rowCount === 1) return;
      await delay(20, null);
    }
    throw new Error(`the origin never started running ${sql}`);
  });
}

// A CancelRequest as libpq sends it: on a new connection, then the server closes it.
function sendCancelRequest(port: number, processID: number, secretKey: number): Promise<void> {
  const frame = Buffer.alloc(16);
  frame.writeInt32BE(16, 0);
  frame.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  frame.writeInt32BE(processID, 8);
  frame.writeInt32BE(secretKey, 12);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(frame));
    socket.setTimeout(5_000, () =>
      socket.destroy(new Error('the edge kept the cancel socket open')),
    );
    socket.on('error', reject);
    socket.on('close', () => resolve());
    socket.resume();
  });
}

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}
