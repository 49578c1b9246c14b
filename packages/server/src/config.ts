// Edgegate's configuration: SPEC §1 variables and their flags, validated once at start.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { resolve, join } from 'node:path';
import { z } from 'zod';

const port = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be a whole number')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535');

const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

/** Every setting: its environment variable, its flag, its schema and what it is for. */
export const settings = {
  PORT: { flag: 'port', schema: port.default(8080), help: 'HTTP port of the control plane' },
  HOST: {
    flag: 'host',
    schema: z.string().min(1).default('127.0.0.1'),
    help: 'Address the control plane and edge listen on (0.0.0.0 for all)',
  },
  EDGE_PG_PORT: { flag: 'edge-pg-port', schema: port.default(6432), help: 'Postgres edge port' },
  EDGE_MYSQL_PORT: {
    flag: 'edge-mysql-port',
    schema: port.default(6033),
    help: 'MySQL/MariaDB edge port',
  },
  EDGE_TLS_CERT: {
    flag: 'edge-tls-cert',
    schema: z.string().min(1).optional(),
    help: 'PEM certificate file: the edge answers SSLRequest with TLS (needs EDGE_TLS_KEY)',
  },
  EDGE_TLS_KEY: {
    flag: 'edge-tls-key',
    schema: z.string().min(1).optional(),
    help: 'PEM private key file for EDGE_TLS_CERT',
  },
  EDGE_CACHE_MAX_MB: {
    flag: 'edge-cache-max-mb',
    schema: z.coerce
      .number({ error: 'must be a number of megabytes' })
      .int('must be a whole number of megabytes')
      .min(1, 'must be at least 1')
      .max(1024 * 1024, 'must be at most 1048576 (1 TiB)')
      .default(256),
    help: 'Memory the edge may use for cached results, in MiB (least recently used go first)',
  },
  EDGE_SHARED_RESULTS_MAX_KB: {
    flag: 'edge-shared-results-max-kb',
    schema: z.coerce
      .number({ error: 'must be a number of kibibytes' })
      .int('must be a whole number of kibibytes')
      .min(1, 'must be at least 1')
      .max(512 * 1024, 'must be at most 524288 (512 MiB, the largest Redis string)')
      .default(1024),
    help: 'Largest result, in KiB, the edge shares through Redis (REDIS_URL) for caches with sharedResults; larger ones stay in its own memory',
  },
  EDGE_THREADS: {
    flag: 'edge-threads',
    schema: z.coerce
      .number({ error: 'must be a number of threads' })
      .int('must be a whole number of threads')
      .min(1, 'must be at least 1')
      .max(64, 'must be at most 64')
      .default(1),
    help: 'Threads serving the edge ports (one per core the edge may use; they share EDGE_CACHE_MAX_MB)',
  },
  EDGE_MAX_CONNECTIONS: {
    flag: 'edge-max-connections',
    schema: z.coerce
      .number({ error: 'must be a number of connections' })
      .int('must be a whole number of connections')
      .min(1, 'must be at least 1')
      .optional(),
    help: 'Client connections the Postgres edge holds at once, all threads together (default: what the open-file limit leaves room for, two descriptors each, after a reserve for the control plane); past it: 53300',
  },
  EDGE_MAX_CONNECTIONS_PER_ADDRESS: {
    flag: 'edge-max-connections-per-address',
    schema: z.coerce
      .number({ error: 'must be a number of connections' })
      .int('must be a whole number of connections')
      .min(1, 'must be at least 1')
      .optional(),
    help: 'Client connections from one IP address (default: half of EDGE_MAX_CONNECTIONS); past it: 53300',
  },
  EDGE_LOGIN_TIMEOUT_SECONDS: {
    flag: 'edge-login-timeout-seconds',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(1, 'must be at least 1 second')
      .max(3600, 'must be at most 3600 seconds')
      .default(15),
    help: 'Seconds a client has to finish startup and authentication on the edge; then 08P01 (client_login_timeout) and the connection closes',
  },
  EDGE_DRAIN_SECONDS: {
    flag: 'edge-drain-seconds',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(0, 'must be at least 0 seconds')
      .max(3600, 'must be at most 3600 seconds')
      .default(30),
    help: 'Seconds open edge sessions may finish after SIGTERM (the edge stops accepting at once; idle sessions end at once, busy ones when idle; then 57P01 / MySQL 1053)',
  },
  EDGE_MSSQL_PORT: {
    flag: 'edge-mssql-port',
    schema: port.default(1433),
    help: 'MS SQL port placed in connection strings (the MS SQL edge listener is not built yet)',
  },
  DATA_DIR: {
    flag: 'data-dir',
    schema: z.string().min(1).default('./data'),
    help: 'Directory of the embedded store, generated secret and admin socket',
  },
  DATABASE_URL: {
    flag: 'database-url',
    schema: url(['postgres:', 'postgresql:']).optional(),
    help: 'Postgres store (postgres://…); embedded PGlite in DATA_DIR when unset',
  },
  REDIS_URL: {
    flag: 'redis-url',
    schema: url(['redis:', 'rediss:']).optional(),
    help: 'Shared tier (redis://…): shared limits, and edge nodes act as one cache; in-process when unset',
  },
  PUBLIC_URL: {
    flag: 'public-url',
    schema: url(['http:', 'https:']).optional(),
    help: 'External URL of the control plane (issuer and links); default http://localhost:PORT',
  },
  EDGE_HOST: {
    flag: 'edge-host',
    schema: z.string().min(1).default('localhost'),
    help: 'Hostname placed in connection strings (with EDGE_PG_PORT, EDGE_MYSQL_PORT and the edge TLS settings: set them on a control plane whose edges run elsewhere)',
  },
  EDGEGATE_SECRET: {
    flag: 'secret',
    schema: z
      .string()
      .min(32, 'must be at least 32 characters (e.g. `openssl rand -base64 48`)')
      .optional(),
    help: 'Root key material; generated into DATA_DIR/secret when unset',
  },
  EDGEGATE_PREVIOUS_SECRET: {
    flag: 'previous-secret',
    schema: z.string().min(32, 'must be at least 32 characters').optional(),
    help: 'The root secret before a rotation: stored keys it wrapped stay readable until `edgegate keys rotate` re-wraps them',
  },
  OAUTH_ACCESS_TOKEN_TTL: {
    flag: 'oauth-access-token-ttl',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(60, 'must be at least 60 seconds')
      .max(86400, 'must be at most 86400 seconds (one day)')
      .default(3600),
    help: 'Lifetime of OAuth access tokens, in seconds',
  },
  ORIGIN_PRIVATE: {
    flag: 'origin-private',
    schema: z.enum(['allow', 'deny'], { error: 'must be allow or deny' }).default('allow'),
    help: 'Whether caches may point at loopback and private-range origins (deny for multi-tenant hosting)',
  },
  API_RATE_LIMIT: {
    flag: 'api-rate-limit',
    schema: z.coerce
      .number({ error: 'must be a number of requests' })
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .default(1200),
    help: 'API requests per minute per credential (429 with Retry-After beyond)',
  },
  TRUST_PROXY: {
    flag: 'trust-proxy',
    schema: z
      .string()
      .regex(
        /^(true|false|\d+|[0-9a-fA-F.:/, ]+)$/,
        'must be true, false, a hop count, or addresses/CIDRs',
      )
      .default('false'),
    help: 'Trust X-Forwarded-* from these proxies (true, hop count, or CIDRs) for client IPs',
  },
  SHUTDOWN_DELAY_SECONDS: {
    flag: 'shutdown-delay-seconds',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(0, 'must be at least 0 seconds')
      .max(300, 'must be at most 300 seconds')
      .default(5),
    help: 'Seconds /readyz answers 503 after SIGTERM before listeners close, so load balancers stop sending first',
  },
  REPLICATION_SLOT_WARN_MB: {
    flag: 'replication-slot-warn-mb',
    schema: z.coerce
      .number({ error: 'must be a number of MiB' })
      .int('must be a whole number of MiB')
      .min(1, 'must be at least 1 MiB')
      .default(1024),
    help: 'WAL a Postgres replication slot of a cache may keep before a cache.replication_slot_large event',
  },
  METRICS_MAX_CACHES: {
    flag: 'metrics-max-caches',
    schema: z.coerce
      .number({ error: 'must be a number of caches' })
      .int('must be a whole number of caches')
      .min(0, 'must be at least 0')
      .max(100_000, 'must be at most 100000')
      .default(100),
    help: 'Caches with their own cache_id series in /metrics (the most queried); the rest are summed under cache_id="other"',
  },
  LOG_LEVEL: {
    flag: 'log-level',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    help: 'Log level',
  },
} as const;

export type SettingName = keyof typeof settings;

export interface Config {
  port: number;
  host: string;
  edgePgPort: number;
  edgeMysqlPort: number;
  edgeMssqlPort: number;
  edgeTls: { certFile: string; keyFile: string } | null;
  edgeCacheMaxMb: number;
  edgeThreads: number;
  edgeSharedResultsMaxKb: number;
  /** Null: derived from the open-file limit when the edge starts. */
  edgeMaxConnections: number | null;
  /** Null: half of the total cap. */
  edgeMaxConnectionsPerAddress: number | null;
  edgeLoginTimeoutSeconds: number;
  edgeDrainSeconds: number;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  publicUrl: string;
  edgeHost: string;
  /** EDGE_HOST was given (not the default): a control plane without its own edge needs it. */
  edgeHostSet: boolean;
  secret: string;
  secretSource: 'environment' | 'generated' | 'data-dir';
  previousSecret: string | undefined;
  trustProxy: boolean | number | string;
  accessTokenTtlSeconds: number;
  originPrivate: 'allow' | 'deny';
  apiRateLimit: number;
  shutdownDelaySeconds: number;
  replicationSlotWarnMb: number;
  metricsMaxCaches: number;
  logLevel: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads settings from flags (winning), the environment, then a config file's values, validates
 * each one and names the offending variable in the error. Does not touch the disk: see
 * `ensureSecret` and `readConfigFile`.
 */
export function parseConfig(
  env: Record<string, string | undefined>,
  flags: Partial<Record<SettingName, string>> = {},
  file: Partial<Record<SettingName, string>> = {},
): Omit<Config, 'secret' | 'secretSource'> & { secret: string | undefined } {
  const raw: Record<string, unknown> = {};
  for (const name of Object.keys(settings) as SettingName[]) {
    const fromEnv = env[name] === '' ? undefined : env[name];
    const value = flags[name] ?? fromEnv ?? file[name];
    raw[name] = value === '' ? undefined : value;
  }
  const values: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(settings)) {
    const parsed = setting.schema.safeParse(raw[name]);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? 'is invalid';
      const shown =
        name.endsWith('_SECRET') || name.endsWith('_URL') ? '' : ` (got "${String(raw[name])}")`;
      throw new ConfigError(`${name} (--${setting.flag}) ${reason}${shown}`);
    }
    values[name] = parsed.data;
  }
  const v = values as { [K in SettingName]: z.infer<(typeof settings)[K]['schema']> };
  return {
    port: v.PORT,
    host: v.HOST,
    edgePgPort: v.EDGE_PG_PORT,
    edgeMysqlPort: v.EDGE_MYSQL_PORT,
    edgeMssqlPort: v.EDGE_MSSQL_PORT,
    edgeTls: edgeTls(v.EDGE_TLS_CERT, v.EDGE_TLS_KEY),
    edgeCacheMaxMb: v.EDGE_CACHE_MAX_MB,
    edgeThreads: v.EDGE_THREADS,
    edgeSharedResultsMaxKb: v.EDGE_SHARED_RESULTS_MAX_KB,
    edgeMaxConnections: v.EDGE_MAX_CONNECTIONS ?? null,
    edgeMaxConnectionsPerAddress: v.EDGE_MAX_CONNECTIONS_PER_ADDRESS ?? null,
    edgeLoginTimeoutSeconds: v.EDGE_LOGIN_TIMEOUT_SECONDS,
    edgeDrainSeconds: v.EDGE_DRAIN_SECONDS,
    dataDir: resolve(v.DATA_DIR),
    databaseUrl: v.DATABASE_URL,
    redisUrl: v.REDIS_URL,
    publicUrl: (v.PUBLIC_URL ?? `http://localhost:${v.PORT}`).replace(/\/+$/, ''),
    edgeHost: v.EDGE_HOST,
    edgeHostSet: raw.EDGE_HOST !== undefined,
    secret: v.EDGEGATE_SECRET,
    previousSecret: v.EDGEGATE_PREVIOUS_SECRET,
    trustProxy: parseTrustProxy(v.TRUST_PROXY),
    accessTokenTtlSeconds: v.OAUTH_ACCESS_TOKEN_TTL,
    originPrivate: v.ORIGIN_PRIVATE,
    apiRateLimit: v.API_RATE_LIMIT,
    shutdownDelaySeconds: v.SHUTDOWN_DELAY_SECONDS,
    replicationSlotWarnMb: v.REPLICATION_SLOT_WARN_MB,
    metricsMaxCaches: v.METRICS_MAX_CACHES,
    logLevel: v.LOG_LEVEL,
  };
}

function edgeTls(certFile: string | undefined, keyFile: string | undefined): Config['edgeTls'] {
  if (certFile === undefined && keyFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined) {
    throw new ConfigError(
      'EDGE_TLS_CERT (--edge-tls-cert) and EDGE_TLS_KEY (--edge-tls-key) go together: set both or neither',
    );
  }
  return { certFile: resolve(certFile), keyFile: resolve(keyFile) };
}

function parseTrustProxy(value: string): boolean | number | string {
  if (value === 'true') return true;
  if (value === 'false') return false;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/**
 * Completes a parsed config with the root secret: the one given, else the one in
 * DATA_DIR/secret, else a new random one written there with mode 0600.
 */
export function ensureSecret(config: ReturnType<typeof parseConfig>): Config {
  if (config.secret) return { ...config, secret: config.secret, secretSource: 'environment' };
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const file = join(config.dataDir, 'secret');
  if (existsSync(file)) {
    const secret = readFileSync(file, 'utf8').trim();
    if (secret.length < 32)
      throw new ConfigError(`${file} holds a secret shorter than 32 characters`);
    return { ...config, secret, secretSource: 'data-dir' };
  }
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { ...config, secret, secretSource: 'generated' };
}

export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  flags: Partial<Record<SettingName, string>> = {},
  file: Partial<Record<SettingName, string>> = {},
): Config {
  return ensureSecret(parseConfig(env, flags, file));
}
