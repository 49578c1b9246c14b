// How the replication follower and the prerequisite check reach an origin: the cache's host (its
// addresses checked by the origin guard at every connect, as the edge does), the cache's TLS
// setting, and the replication credential.
import { isIP } from 'node:net';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { checkOrigin } from '../services/origin-guard.ts';

export interface ReplicationCredential {
  username: string;
  password: string;
  /** Postgres only: the database whose changes are followed. */
  database: string;
}

export interface ReplicationOrigin {
  cacheId: string;
  type: 'postgres' | 'mysql' | 'mariadb' | 'mssql';
  hostname: string;
  port: number;
  originTls: 'disable' | 'prefer' | 'require';
  privateRanges: 'allow' | 'deny';
}

const CONNECT_TIMEOUT_MS = 10_000;

/** The slot (and default publication) of a cache: one per cache, named so an operator sees whose. */
export const slotNameOf = (cacheId: string) => `edgegate_${cacheId.toLowerCase()}`;

async function guardedAddress(origin: ReplicationOrigin): Promise<string> {
  const { addresses } = await checkOrigin(origin.hostname, {
    privateRanges: origin.privateRanges,
  });
  return addresses[0] ?? origin.hostname;
}

/**
 * A connected pg client; `replication` makes it a walsender connection. `prefer` tries TLS (the
 * certificate not checked, as libpq's prefer) and falls back to plaintext when the server has none.
 */
export async function connectPostgres(
  origin: ReplicationOrigin,
  credential: ReplicationCredential,
  options: { replication: boolean },
): Promise<pg.Client> {
  const host = await guardedAddress(origin);
  const servername = isIP(origin.hostname) === 0 ? { servername: origin.hostname } : {};
  const attempt = async (tls: boolean) => {
    const client = new pg.Client({
      host,
      port: origin.port,
      user: credential.username,
      // A function keeps an empty password empty (pg would fill it from PGPASSWORD otherwise).
      password: () => credential.password,
      database: credential.database,
      ssl: tls ? { ...servername, rejectUnauthorized: false } : false,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'edgegate-replication',
      ...(options.replication ? { replication: 'database' } : {}),
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  if (origin.originTls === 'disable') return attempt(false);
  try {
    return await attempt(true);
  } catch (error) {
    if (
      origin.originTls === 'prefer' &&
      (error as Error).message === 'The server does not support SSL connections'
    ) {
      return attempt(false);
    }
    throw error;
  }
}

/** A mysql2 connection for the prerequisite check (the binary log reader makes its own). */
export async function connectMysql(
  origin: ReplicationOrigin,
  credential: ReplicationCredential,
): Promise<mysql.Connection> {
  const host = await guardedAddress(origin);
  return mysql.createConnection({
    host,
    port: origin.port,
    user: credential.username,
    password: credential.password,
    connectTimeout: CONNECT_TIMEOUT_MS,
    ...(origin.originTls === 'require' ? { ssl: { rejectUnauthorized: false } } : {}),
  });
}

export { guardedAddress };
