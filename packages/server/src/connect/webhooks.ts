// Webhook endpoints of a workspace: created with a signing secret sealed at rest and shown once,
// listed, deleted, and their recent deliveries read back from the delivery queue.
import type { z } from 'zod';
import {
  newWebhookSecret,
  type DELIVERY_EVENT_TYPES,
  WEBHOOK_TEST_EVENT,
  webhookCreateSchema,
  type webhookSchema,
} from '@edgegate/contract';
import { sql } from 'kysely';
import type { Db } from '../db/store.ts';
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.ts';
import { Problem } from '../problem.ts';
import { newId } from '../services/crypto.ts';
import { checkOrigin } from '../services/origin-guard.ts';
import type { OriginPolicy } from '../services/caches.ts';
import { isForeignKeyViolation, parseInput } from '../services/validation.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { insufficientScope, REALM, type Principal } from '../plugins/credential-auth.ts';
import { openSecret, sealSecret, type Keyring } from './keyring.ts';
import { parseWebhookSecrets, serializeWebhookSecrets } from './webhook-secrets.ts';
import { EVENT_SCOPE, type EventType } from './events.ts';

export type Webhook = z.infer<typeof webhookSchema>;

/** The sealing context of a webhook's secret; key rotation re-seals with exactly this. */
export const webhookSecretContext = (id: string) => `webhook:${id}`;

/** How many deliveries GET /v1/webhooks/{id}/deliveries shows, newest first. */
export const DELIVERIES_SHOWN = 50;

export function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    events: row.events as EventType[] | null,
    createdAt: row.created_at.toISOString(),
  };
}

const notFound = (id: string) =>
  new Problem('webhook.not_found', 404, `No webhook ${id} in this workspace.`);

/** The endpoint's host must pass the same SSRF guard as a cache origin; problems name `url`. */
async function guardUrl(url: string, policy: OriginPolicy): Promise<void> {
  try {
    await checkOrigin(new URL(url).hostname, {
      privateRanges: policy.privateRanges,
      ...(policy.resolve ? { resolve: policy.resolve } : {}),
    });
  } catch (error) {
    if (!(error instanceof Problem)) throw error;
    throw new Problem(error.code, error.status, `url: ${error.message}`, {
      errors: [{ path: 'url', message: error.message }],
    });
  }
}

/**
 * The event types the webhook receives: never one its creator could not read from GET /v1/events.
 * Named types need their scope for the whole workspace; "every type" narrows to the readable ones.
 */
function subscribedTypes(principal: Principal, requested: EventType[] | undefined) {
  const readable = (type: EventType) => principal.access.get(EVENT_SCOPE[type]) === null;
  if (requested) {
    const denied = [...new Set(requested.filter((type) => !readable(type)))];
    if (denied.length > 0) {
      const scopes = [...new Set(denied.map((type) => EVENT_SCOPE[type]))];
      throw insufficientScope(
        scopes,
        `Subscribing to ${denied.join(', ')} needs ${scopes.join(' and ')} for the whole workspace.`,
      );
    }
    return [...new Set(requested)];
  }
  const all = Object.keys(EVENT_SCOPE) as EventType[];
  return all.every(readable) ? null : all.filter(readable);
}

/** Every event fans out to each endpoint: the cap bounds the work one workspace can queue. */
export const MAX_WEBHOOKS_PER_WORKSPACE = 20;

export async function createWebhook(
  db: Db,
  keyring: Keyring,
  principal: Principal,
  input: z.input<typeof webhookCreateSchema>,
  policy: OriginPolicy,
): Promise<{ row: WebhookRow; secret: string }> {
  const fields = parseInput(webhookCreateSchema, input);
  const events = subscribedTypes(principal, fields.events);
  await guardUrl(fields.url, policy);
  const count = await db
    .selectFrom('webhooks')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('workspace_id', '=', principal.workspaceId)
    .executeTakeFirstOrThrow();
  if (Number(count.n) >= MAX_WEBHOOKS_PER_WORKSPACE) {
    throw new Problem(
      'webhook.limit_reached',
      422,
      `A workspace may have at most ${MAX_WEBHOOKS_PER_WORKSPACE} webhook endpoints; delete one first.`,
    );
  }
  const id = newId('wh');
  const secret = newWebhookSecret();
  const created = db.transaction().execute(async (tx) => {
    const sealed = await sealSecret(
      tx,
      keyring,
      principal.workspaceId,
      webhookSecretContext(id),
      secret,
    );
    const inserted = await tx
      .insertInto('webhooks')
      .values({
        id,
        workspace_id: principal.workspaceId,
        url: fields.url,
        description: fields.description,
        events,
        secret: sealed.sealed,
        key_id: sealed.keyId,
        ...owner(principal),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: principal.userId,
      action: 'webhook.created',
      target: id,
      data: { url: fields.url, events, via: principal.kind },
    });
    return inserted;
  });
  const row = await created.catch((error: unknown) => {
    // The credential was revoked after this request resolved it (another node, or within the
    // resolver's memo): the endpoint would have no owner to belong to.
    if (isForeignKeyViolation(error)) {
      throw new Problem(
        'auth.invalid_token',
        401,
        'The credential is invalid, expired or revoked.',
        {
          headers: { 'www-authenticate': `${REALM}, error="invalid_token"` },
        },
      );
    }
    throw error;
  });
  return { row, secret };
}

/**
 * The credential a new endpoint belongs to: it is deleted with it (the app's grant revoked, the API
 * key or service token deleted), and gets no new events once the credential expires or its user
 * leaves the workspace (appendEvent). The console's endpoints belong to the workspace.
 */
function owner(principal: Principal) {
  const id = principal.credentialId;
  return {
    grant_id: principal.kind === 'oauth' ? id : null,
    api_key_id: principal.kind === 'api_key' ? id : null,
    service_token_id: principal.kind === 'service_token' ? id : null,
  };
}

export async function listWebhooks(
  db: Db,
  principal: Principal,
  page: { afterId?: string | undefined; limit: number },
): Promise<WebhookRow[]> {
  let query = db
    .selectFrom('webhooks')
    .selectAll()
    .where('workspace_id', '=', principal.workspaceId)
    .orderBy('id')
    .limit(page.limit + 1);
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query.execute();
}

async function findWebhook(db: Db, principal: Principal, id: string): Promise<WebhookRow> {
  const row = await db
    .selectFrom('webhooks')
    .selectAll()
    .where('id', '=', id)
    .where('workspace_id', '=', principal.workspaceId)
    .executeTakeFirst();
  if (!row) throw notFound(id);
  return row;
}

/** Deletes the webhook; its queued deliveries go with it (ON DELETE CASCADE). */
export async function deleteWebhook(db: Db, principal: Principal, id: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const deleted = await tx
      .deleteFrom('webhooks')
      .where('id', '=', id)
      .where('workspace_id', '=', principal.workspaceId)
      .returning(['url'])
      .executeTakeFirst();
    if (!deleted) throw notFound(id);
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: principal.userId,
      action: 'webhook.deleted',
      target: id,
      data: { url: deleted.url, via: principal.kind },
    });
  });
}

/** How long the previous secret keeps signing after a rotation unless the caller says otherwise. */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 24 * 3600;

/**
 * A new signing secret for the endpoint. Until the overlap ends every delivery is signed with both
 * (two `v1,…` in `webhook-signature`), so the receiver can switch at its own pace; a rotation
 * during an overlap drops the oldest secret.
 */
export async function rotateWebhookSecret(
  db: Db,
  keyring: Keyring,
  principal: Principal,
  id: string,
  overlapSeconds: number,
): Promise<{ row: WebhookRow; secret: string; previousSecretExpiresAt: string | null }> {
  const secret = newWebhookSecret();
  const until = overlapSeconds > 0 ? new Date(Date.now() + overlapSeconds * 1000) : null;
  const row = await db.transaction().execute(async (tx) => {
    const found = await tx
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', id)
      .where('workspace_id', '=', principal.workspaceId)
      .forUpdate()
      .executeTakeFirst();
    if (!found) throw notFound(id);
    const { current } = parseWebhookSecrets(
      await openSecret(tx, keyring, found.key_id, webhookSecretContext(id), found.secret),
    );
    const sealed = await sealSecret(
      tx,
      keyring,
      principal.workspaceId,
      webhookSecretContext(id),
      serializeWebhookSecrets({
        current: secret,
        previous: until ? { secret: current, until: until.toISOString() } : undefined,
      }),
    );
    const updated = await tx
      .updateTable('webhooks')
      .set({ secret: sealed.sealed, key_id: sealed.keyId })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: principal.userId,
      action: 'webhook.secret_rotated',
      target: id,
      data: { overlapSeconds, via: principal.kind },
    });
    return updated;
  });
  return { row, secret, previousSecretExpiresAt: until?.toISOString() ?? null };
}

/**
 * "Send a test event": a `webhook.test` event delivered to this endpoint only, signed and retried
 * like any other. It takes a sequence number like every event but is never in GET /v1/events
 * (no scope reads its type), so the event log stays the workspace's own changes.
 */
export async function sendTestEvent(
  db: Db,
  principal: Principal,
  id: string,
): Promise<{ eventId: string; deliveryId: string }> {
  return db.transaction().execute(async (tx) => {
    const webhook = await findWebhook(tx, principal, id);
    const { rows } = await sql<{ seq: string }>`
      UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = ${principal.workspaceId}
      RETURNING event_seq AS seq`.execute(tx);
    const event = await tx
      .insertInto('workspace_events')
      .values({
        id: newId('evt'),
        workspace_id: principal.workspaceId,
        seq: rows[0]!.seq,
        type: WEBHOOK_TEST_EVENT,
        data: JSON.stringify({
          webhookId: webhook.id,
          message: 'A test event sent from Edgegate: if you can read this, the endpoint works.',
        }),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const deliveryId = `dlv_${webhook.id}_${event.id}`;
    await tx
      .insertInto('webhook_deliveries')
      .values({ id: deliveryId, webhook_id: webhook.id, event_id: event.id })
      .execute();
    return { eventId: event.id, deliveryId };
  });
}

export type WebhookDeliveryListRow = WebhookDeliveryRow & { event_type: string };

export interface WebhookDelivery {
  id: string;
  eventId: string;
  eventType: (typeof DELIVERY_EVENT_TYPES)[number];
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
  finishedAt: string | null;
}

export function toWebhookDelivery(row: WebhookDeliveryListRow): WebhookDelivery {
  return {
    id: row.id,
    eventId: row.event_id,
    eventType: row.event_type as WebhookDelivery['eventType'],
    status: row.status,
    attempts: row.attempts,
    lastStatus: row.last_status,
    lastError: row.last_error,
    nextAttemptAt: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
    createdAt: row.created_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

/** The webhook's latest deliveries, newest first; 404 for a webhook of another workspace. */
export async function listDeliveries(
  db: Db,
  principal: Principal,
  webhookId: string,
): Promise<WebhookDeliveryListRow[]> {
  const webhook = await findWebhook(db, principal, webhookId);
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('workspace_events as e', 'e.id', 'd.event_id')
    .selectAll('d')
    .select('e.type as event_type')
    .where('d.webhook_id', '=', webhook.id)
    .orderBy('d.created_at', 'desc')
    .orderBy('d.id', 'desc')
    .limit(DELIVERIES_SHOWN)
    .execute();
}
