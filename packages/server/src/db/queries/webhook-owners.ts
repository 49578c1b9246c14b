// Endpoints go with the credential that registered them (ON DELETE CASCADE, migration 0007); each
// one going is recorded first, so the workspace's audit log says where its webhooks went.
import { sql, type ExpressionBuilder, type ExpressionWrapper, type SqlBool } from 'kysely';
import type { Database } from '../schema.ts';
import type { Db } from '../store.ts';

type WebhookFilter = (
  eb: ExpressionBuilder<Database, 'webhooks'>,
) => ExpressionWrapper<Database, 'webhooks', SqlBool>;

/** Records `webhook.deleted` for every endpoint `which` selects, before its owner is deleted. */
export async function auditOwnedWebhooks(
  db: Db,
  which: WebhookFilter,
  removal: { reason: string; actorUserId: string | null },
): Promise<void> {
  await db
    .insertInto('audit_events')
    .columns(['workspace_id', 'actor_user_id', 'action', 'target', 'data'])
    .expression((eb) =>
      eb
        .selectFrom('webhooks')
        .select([
          'webhooks.workspace_id',
          sql<string | null>`${removal.actorUserId}::text`.as('actor_user_id'),
          sql<string>`'webhook.deleted'`.as('action'),
          'webhooks.id',
          sql<string>`jsonb_build_object('url', webhooks.url, 'reason', ${removal.reason}::text)`.as(
            'data',
          ),
        ])
        .where(which),
    )
    .execute();
}
