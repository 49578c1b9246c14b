// Connections: credentials collected by the hosted connect flow. Secret fields are sealed under the
// workspace's data key and never leave the server except inside a connection string shown once.
import {
  toEdgeConnectionString,
  type ConnectEndUser,
  type Connection,
  type ConnectionTypeId,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { CacheRow, ConnectionRow } from '../db/schema.ts';
import { Problem } from '../problem.ts';
import { newId } from '../services/crypto.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { createCache, type OriginPolicy } from '../services/caches.ts';
import { edgePortFor, type EdgeAddress } from '../services/connection-strings.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { findConnectionType } from './catalog/index.ts';
import type { ConnectionTypeDef } from './catalog/types.ts';
import { openSecret, sealSecret, type Keyring } from './keyring.ts';
import { appendEvent } from './events.ts';

const context = (id: string) => `connection:${id}`;

function definition(type: string): ConnectionTypeDef {
  const def = findConnectionType(type as ConnectionTypeId);
  if (!def) throw new Error(`connection type ${type} is not in the catalog`);
  return def;
}

/** Splits a validated form into what may be shown and what is sealed. */
function split(def: ConnectionTypeDef, config: Record<string, unknown>) {
  const visible: Record<string, unknown> = {};
  const secret: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (def.secretFields.includes(key)) secret[key] = value;
    else visible[key] = value;
  }
  return { visible, secret };
}

const setFields = (secret: Record<string, unknown>) =>
  Object.keys(secret).filter(
    (k) => secret[k] !== '' && secret[k] !== undefined && secret[k] !== null,
  );

export function toConnection(row: ConnectionRow): Connection {
  const def = definition(row.type);
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    type: def.id,
    name: row.name,
    config: row.config,
    secretFields: row.secret_fields.filter((f) => def.secretFields.includes(f)),
    passwordVerified: row.password_verified,
    endUser: row.end_user,
    metadata: row.metadata,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export interface SaveConnection {
  workspaceId: string;
  type: ConnectionTypeId;
  name: string;
  /** Already validated against the type's schema and tested. */
  config: Record<string, unknown>;
  /** What the test found: whether the server checked the password (null: not tested here). */
  passwordVerified?: boolean | null | undefined;
  /** The connect session's end_user and metadata; a reconnect without them keeps the old ones. */
  endUser?: ConnectEndUser | null | undefined;
  metadata?: Record<string, unknown> | null | undefined;
  clientId: string | null;
  actorUserId: string | null;
  /** Reconnect: update this connection of the workspace instead of making one. */
  replaceId?: string | null | undefined;
}

/**
 * Creates (or, for a reconnect, updates) a connection inside `tx`, appending its event there too:
 * whoever reads the event log or gets the webhook sees exactly what was committed.
 */
export async function saveConnection(
  tx: Db,
  keyring: Keyring,
  input: SaveConnection,
): Promise<ConnectionRow> {
  const def = definition(input.type);
  const { visible, secret } = split(def, input.config);
  const id = input.replaceId ?? newId('conn');
  const sealed = await sealSecret(
    tx,
    keyring,
    input.workspaceId,
    context(id),
    JSON.stringify(secret),
  );
  let row: ConnectionRow | undefined;
  if (input.replaceId) {
    row = await tx
      .updateTable('connections')
      .set((eb) => ({
        type: input.type,
        config: JSON.stringify(visible),
        secret_fields: setFields(secret),
        secrets: sealed.sealed,
        key_id: sealed.keyId,
        password_verified: input.passwordVerified ?? null,
        ...(input.endUser ? { end_user: JSON.stringify(input.endUser) } : {}),
        ...(input.metadata ? { metadata: JSON.stringify(input.metadata) } : {}),
        version: eb('version', '+', 1),
        updated_at: new Date(),
      }))
      .where('id', '=', id)
      .where('workspace_id', '=', input.workspaceId)
      .returningAll()
      .executeTakeFirst();
    if (!row)
      throw new Problem('connection.not_found', 404, `No connection ${id} in this workspace.`);
  } else {
    row = await tx
      .insertInto('connections')
      .values({
        id,
        workspace_id: input.workspaceId,
        type: input.type,
        name: input.name,
        config: JSON.stringify(visible),
        secret_fields: setFields(secret),
        secrets: sealed.sealed,
        key_id: sealed.keyId,
        password_verified: input.passwordVerified ?? null,
        end_user: input.endUser ? JSON.stringify(input.endUser) : null,
        metadata: input.metadata ? JSON.stringify(input.metadata) : null,
        created_by_client_id: input.clientId,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }
  const action = input.replaceId ? 'connection.updated' : 'connection.created';
  await appendEvent(tx, input.workspaceId, action, {
    connectionId: row.id,
    type: row.type,
    name: row.name,
    passwordVerified: input.passwordVerified ?? null,
    endUser: row.end_user,
    metadata: row.metadata,
  });
  await insertAuditEvent(tx, {
    workspaceId: input.workspaceId,
    actorUserId: input.actorUserId,
    action,
    target: row.id,
    data: { type: row.type, name: row.name, clientId: input.clientId },
  });
  return row;
}

/** The connection if it is in the principal's workspace (404 otherwise); routes check the scope. */
export async function getConnection(
  db: Db,
  principal: Principal,
  id: string,
): Promise<ConnectionRow> {
  const row = await db
    .selectFrom('connections')
    .selectAll()
    .where('id', '=', id)
    .where('workspace_id', '=', principal.workspaceId)
    .executeTakeFirst();
  if (!row)
    throw new Problem('connection.not_found', 404, `No connection ${id} in this workspace.`);
  return row;
}

export async function listConnections(
  db: Db,
  principal: Principal,
  page: { afterId?: string | undefined; limit: number },
): Promise<ConnectionRow[]> {
  let query = db
    .selectFrom('connections')
    .selectAll()
    .where('workspace_id', '=', principal.workspaceId)
    .orderBy('id')
    .limit(page.limit + 1);
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query.execute();
}

export async function deleteConnection(db: Db, principal: Principal, id: string): Promise<void> {
  const row = await getConnection(db, principal, id);
  await db.transaction().execute(async (tx) => {
    await tx.deleteFrom('connections').where('id', '=', row.id).execute();
    await appendEvent(tx, row.workspace_id, 'connection.deleted', {
      connectionId: row.id,
      type: row.type,
      name: row.name,
      endUser: row.end_user,
      metadata: row.metadata,
    });
    await insertAuditEvent(tx, {
      workspaceId: row.workspace_id,
      actorUserId: principal.userId,
      action: 'connection.deleted',
      target: row.id,
      data: { type: row.type, name: row.name, via: principal.kind },
    });
  });
}

/** The full form (visible fields and opened secrets): for re-testing and connection strings only. */
export async function openConnection(
  db: Db,
  keyring: Keyring,
  row: ConnectionRow,
): Promise<Record<string, unknown>> {
  const secret = JSON.parse(
    await openSecret(db, keyring, row.key_id, context(row.id), row.secrets),
  ) as Record<string, unknown>;
  return { ...row.config, ...secret };
}

const enc = encodeURIComponent;

/** An ADO.NET value in double quotes (doubled inside), so `;` or `=` in it stays part of it. */
const adoQuote = (value: string) => `"${value.replace(/"/g, '""')}"`;

/** The origin's own connection string, built from a connection's fields. */
export function originConnectionString(type: ConnectionTypeId, c: Record<string, unknown>): string {
  const host = String(c.host).includes(':') ? `[${String(c.host)}]` : String(c.host);
  const auth = `${enc(String(c.user ?? ''))}${c.password ? `:${enc(String(c.password))}` : ''}`;
  const database = c.database ? `/${enc(String(c.database))}` : '';
  switch (type) {
    case 'postgresql':
      return `postgres://${auth}@${host}:${String(c.port)}${database}?sslmode=${enc(String(c.sslmode ?? 'prefer'))}`;
    case 'mysql':
    case 'mariadb':
      return `${type}://${auth}@${host}:${String(c.port)}${database}`;
    case 'mssql':
      return [
        `Server=${String(c.host)},${String(c.port)}`,
        c.database ? `Database=${adoQuote(String(c.database))}` : '',
        `User Id=${adoQuote(String(c.user ?? ''))}`,
        `Password=${adoQuote(String(c.password ?? ''))}`,
        `Encrypt=${c.encrypt === 'disable' ? 'false' : 'true'}`,
      ]
        .filter(Boolean)
        .join(';');
    case 'redis':
      throw new Error('redis has no connection string through the edge');
  }
}

/** The origin TLS setting a cache in front of this connection should use. */
function originTlsOf(c: Record<string, unknown>) {
  const wanted = String(c.sslmode ?? c.tls ?? c.encrypt ?? 'prefer');
  if (wanted === 'disable') return 'disable' as const;
  if (wanted === 'require' || wanted === 'verify-full') return 'require' as const;
  return 'prefer' as const;
}

/** POST /v1/connections/{id}/cache: a cache for the connection's origin and the string to reach it. */
export async function createCacheForConnection(
  db: Db,
  keyring: Keyring,
  principal: Principal,
  id: string,
  input: {
    name?: string | undefined;
    defaultMode: 'auto' | 'manual' | 'off';
    defaultTtlSeconds: number;
    originTls?: 'disable' | 'prefer' | 'require' | undefined;
  },
  policy: OriginPolicy,
  edge: EdgeAddress,
): Promise<{ cache: CacheRow; connectionString: string }> {
  const row = await getConnection(db, principal, id);
  const def = definition(row.type);
  if (!def.cacheType) {
    throw new Problem(
      'connection.no_cache_type',
      422,
      `A ${def.title} connection cannot be fronted by an Edgegate cache: the edge speaks Postgres, MySQL/MariaDB and SQL Server.`,
    );
  }
  const config = await openConnection(db, keyring, row);
  const cache = await createCache(
    db,
    principal,
    {
      name: input.name ?? row.name,
      type: def.cacheType,
      hostname: String(config.host),
      port: Number(config.port),
      defaultMode: input.defaultMode,
      defaultTtlSeconds: input.defaultTtlSeconds,
      originTls: input.originTls ?? originTlsOf(config),
      description: `From connection ${row.id}`,
    },
    policy,
  );
  const connectionString = toEdgeConnectionString({
    cacheId: cache.id,
    cacheType: cache.type,
    connectionString: originConnectionString(def.id, config),
    edgeHost: edge.host,
    edgePort: edgePortFor(cache.type, edge),
  });
  return { cache, connectionString };
}
