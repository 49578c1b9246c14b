// Redis: the connect form's fields and a credential test that authenticates, selects and pings.
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { withinDeadline } from './deadline.ts';
import {
  capReceived,
  errorMessage,
  formatTarget,
  networkFailure,
  redact,
  type Target,
} from './failures.ts';
import { hints, hostField, passwordField, portField, switchField, text } from './fields.ts';
import type { ConnectionTypeDef, TestContext, TestFailure, TestOutcome } from './types.ts';

/** What Redis answers when AUTH carries a password nobody asked for (Redis 6 and later). */
const NO_PASSWORD_CONFIGURED = 'without any password configured';

const redisSchema = z.strictObject({
  host: hostField({ order: 1 }),
  port: portField(6379, { order: 2 }),
  username: text()
    .max(128, 'must be at most 128 characters')
    .default('')
    .meta(
      hints({
        title: 'User',
        description: 'Optional: an ACL user (Redis 6 or later). Leave empty for the default user.',
        placeholder: 'default',
        order: 3,
      }),
    ),
  password: passwordField({
    order: 4,
    description: 'Leave empty when the server does not ask for one.',
  }),
  database: z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be between 0 and 15')
    .max(15, 'must be between 0 and 15')
    .default(0)
    .meta(hints({ title: 'Database number', order: 5, example: 0, widget: 'number' })),
  tls: switchField({
    order: 6,
    title: 'Use TLS',
    description:
      "The certificate is checked against the host name, as managed Redis services' are.",
  }),
});

export type RedisConfig = z.output<typeof redisSchema>;

export const redisType: ConnectionTypeDef<RedisConfig> = {
  id: 'redis',
  title: 'Redis',
  description: 'Redis 6 or later, or Valkey.',
  cacheType: null,
  schema: redisSchema,
  secretFields: ['password'],
  origin: ({ host, port }) => ({ host, port }),
  test: testRedis,
};

async function testRedis(config: RedisConfig, ctx: TestContext): Promise<TestOutcome> {
  const outcome = await withinDeadline(ctx, config, config.password, (signal) =>
    ping(config, ctx, signal),
  );
  // A plaintext Redis reads a ClientHello as an unfinished inline command and waits forever.
  if (config.tls && !outcome.ok && outcome.code === 'timeout') {
    return {
      ...outcome,
      field: 'tls',
      message: `${outcome.message} A server without TLS never answers a TLS handshake: is TLS on?`,
    };
  }
  return outcome;
}

async function ping(
  config: RedisConfig,
  ctx: TestContext,
  signal: AbortSignal,
): Promise<TestOutcome> {
  const redis = new Redis({
    host: ctx.address,
    port: config.port,
    tls: config.tls
      ? {
          ...(isIP(config.host) === 0 ? { servername: config.host } : {}),
          checkServerIdentity: (_address, certificate) =>
            checkServerIdentity(config.host, certificate),
        }
      : undefined,
    lazyConnect: true,
    connectTimeout: ctx.timeoutMs,
    // One attempt, no queue: a test that retried would report a failure only at the deadline.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    // RESP2 and no ready check, so nothing runs before the AUTH and SELECT below: ioredis's own
    // would turn a bad database number into an error event and carry on as if connected.
    protocol: 2,
    enableReadyCheck: false,
    disableClientInfo: true,
  });
  let socketError: unknown;
  redis.on('error', (error: unknown) => {
    socketError ??= error;
  });
  // ioredis opens its socket inside connect(); count what it receives from the first byte.
  redis.once('connect', () => {
    const stream = (redis as unknown as { stream?: Parameters<typeof capReceived>[0] }).stream;
    if (stream) capReceived(stream);
  });
  const close = () => redis.disconnect();
  signal.addEventListener('abort', close, { once: true });
  try {
    await redis.connect();
    const note = await authenticate(redis, config);
    if (config.database !== 0) await redis.select(config.database);
    await redis.ping();
    const serverVersion = parseVersion(await redis.info('server'));
    await redis.quit();
    const passwordVerified = note === undefined && config.password !== '';
    return note === undefined
      ? { ok: true, serverVersion, passwordVerified }
      : { ok: true, serverVersion, note, passwordVerified };
  } catch (error) {
    return describeFailure(socketError ?? error, config);
  } finally {
    signal.removeEventListener('abort', close);
    close();
  }
}

/** Sends AUTH when the form has credentials; answers a note when the server needed none. */
async function authenticate(redis: Redis, config: RedisConfig): Promise<string | undefined> {
  if (config.username === '' && config.password === '') return undefined;
  try {
    if (config.username === '') await redis.auth(config.password);
    else await redis.auth(config.username, config.password);
    return undefined;
  } catch (error) {
    if (!errorMessage(error).includes(NO_PASSWORD_CONFIGURED)) throw error;
    return 'The server does not ask for a password: the one given is not needed.';
  }
}

// INFO's server section names Valkey's own version beside the Redis version it is compatible with.
function parseVersion(info: string): string | undefined {
  const field = (name: string) => new RegExp(`^${name}:(.+)$`, 'm').exec(info)?.[1]?.trim();
  const valkey = field('valkey_version');
  return valkey === undefined ? field('redis_version') : `valkey ${valkey}`;
}

function describeFailure(error: unknown, config: RedisConfig): TestFailure {
  const target: Target = config;
  const message = errorMessage(error);
  const who = config.username === '' ? 'the default user' : `user "${config.username}"`;
  const Who = config.username === '' ? 'The default user' : `User "${config.username}"`;
  if (message.startsWith('WRONGPASS') || message.includes('invalid password')) {
    return {
      ok: false,
      code: 'auth_failed',
      field: 'password',
      message: `The password for ${who} was not accepted.`,
    };
  }
  if (message.startsWith('NOAUTH')) {
    return {
      ok: false,
      code: 'auth_failed',
      field: 'password',
      message: `The server asks ${who} for a password.`,
    };
  }
  if (message.includes("wrong number of arguments for 'auth'")) {
    return {
      ok: false,
      code: 'auth_failed',
      field: 'username',
      message: 'This server predates Redis 6 and has no users: leave the user empty.',
    };
  }
  if (message.includes('DB index is out of range')) {
    return {
      ok: false,
      code: 'database_missing',
      field: 'database',
      message: `Database ${config.database} does not exist on this server.`,
    };
  }
  if (message.startsWith('NOPERM')) {
    return {
      ok: false,
      code: 'auth_failed',
      field: 'username',
      message: `${Who} may not run AUTH, SELECT, PING or INFO.`,
    };
  }
  const network = networkFailure(error, target, 'tls');
  if (network) return network;
  if (message === 'Connection is closed.') {
    return {
      ok: false,
      code: 'protocol_error',
      field: config.tls ? 'port' : 'tls',
      message: config.tls
        ? `${formatTarget(target)} closed the connection: is this a Redis server?`
        : `${formatTarget(target)} closed the connection: does it require TLS?`,
    };
  }
  return {
    ok: false,
    code: 'unknown',
    message: `The server refused the connection: ${redact(message, config.password)}`,
  };
}
