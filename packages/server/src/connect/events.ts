// The per-workspace event log: appended in the same transaction as the change it records, queued
// for every matching webhook there too, and replayable by cursor (GET /v1/events).
import type { EventEmitter } from 'node:events';
import type { WorkspaceEvent } from '@edgegate/contract';
import { sql } from 'kysely';
import type { Db } from '../db/store.ts';
import type { WorkspaceEventRow } from '../db/schema.ts';
import { newId } from '../services/crypto.ts';

export type EventType = WorkspaceEvent['type'];

/** Which scope lets a credential read an event type. */
export const EVENT_SCOPE: Record<EventType, string> = {
  'connection.created': 'connections:read',
  'connection.updated': 'connections:read',
  'connection.deleted': 'connections:read',
  'cache.created': 'caches:read',
  'cache.replication_slot_large': 'caches:read',
};

/**
 * Appends an event inside `tx`. Taking the workspace row's lock to number it means events of one
 * workspace commit in sequence order, so a reader that follows `seq` never skips one that
 * committed after a later-numbered one. A delivery row is queued for each subscribed webhook.
 */
export async function appendEvent(
  tx: Db,
  workspaceId: string,
  type: EventType,
  data: Record<string, unknown>,
): Promise<WorkspaceEventRow> {
  const { rows } = await sql<{ seq: string }>`
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = ${workspaceId} RETURNING event_seq AS seq`.execute(
    tx,
  );
  const seq = rows[0]?.seq;
  if (seq === undefined) throw new Error(`no workspace ${workspaceId}`);
  const row = await tx
    .insertInto('workspace_events')
    .values({ id: newId('evt'), workspace_id: workspaceId, seq, type, data: JSON.stringify(data) })
    .returningAll()
    .executeTakeFirstOrThrow();
  // One delivery per subscribed webhook whose owning credential still works (a revoked one took
  // its webhooks with it; an expired one, or an API key of someone who left or was disabled, gets
  // nothing new).
  // The delivery id joins the webhook's and the event's. The endpoints are locked (in id order) so
  // one deleted concurrently, with its credential say, is skipped instead of failing this insert
  // on its foreign key, and so the change that appends the event never fails for it.
  await sql`INSERT INTO webhook_deliveries (id, webhook_id, event_id)
    SELECT 'dlv_' || w.id || '_' || ${row.id}, w.id, ${row.id} FROM webhooks w
    WHERE w.workspace_id = ${workspaceId} AND (w.events IS NULL OR ${type} = ANY (w.events))
      AND NOT EXISTS (SELECT 1 FROM oauth_grants g
        WHERE g.id = w.grant_id AND g.expires_at <= now())
      AND NOT EXISTS (SELECT 1 FROM service_tokens t
        WHERE t.id = w.service_token_id AND t.expires_at <= now())
      AND NOT EXISTS (SELECT 1 FROM api_keys k
        WHERE k.id = w.api_key_id AND (k.expires_at <= now() OR NOT EXISTS (
          SELECT 1 FROM memberships m WHERE m.workspace_id = k.workspace_id AND m.user_id = k.user_id)
          OR EXISTS (SELECT 1 FROM users u WHERE u.id = k.user_id AND u.disabled_at IS NOT NULL)))
    ORDER BY w.id
    FOR KEY SHARE OF w`.execute(tx);
  return row;
}

export function toEvent(row: WorkspaceEventRow): WorkspaceEvent {
  return {
    id: row.id,
    type: row.type as EventType,
    workspaceId: row.workspace_id,
    createdAt: row.created_at.toISOString(),
    data: row.data,
  };
}

export async function listEvents(
  db: Db,
  workspaceId: string,
  options: { afterSeq: number; limit: number; types: readonly EventType[] },
): Promise<WorkspaceEventRow[]> {
  if (options.types.length === 0) return [];
  return db
    .selectFrom('workspace_events')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('seq', '>', String(options.afterSeq) as never)
    .where('type', 'in', options.types)
    .orderBy('seq')
    .limit(options.limit)
    .execute();
}

/** Wakes this process's webhook dispatcher when a transaction that queued deliveries commits. */
export function announceDeliveries(bus: EventEmitter | undefined): void {
  bus?.emit('deliveries');
}
