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
}

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
): Promise<string> {
  const fields = parseInput(connectionStringRequestSchema, input);
  const cache = await getCache(db, principal, fields.cacheId, 'caches:read');
  try {
    return toEdgeConnectionString({
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
}
