// SQL for Idempotency-Key records.
import { sql } from 'kysely';
import type { Db } from '../store.ts';

/** How long a claimed key may stay "in progress" before another request may take it over. */
export const CLAIM_LEASE_SECONDS = 60;

/** Claims the key for this request; false when someone holds it already. */
export async function claimIdempotencyKey(
  db: Db,
  row: { credential: string; key: string; requestHash: string; expiresAt: Date },
): Promise<boolean> {
  const result = await db
    .insertInto('idempotency_keys')
    .values({
      credential: row.credential,
      key: row.key,
      request_hash: row.requestHash,
      expires_at: row.expiresAt,
    })
    .onConflict((oc) =>
      // An expired record is reclaimed as if it never existed, and so is a claim whose request never
      // finished within its lease (the node running it crashed): otherwise the key would answer
      // "in progress" until the record expires a day later.
      oc
        .columns(['credential', 'key'])
        .doUpdateSet({
          request_hash: row.requestHash,
          status: null,
          headers: null,
          body: null,
          expires_at: row.expiresAt,
          created_at: sql<Date>`now()`,
        })
        .where((eb) =>
          eb.or([
            eb('idempotency_keys.expires_at', '<', sql<Date>`now()`),
            eb.and([
              eb('idempotency_keys.status', 'is', null),
              eb(
                'idempotency_keys.created_at',
                '<',
                sql<Date>`now() - make_interval(secs => ${CLAIM_LEASE_SECONDS})`,
              ),
            ]),
          ]),
        ),
    )
    .executeTakeFirst();
  return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

export async function findIdempotencyRecord(db: Db, credential: string, key: string) {
  return db
    .selectFrom('idempotency_keys')
    .select(['request_hash', 'status', 'headers', 'body'])
    .where('credential', '=', credential)
    .where('key', '=', key)
    .executeTakeFirst();
}

export async function completeIdempotencyRecord(
  db: Db,
  credential: string,
  key: string,
  response: { status: number; headers: Record<string, string>; body: string },
) {
  await db
    .updateTable('idempotency_keys')
    .set({
      status: response.status,
      headers: JSON.stringify(response.headers),
      body: response.body,
    })
    .where('credential', '=', credential)
    .where('key', '=', key)
    .execute();
}

export async function releaseIdempotencyKey(db: Db, credential: string, key: string) {
  await db
    .deleteFrom('idempotency_keys')
    .where('credential', '=', credential)
    .where('key', '=', key)
    .execute();
}

export async function deleteExpiredIdempotencyKeys(db: Db, before: Date) {
  await db.deleteFrom('idempotency_keys').where('expires_at', '<', before).execute();
}
