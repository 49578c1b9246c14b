// Connect sessions: minted by a partner's backend, opened by its user on our hosted page, completed
// once (atomically) with a tested connection, and handed back as a single-use code that only a
// credential of the same workspace (and the same OAuth app) can exchange.
import {
  connectSessionCreateSchema,
  type ConnectSession,
  type ConnectSessionCreate,
  type ConnectionTypeId,
} from '@edgegate/contract';
import { sql } from 'kysely';
import type { Db } from '../db/store.ts';
import type { ConnectionRow, ConnectSessionRow } from '../db/schema.ts';
import { Problem } from '../problem.ts';
import { newId, newSecret, sha256 } from '../services/crypto.ts';
import { parseInput } from '../services/validation.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { saveConnection } from './connections.ts';
import type { Keyring } from './keyring.ts';

export const CODE_TTL_SECONDS = 600;
/** Pending, unexpired sessions a workspace may hold: each link can make Edgegate dial out. */
export const MAX_PENDING_SESSIONS = 100;
const TOKEN_PREFIX = 'egct_';
const CODE_PREFIX = 'egcc_';

/** The origins an OAuth app registered: those of its redirect URIs and homepage. */
async function appOrigins(db: Db, clientId: string): Promise<string[]> {
  const app = await db
    .selectFrom('oauth_apps')
    .select(['redirect_uris', 'homepage_url'])
    .where('client_id', '=', clientId)
    .executeTakeFirst();
  if (!app) return [];
  const origins = new Set<string>();
  for (const uri of [...app.redirect_uris, app.homepage_url ?? '']) {
    try {
      const origin = new URL(uri).origin;
      if (origin.startsWith('http')) origins.add(origin);
    } catch {
      // a custom scheme (native app) has no web origin
    }
  }
  return [...origins];
}

/**
 * Whether an origin can be written in `frame-ancestors`: a scheme and a plain host name or IPv4
 * address (CSP has no syntax for IPv6 literals, so an `[::1]` partner cannot frame the page).
 */
function isCspSource(origin: string): boolean {
  return /^https?:\/\/[a-z0-9.-]+(:\d+)?$/.test(origin);
}

export function sessionStatus(row: ConnectSessionRow, now = new Date()): ConnectSession['status'] {
  if (row.status === 'pending' && row.expires_at <= now) return 'expired';
  return row.status;
}

export function toConnectSession(row: ConnectSessionRow): ConnectSession {
  return {
    id: row.id,
    status: sessionStatus(row),
    types: row.types as ConnectionTypeId[],
    name: row.name,
    redirect_url: row.redirect_url,
    connection: row.connection_id,
    result_connection: row.result_connection_id,
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    finished_at: row.finished_at?.toISOString() ?? null,
    end_user: row.end_user,
    metadata: row.metadata,
  };
}

export async function createConnectSession(
  db: Db,
  principal: Principal,
  input: ConnectSessionCreate,
  publicUrl: string,
): Promise<{ row: ConnectSessionRow; token: string; pageUrl: string }> {
  const fields = parseInput(connectSessionCreateSchema, input);
  let types = fields.whitelist ?? [fields.type as ConnectionTypeId];
  const redirectOrigin = new URL(fields.redirect_url).origin;
  let frameOrigins = [redirectOrigin].filter(isCspSource);
  if (principal.clientId) {
    const registered = await appOrigins(db, principal.clientId);
    if (!registered.includes(redirectOrigin)) {
      throw new Problem(
        'connect.redirect_not_registered',
        422,
        `redirect_url must be on one of this app's registered origins (${registered.join(', ') || 'none'}).`,
        {
          errors: [{ path: 'redirect_url', message: 'is not on a registered origin of this app' }],
        },
      );
    }
    frameOrigins = registered.filter(isCspSource);
  }
  if (fields.connection) {
    const existing = await db
      .selectFrom('connections')
      .select(['id', 'type'])
      .where('id', '=', fields.connection)
      .where('workspace_id', '=', principal.workspaceId)
      .executeTakeFirst();
    if (!existing)
      throw new Problem(
        'connection.not_found',
        404,
        `No connection ${fields.connection} in this workspace.`,
      );
    if (!types.includes(existing.type as ConnectionTypeId)) {
      throw new Problem(
        'connect.type_mismatch',
        422,
        `Connection ${existing.id} is a ${existing.type} connection; allow that type to reconnect it.`,
        { errors: [{ path: 'connection', message: `is a ${existing.type} connection` }] },
      );
    }
    // A reconnect keeps the connection's type: caches made from it assume that database.
    types = [existing.type as ConnectionTypeId];
  }
  const pending = await db
    .selectFrom('connect_sessions')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('workspace_id', '=', principal.workspaceId)
    .where('status', '=', 'pending')
    .where('expires_at', '>', new Date())
    .executeTakeFirstOrThrow();
  if (Number(pending.n) >= MAX_PENDING_SESSIONS) {
    throw new Problem(
      'connect.too_many_sessions',
      429,
      `This workspace already has ${MAX_PENDING_SESSIONS} connect sessions waiting. Use one, or wait until they expire.`,
    );
  }
  const token = newSecret(TOKEN_PREFIX);
  const row = await db
    .insertInto('connect_sessions')
    .values({
      id: newId('cs'),
      token_hash: sha256(token),
      workspace_id: principal.workspaceId,
      client_id: principal.clientId,
      created_by: `${principal.kind}:${principal.credentialId}`,
      types,
      name: fields.name,
      redirect_url: fields.redirect_url,
      frame_origins: frameOrigins,
      state: fields.state ?? null,
      theme: fields.theme,
      connection_id: fields.connection ?? null,
      end_user: fields.end_user ? JSON.stringify(fields.end_user) : null,
      metadata: fields.metadata ? JSON.stringify(fields.metadata) : null,
      expires_at: new Date(Date.now() + fields.ttlSeconds * 1000),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { row, token, pageUrl: connectPageUrl(publicUrl, token) };
}

/** The session behind a page's token, whatever its state (the page explains each). */
export async function findSessionByToken(
  db: Db,
  token: string,
): Promise<ConnectSessionRow | undefined> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 100) return undefined;
  return db
    .selectFrom('connect_sessions')
    .selectAll()
    .where('token_hash', '=', sha256(token))
    .executeTakeFirst();
}

/** GET /v1/connect/sessions/{token}: only the workspace that made it may look (404 otherwise). */
export async function getSessionForPrincipal(
  db: Db,
  principal: Principal,
  token: string,
): Promise<ConnectSessionRow> {
  const row = await findSessionByToken(db, token);
  if (!row || row.workspace_id !== principal.workspaceId)
    throw new Problem('connect.session_not_found', 404, 'No connect session with this token.');
  return row;
}

export class SessionClosedError extends Error {
  override name = 'SessionClosedError';
}

/**
 * Completes a pending, unexpired session with a tested connection: the status flips with a
 * compare-and-set, so of two racing submissions exactly one saves a connection and gets a code.
 */
export async function completeSession(
  db: Db,
  keyring: Keyring,
  session: ConnectSessionRow,
  type: ConnectionTypeId,
  config: Record<string, unknown>,
  passwordVerified: boolean,
): Promise<{ code: string; connection: ConnectionRow }> {
  const code = newSecret(CODE_PREFIX);
  return db.transaction().execute(async (tx) => {
    const claimed = await sql<{ id: string }>`
      UPDATE connect_sessions SET status = 'completed', finished_at = now(), code_hash = ${sha256(code)},
        code_expires_at = now() + make_interval(secs => ${CODE_TTL_SECONDS})
      WHERE id = ${session.id} AND status = 'pending' AND expires_at > now()
      RETURNING id`.execute(tx);
    if (claimed.rows.length === 0)
      throw new SessionClosedError('this connect link was already used or has expired');
    const connection = await saveConnection(tx, keyring, {
      workspaceId: session.workspace_id,
      type,
      name: session.name,
      config,
      passwordVerified,
      endUser: session.end_user,
      metadata: session.metadata,
      clientId: session.client_id,
      actorUserId: null,
      replaceId: session.connection_id,
    });
    await tx
      .updateTable('connect_sessions')
      .set({ result_connection_id: connection.id })
      .where('id', '=', session.id)
      .execute();
    return { code, connection };
  });
}

export async function cancelSession(db: Db, session: ConnectSessionRow): Promise<boolean> {
  const result = await db
    .updateTable('connect_sessions')
    .set({ status: 'cancelled', finished_at: new Date() })
    .where('id', '=', session.id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * POST /v1/connect/exchange: the code is consumed by one conditional UPDATE (never twice), and
 * only by a credential of the session's workspace and, when an OAuth app made the session, of
 * that app. Anything else is indistinguishable from a code that never existed (404).
 */
export async function exchangeCode(
  db: Db,
  principal: Principal,
  code: string,
): Promise<ConnectionRow> {
  const notFound = () =>
    new Problem(
      'connect.code_invalid',
      404,
      'This code is unknown, expired, or was already exchanged. Codes are single-use and live 10 minutes.',
    );
  if (!code.startsWith(CODE_PREFIX)) throw notFound();
  const used = await sql<{ connection_id: string | null }>`
    UPDATE connect_sessions SET code_used_at = now()
    WHERE code_hash = ${sha256(code)} AND workspace_id = ${principal.workspaceId}
      AND code_used_at IS NULL AND code_expires_at > now()
      AND (client_id IS NULL OR client_id = ${principal.clientId ?? ''})
    RETURNING result_connection_id AS connection_id`.execute(db);
  const connectionId = used.rows[0]?.connection_id;
  if (!connectionId) throw notFound();
  const row = await db
    .selectFrom('connections')
    .selectAll()
    .where('id', '=', connectionId)
    .executeTakeFirst();
  if (!row) throw notFound();
  return row;
}

/** The hosted page's address for a session token. */
export function connectPageUrl(publicUrl: string, token: string): string {
  return `${publicUrl}/connect/${token}`;
}

/** Sessions whose link and code both stopped working before `before`. */
export async function deleteFinishedConnectSessions(db: Db, before: Date): Promise<void> {
  await db
    .deleteFrom('connect_sessions')
    .where('expires_at', '<', before)
    .where((eb) => eb.or([eb('code_expires_at', 'is', null), eb('code_expires_at', '<', before)]))
    .execute();
}
