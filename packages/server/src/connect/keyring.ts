// Envelope encryption for stored secrets: each workspace has a random data key (AES-256-GCM),
// stored wrapped by a key-encryption key derived from the root secret; every sealed value names
// the data key that sealed it, so rotation can proceed row by row while everything stays readable.
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/store.ts';
import { deriveKey, newId, seal, unseal } from '../services/crypto.ts';

interface RootKey {
  id: string;
  kek: Buffer;
}

export interface Keyring {
  /** Wraps new data keys. */
  current: RootKey;
  /** Root keys that may still wrap stored data keys (after EDGEGATE_SECRET changed). */
  previous: RootKey[];
  /** Unwrapped data keys by id: every read needs one, and they never change. */
  dataKeys: Map<string, Buffer>;
}

function rootKey(secret: string): RootKey {
  const kek = deriveKey(secret, 'data-key-wrapping');
  return { id: `rk_${createHash('sha256').update(kek).digest('base64url').slice(0, 12)}`, kek };
}

export function createKeyring(secret: string, previousSecret?: string): Keyring {
  const current = rootKey(secret);
  const previous = previousSecret
    ? [rootKey(previousSecret)].filter((k) => k.id !== current.id)
    : [];
  return { current, previous, dataKeys: new Map() };
}

const wrapContext = (keyId: string, workspaceId: string) => `data_key:${keyId}:${workspaceId}`;

function unwrap(
  keyring: Keyring,
  row: { id: string; workspace_id: string; wrapped_key: string; root_key_id: string },
): Buffer {
  const root = [keyring.current, ...keyring.previous].find((k) => k.id === row.root_key_id);
  if (!root) {
    throw new Error(
      `data key ${row.id} is wrapped by root key ${row.root_key_id}, which is neither EDGEGATE_SECRET nor EDGEGATE_PREVIOUS_SECRET`,
    );
  }
  return Buffer.from(
    unseal(root.kek, row.wrapped_key, wrapContext(row.id, row.workspace_id)),
    'base64url',
  );
}

async function dataKey(db: Db, keyring: Keyring, keyId: string): Promise<Buffer> {
  const known = keyring.dataKeys.get(keyId);
  if (known) return known;
  const row = await db
    .selectFrom('data_keys')
    .select(['id', 'workspace_id', 'wrapped_key', 'root_key_id'])
    .where('id', '=', keyId)
    .executeTakeFirstOrThrow();
  const key = unwrap(keyring, row);
  keyring.dataKeys.set(keyId, key);
  return key;
}

/** The workspace's active data key, made on first use (two racing creators agree on one). */
async function activeKey(db: Db, keyring: Keyring, workspaceId: string) {
  const found = await db
    .selectFrom('data_keys')
    .select('id')
    .where('workspace_id', '=', workspaceId)
    .where('active', '=', true)
    .executeTakeFirst();
  if (found) return { id: found.id, key: await dataKey(db, keyring, found.id) };
  const id = newId('dk');
  const key = randomBytes(32);
  await sql`INSERT INTO data_keys (id, workspace_id, wrapped_key, root_key_id)
    VALUES (${id}, ${workspaceId}, ${seal(keyring.current.kek, key.toString('base64url'), wrapContext(id, workspaceId))}, ${keyring.current.id})
    ON CONFLICT (workspace_id) WHERE active DO NOTHING`.execute(db);
  return activeKey(db, keyring, workspaceId);
}

/** Seals `plaintext` for one row (`context`, e.g. `connection:<id>`) under the workspace's key. */
export async function sealSecret(
  db: Db,
  keyring: Keyring,
  workspaceId: string,
  context: string,
  plaintext: string,
): Promise<{ keyId: string; sealed: string }> {
  const { id, key } = await activeKey(db, keyring, workspaceId);
  return { keyId: id, sealed: seal(key, plaintext, context) };
}

export async function openSecret(
  db: Db,
  keyring: Keyring,
  keyId: string,
  context: string,
  sealed: string,
): Promise<string> {
  return unseal(await dataKey(db, keyring, keyId), sealed, context);
}

export interface RotationReport {
  rewrappedKeys: number;
  newKeys: number;
  resealedConnections: number;
  resealedWebhooks: number;
  resealedCacheCredentials: number;
  retiredKeys: number;
}

/** The tables whose rows carry a sealed secret and the key that sealed it. */
const SEALED = [
  { table: 'connections', column: 'secrets', keyColumn: 'key_id', context: 'connection' },
  { table: 'webhooks', column: 'secret', keyColumn: 'key_id', context: 'webhook' },
  {
    table: 'caches',
    column: 'replication_secret',
    keyColumn: 'replication_key_id',
    context: 'cache-replication',
  },
] as const;

/**
 * Rotation without downtime: (1) data keys wrapped by a previous root key are re-wrapped by the
 * current one; (2) each workspace gets a new active data key (new writes use it at once);
 * (3) every row sealed with an older key is re-sealed, one compare-and-set update at a time, so
 * a concurrent write is never overwritten; (4) keys no row uses any more are deleted.
 */
export async function rotateKeys(
  db: Db,
  keyring: Keyring,
  progress: (message: string) => void = () => {},
): Promise<RotationReport> {
  const report: RotationReport = {
    rewrappedKeys: 0,
    newKeys: 0,
    resealedConnections: 0,
    resealedWebhooks: 0,
    resealedCacheCredentials: 0,
    retiredKeys: 0,
  };
  const stale = await db
    .selectFrom('data_keys')
    .select(['id', 'workspace_id', 'wrapped_key', 'root_key_id'])
    .where('root_key_id', '!=', keyring.current.id)
    .execute();
  for (const row of stale) {
    const key = unwrap(keyring, row);
    await db
      .updateTable('data_keys')
      .set({
        wrapped_key: seal(
          keyring.current.kek,
          key.toString('base64url'),
          wrapContext(row.id, row.workspace_id),
        ),
        root_key_id: keyring.current.id,
      })
      .where('id', '=', row.id)
      .where('root_key_id', '=', row.root_key_id)
      .execute();
    report.rewrappedKeys++;
  }
  if (stale.length) progress(`re-wrapped ${stale.length} data keys with the current root key`);

  const active = await db
    .selectFrom('data_keys')
    .select(['id', 'workspace_id'])
    .where('active', '=', true)
    .execute();
  for (const old of active) {
    await db.transaction().execute(async (tx) => {
      const retired = await tx
        .updateTable('data_keys')
        .set({ active: false, retired_at: new Date() })
        .where('id', '=', old.id)
        .where('active', '=', true)
        .executeTakeFirst();
      if (retired.numUpdatedRows === 0n) return;
      const id = newId('dk');
      const key = randomBytes(32);
      await tx
        .insertInto('data_keys')
        .values({
          id,
          workspace_id: old.workspace_id,
          wrapped_key: seal(
            keyring.current.kek,
            key.toString('base64url'),
            wrapContext(id, old.workspace_id),
          ),
          root_key_id: keyring.current.id,
        })
        .execute();
      report.newKeys++;
    });
  }
  progress(`made ${report.newKeys} new data keys`);

  for (const { table, column, keyColumn, context } of SEALED) {
    const rows = await sql<{ id: string; workspace_id: string; key_id: string; sealed: string }>`
      SELECT t.id, t.workspace_id, t.${sql.ref(keyColumn)} AS key_id, t.${sql.ref(column)} AS sealed
      FROM ${sql.table(table)} t JOIN data_keys k ON k.id = t.${sql.ref(keyColumn)}
      WHERE NOT k.active`.execute(db);
    let done = 0;
    for (const row of rows.rows) {
      const plaintext = await openSecret(
        db,
        keyring,
        row.key_id,
        `${context}:${row.id}`,
        row.sealed,
      );
      const fresh = await sealSecret(
        db,
        keyring,
        row.workspace_id,
        `${context}:${row.id}`,
        plaintext,
      );
      const updated = await sql`UPDATE ${sql.table(table)}
        SET ${sql.ref(column)} = ${fresh.sealed}, ${sql.ref(keyColumn)} = ${fresh.keyId}
        WHERE id = ${row.id} AND ${sql.ref(keyColumn)} = ${row.key_id} AND ${sql.ref(column)} = ${row.sealed}`.execute(
        db,
      );
      if (Number(updated.numAffectedRows ?? 0n) > 0) done++;
      if (done % 500 === 0 && done > 0)
        progress(`re-sealed ${done} of ${rows.rows.length} ${table}`);
    }
    if (table === 'connections') report.resealedConnections = done;
    else if (table === 'webhooks') report.resealedWebhooks = done;
    else report.resealedCacheCredentials = done;
    progress(`re-sealed ${done} ${table}`);
  }

  const retired = await sql`DELETE FROM data_keys k WHERE NOT k.active
    AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.key_id = k.id)
    AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.key_id = k.id)
    AND NOT EXISTS (SELECT 1 FROM caches c WHERE c.replication_key_id = k.id)`.execute(db);
  report.retiredKeys = Number(retired.numAffectedRows ?? 0n);
  for (const id of [...keyring.dataKeys.keys()]) keyring.dataKeys.delete(id);
  progress(`deleted ${report.retiredKeys} retired data keys`);
  return report;
}
