// SQL behind the OAuth engine's adapter: hashed bearer artefacts, grants and other payloads.
import { sql, type SelectQueryBuilder } from 'kysely';
import { compiledOnce, type Param } from '../compiled-once.ts';
import type { Db } from '../store.ts';
import type { Database } from '../schema.ts';
import { auditOwnedWebhooks } from './webhook-owners.ts';

type Json = Record<string, unknown>;

export async function upsertToken(
  db: Db,
  row: { idHash: string; kind: string; grantId: string | null; payload: Json; expiresAt: Date },
) {
  await db
    .insertInto('oauth_tokens')
    .values({
      id_hash: row.idHash,
      kind: row.kind,
      grant_id: row.grantId,
      payload: JSON.stringify(row.payload),
      expires_at: row.expiresAt,
    })
    .onConflict((oc) =>
      oc
        .column('id_hash')
        .doUpdateSet({ payload: JSON.stringify(row.payload), expires_at: row.expiresAt }),
    )
    .execute();
}

/** The grant of a token that was already redeemed, if it was: presenting it again is a replay. */
export async function findRedeemedTokenGrant(db: Db, idHash: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('oauth_tokens')
    .select('grant_id')
    .where('id_hash', '=', idHash)
    .where('consumed_at', 'is not', null)
    .executeTakeFirst();
  return row?.grant_id ?? undefined;
}

const selectTokenWithGrant = compiledOnce((db, p: Param<{ idHash: string; kind: string }>) =>
  db
    .selectFrom('oauth_tokens as t')
    .leftJoin('oauth_grants as g', 'g.id', 't.grant_id')
    .leftJoin('memberships as m', (join) =>
      join.onRef('m.workspace_id', '=', 'g.workspace_id').onRef('m.user_id', '=', 'g.user_id'),
    )
    .select([
      't.payload',
      // Measured on the store's clock, which set consumed_at.
      sql<number | null>`extract(epoch from now() - t.consumed_at) * 1000`.as('consumedMsAgo'),
      't.grant_id',
      'g.payload as grantPayload',
      'g.user_id as grantUserId',
      'm.role',
    ])
    .where('t.id_hash', '=', p('idHash'))
    .where('t.kind', '=', p('kind'))
    .compile(),
);

/**
 * A token with its grant and whether the grant's user still belongs to the grant's workspace:
 * the three reads of a code or refresh exchange in one round trip.
 */
export async function findTokenWithGrant(db: Db, idHash: string, kind: string) {
  return (await selectTokenWithGrant(db, { idHash, kind })).rows[0];
}

/** Marks a token used if nobody did before: the one race-safe step of code and refresh grants. */
export async function consumeToken(db: Db, idHash: string): Promise<boolean> {
  const result = await db
    .updateTable('oauth_tokens')
    .set({ consumed_at: sql`now()` })
    .where('id_hash', '=', idHash)
    .where('consumed_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteToken(db: Db, idHash: string) {
  await db.deleteFrom('oauth_tokens').where('id_hash', '=', idHash).execute();
}

export async function deleteTokensOfGrant(db: Db, grantId: string, kind: string) {
  await db
    .deleteFrom('oauth_tokens')
    .where('grant_id', '=', grantId)
    .where('kind', '=', kind)
    .execute();
}

/**
 * Stores a grant. The workspace is written only when the row is created, so a grant saved from
 * the consent page is never visible unbound and a later save cannot move it. Returns whether this
 * call created the row.
 */
export async function upsertGrant(
  db: Db,
  row: {
    id: string;
    appId: string;
    userId: string;
    workspaceId: string | null;
    cacheIds?: string[] | null;
    scopes: string[];
    payload: Json;
    expiresAt: Date;
  },
): Promise<boolean> {
  const saved = await db
    .insertInto('oauth_grants')
    .values({
      id: row.id,
      app_id: row.appId,
      user_id: row.userId,
      workspace_id: row.workspaceId,
      cache_ids: row.cacheIds ?? null,
      scopes: row.scopes,
      payload: JSON.stringify(row.payload),
      expires_at: row.expiresAt,
    })
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        scopes: row.scopes,
        payload: JSON.stringify(row.payload),
        expires_at: row.expiresAt,
      }),
    )
    // xmax is 0 only on a row version this statement inserted (not on one it updated).
    .returning(sql<boolean>`xmax = 0`.as('created'))
    .executeTakeFirstOrThrow();
  return saved.created;
}

export async function findGrantPayload(db: Db, id: string) {
  const row = await db
    .selectFrom('oauth_grants')
    .select('payload')
    .where('id', '=', id)
    .executeTakeFirst();
  return row?.payload;
}

export async function upsertPayload(
  db: Db,
  row: {
    model: string;
    id: string;
    payload: Json;
    grantId: string | null;
    uid: string | null;
    userCode: string | null;
    expiresAt: Date | null;
  },
) {
  const values = {
    payload: JSON.stringify(row.payload),
    grant_id: row.grantId,
    uid: row.uid,
    user_code: row.userCode,
    expires_at: row.expiresAt,
  };
  await db
    .insertInto('oauth_payloads')
    .values({ model: row.model, id: row.id, ...values })
    .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet(values))
    .execute();
}

export async function findPayload(
  db: Db,
  model: string,
  by: { id?: string; uid?: string; userCode?: string },
) {
  let query = db
    .selectFrom('oauth_payloads')
    .select(['id', 'payload', 'consumed_at'])
    .where('model', '=', model)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]));
  if (by.id !== undefined) query = query.where('id', '=', by.id);
  if (by.uid !== undefined) query = query.where('uid', '=', by.uid);
  if (by.userCode !== undefined) query = query.where('user_code', '=', by.userCode);
  return query.executeTakeFirst();
}

export async function consumePayload(db: Db, model: string, id: string): Promise<boolean> {
  const result = await db
    .updateTable('oauth_payloads')
    .set({ consumed_at: sql`now()` })
    .where('model', '=', model)
    .where('id', '=', id)
    .where('consumed_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deletePayload(db: Db, model: string, id: string) {
  await db.deleteFrom('oauth_payloads').where('model', '=', model).where('id', '=', id).execute();
}

export async function deletePayloadsOfGrant(db: Db, model: string, grantId: string) {
  await db
    .deleteFrom('oauth_payloads')
    .where('model', '=', model)
    .where('grant_id', '=', grantId)
    .execute();
}

export async function deleteExpiredOAuthRows(db: Db, before: Date) {
  await db.deleteFrom('oauth_tokens').where('expires_at', '<', before).execute();
  await db.deleteFrom('oauth_payloads').where('expires_at', '<', before).execute();
  const expired = () => db.selectFrom('oauth_grants').select('id').where('expires_at', '<', before);
  await auditOwnedWebhooks(db, (eb) => eb('webhooks.grant_id', 'in', expired()), {
    reason: 'grant expired',
    actorUserId: null,
  });
  await db.deleteFrom('oauth_grants').where('expires_at', '<', before).execute();
}

type TokenRow = {
  idHash: string;
  kind: string;
  grantId: string | null;
  payload: Record<string, unknown>;
  expiresAt: Date;
};

/** The columns a new token writes, with the type each value is cast to. */
const TOKEN_COLUMNS = {
  id_hash: 'text',
  kind: 'text',
  grant_id: 'text',
  payload: 'jsonb',
  expires_at: 'timestamptz',
} as const;
type TokenColumn = keyof typeof TOKEN_COLUMNS;
const tokenColumnNames = Object.keys(TOKEN_COLUMNS) as TokenColumn[];

function tokenValues(row: TokenRow): Record<TokenColumn, string | null> {
  return {
    id_hash: row.idHash,
    kind: row.kind,
    grant_id: row.grantId,
    payload: JSON.stringify(row.payload),
    expires_at: row.expiresAt.toISOString(),
  };
}

/** The name of the parameter that carries `column` of the `i`th new token. */
const tokenParam = (column: TokenColumn, i: number) => `${column}.${i}`;

/** The insert (with the redemption, if `redeem`) of `count` new tokens, compiled once per shape. */
function tokenInsert(redeem: boolean, count: number) {
  return compiledOnce((db, p: Param<Record<string, string | null | undefined>>) => {
    const rows = Array.from(
      { length: count },
      (_, i) =>
        sql`(${sql.join(
          tokenColumnNames.map(
            (column) => sql`${p(tokenParam(column, i))}::${sql.raw(TOKEN_COLUMNS[column])}`,
          ),
        )})`,
    );
    const columns = sql.raw(tokenColumnNames.join(', '));
    const insert = sql`
      INSERT INTO oauth_tokens (${columns})
      SELECT v.* FROM (VALUES ${sql.join(rows)}) AS v (${columns})`;
    return (
      redeem
        ? sql<{ id_hash: string }>`
            WITH redeemed AS (
              UPDATE oauth_tokens SET consumed_at = now()
              WHERE id_hash = ${p('consume')} AND consumed_at IS NULL
              RETURNING id_hash
            )
            ${insert}
            WHERE EXISTS (SELECT 1 FROM redeemed)
            RETURNING id_hash`
        : sql<{ id_hash: string }>`${insert} RETURNING id_hash`
    ).compile(db);
  });
}
/** By shape: a token request saves one or two new tokens, so this holds a handful of entries. */
const tokenInserts = new Map<string, ReturnType<typeof tokenInsert>>();

/**
 * Redeems `consume` (if given) and stores the new tokens in one statement: either the token was
 * still unused and every new row is written, or nothing is. Returns whether it went through.
 */
export async function redeemAndInsertTokens(
  db: Db,
  consume: string | undefined,
  rows: TokenRow[],
): Promise<boolean> {
  if (rows.length === 0) return consume ? consumeToken(db, consume) : true;
  const shape = `${consume === undefined ? 'insert' : 'redeem'}:${rows.length}`;
  let statement = tokenInserts.get(shape);
  if (!statement) {
    statement = tokenInsert(consume !== undefined, rows.length);
    tokenInserts.set(shape, statement);
  }
  const params: Record<string, string | null | undefined> = { consume };
  rows.forEach((row, i) => {
    for (const [column, value] of Object.entries(tokenValues(row))) {
      params[tokenParam(column as TokenColumn, i)] = value;
    }
  });
  const inserted = await statement(db, params);
  return inserted.rows.length === rows.length;
}

export type GrantIdQuery = SelectQueryBuilder<Database, 'oauth_grants', { id: string }>;

export interface GrantRevocation {
  /** Why, in the audit log: `revoked_by_user`, `code_replay`, `member_removed`… */
  reason: string;
  actorUserId: string | null;
}

/**
 * Deletes the grants `which` selects, with every token and device code issued under them, and
 * records each as `grant.revoked` (with the reason) in its workspace's audit log: the one way a
 * grant ends. Returns how many grants there were. Run it in a transaction.
 */
export async function deleteGrantsWhere(
  db: Db,
  which: (grants: GrantIdQuery) => GrantIdQuery,
  revocation: GrantRevocation,
): Promise<number> {
  const grantIds = () => which(db.selectFrom('oauth_grants').select('id'));
  // API keys the app minted with the grant's tokens (the Upstash pattern) end with the grant.
  const mintedKeyIds = () =>
    db
      .selectFrom('api_keys')
      .select('api_keys.id')
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('oauth_grants as g')
            .innerJoin('oauth_apps as a', 'a.id', 'g.app_id')
            .select('g.id')
            .whereRef('g.user_id', '=', 'api_keys.user_id')
            .whereRef('g.workspace_id', '=', 'api_keys.workspace_id')
            .whereRef('a.client_id', '=', 'api_keys.created_by_client_id')
            .where('g.id', 'in', grantIds()),
        ),
      );
  // The app's webhooks, and those of the keys it minted, go with them (ON DELETE CASCADE).
  await auditOwnedWebhooks(
    db,
    (eb) =>
      eb.or([
        eb('webhooks.grant_id', 'in', grantIds()),
        eb('webhooks.api_key_id', 'in', mintedKeyIds()),
      ]),
    { reason: `grant ${revocation.reason}`, actorUserId: revocation.actorUserId },
  );
  await db.deleteFrom('oauth_tokens').where('grant_id', 'in', grantIds()).execute();
  await db.deleteFrom('api_keys').where('id', 'in', mintedKeyIds()).execute();
  await db
    .deleteFrom('oauth_payloads')
    .where('model', '=', 'DeviceCode')
    .where('grant_id', 'in', grantIds())
    .execute();
  // The grant row is read as it is deleted, so the audit names its workspace and app.
  const audited = await db
    .with('revoked', (qb) =>
      qb
        .deleteFrom('oauth_grants')
        .where('id', 'in', grantIds())
        .returning(['id', 'workspace_id', 'app_id']),
    )
    .insertInto('audit_events')
    .columns(['workspace_id', 'actor_user_id', 'action', 'target', 'data'])
    .expression((eb) =>
      eb
        .selectFrom('revoked')
        .innerJoin('oauth_apps', 'oauth_apps.id', 'revoked.app_id')
        .select([
          'revoked.workspace_id',
          sql<string | null>`${revocation.actorUserId}::text`.as('actor_user_id'),
          sql<string>`'grant.revoked'`.as('action'),
          'revoked.id',
          sql<string>`jsonb_build_object('reason', ${revocation.reason}::text, 'app', oauth_apps.name, 'clientId', oauth_apps.client_id)`.as(
            'data',
          ),
        ]),
    )
    .executeTakeFirst();
  return Number(audited.numInsertedOrUpdatedRows ?? 0n);
}

/** Revokes what a person authorized inside a workspace they no longer belong to. */
export async function deleteGrantsOfMember(db: Db, workspaceId: string, userId: string) {
  await deleteGrantsWhere(
    db,
    (grants) => grants.where('workspace_id', '=', workspaceId).where('user_id', '=', userId),
    { reason: 'member_removed', actorUserId: null },
  );
}
