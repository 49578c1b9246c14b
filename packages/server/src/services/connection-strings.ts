// Converts an origin connection string into the one that reaches it through a cache's edge.
// The string carries the origin's password: it is converted in memory, never stored or logged.
import {
  ConnectionStringError,
  connectionStringRequestSchema,
  toEdgeConnectionString,
  type CacheType,
  type ConnectionStringRequest,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import { Problem } from '../problem.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { getCache } from './caches.ts';
import { parseInput } from './validation.ts';

export interface EdgeAddress {
  host: string;
  pgPort: number;
  mysqlPort: number;
  mssqlPort?: number | undefined;
  /** Whether the Postgres edge answers SSLRequest with TLS (EDGE_TLS_CERT and EDGE_TLS_KEY). */
  pgTls?: boolean | undefined;
}

/** sslmode values with which libpq refuses a server that does not offer TLS. */
const TLS_REQUIRING_SSLMODES = new Set(['require', 'verify-ca', 'verify-full']);

const DEFAULT_MSSQL_PORT = 1433;

export function edgePortFor(type: CacheType, edge: EdgeAddress): number {
  switch (type) {
    case 'postgres':
      return edge.pgPort;
    case 'mysql':
    case 'mariadb':
      return edge.mysqlPort;
    case 'mssql':
      return edge.mssqlPort ?? DEFAULT_MSSQL_PORT;
  }
}

export async function convertConnectionString(
  db: Db,
  principal: Principal,
  input: ConnectionStringRequest,
  edge: EdgeAddress,
): Promise<{ connectionString: string; warnings: string[] }> {
  const fields = parseInput(connectionStringRequestSchema, input);
  const cache = await getCache(db, principal, fields.cacheId, 'caches:read');
  let connectionString: string;
  try {
    connectionString = toEdgeConnectionString({
      cacheId: cache.id,
      cacheType: cache.type,
      connectionString: fields.connectionString,
      edgeHost: edge.host,
      edgePort: edgePortFor(cache.type, edge),
    });
  } catch (error) {
    if (!(error instanceof ConnectionStringError)) throw error;
    throw new Problem(error.code, 400, error.message, {
      errors: [{ path: 'connectionString', message: error.message }],
    });
  }
  return { connectionString, warnings: edgeWarnings(cache.type, connectionString, edge) };
}

/** What would make the converted string fail against this edge, in words a user can act on. */
function edgeWarnings(type: CacheType, connectionString: string, edge: EdgeAddress): string[] {
  if (type !== 'postgres' || edge.pgTls !== false) return [];
  let sslmode: string | null = null;
  try {
    sslmode = new URL(connectionString).searchParams.get('sslmode');
  } catch {
    // Key=value strings carry no sslmode in a URL query; nothing to warn about from here.
  }
  if (sslmode === null || !TLS_REQUIRING_SSLMODES.has(sslmode)) return [];
  return [
    `sslmode=${sslmode} needs TLS between your application and the edge, and this edge has no ` +
      'certificate (EDGE_TLS_CERT and EDGE_TLS_KEY): set them, or use sslmode=prefer or disable ' +
      "in this string. The edge reaches your database with the cache's own origin TLS setting either way.",
  ];
}
