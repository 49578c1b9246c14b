// The connection types the hosted connect flow offers, and how to find, describe and validate one.
import { mariadbType, mysqlType } from './mysql.ts';
import { mssqlType } from './mssql.ts';
import { postgresqlType } from './postgresql.ts';
import { redisType } from './redis.ts';
import type { ConnectionTypeDef } from './types.ts';

import { describeConnectionType, type ConnectionTypeEntry } from './describe.ts';
export { describeConnectionType, type ConnectionTypeEntry, type JsonSchema } from './describe.ts';
export { validateConnectionConfig, type FieldError, type ValidationResult } from './validate.ts';
export type * from './types.ts';

/** In the order the connect page lists them. */
export const CONNECTION_TYPES: readonly ConnectionTypeDef[] = [
  postgresqlType,
  mysqlType,
  mariadbType,
  mssqlType,
  redisType,
];

/** The public catalog: every entry described once, as GET /v1/connection-types and the pages show it. */
export const CONNECTION_TYPE_ENTRIES: ReadonlyMap<string, ConnectionTypeEntry> = new Map(
  CONNECTION_TYPES.map((def) => [def.id, describeConnectionType(def)]),
);

export function findConnectionType(id: string): ConnectionTypeDef | undefined {
  return CONNECTION_TYPES.find((def) => def.id === id);
}
