// SQL for the append-only audit log.
import type { Db } from '../store.ts';

export interface AuditEventInput {
  workspaceId: string | null;
  actorUserId: string | null;
  action: string;
  target?: string | null;
  data?: Record<string, unknown>;
}

export async function insertAuditEvent(db: Db, event: AuditEventInput): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      workspace_id: event.workspaceId,
      actor_user_id: event.actorUserId,
      action: event.action,
      target: event.target ?? null,
      data: JSON.stringify(event.data ?? {}),
    })
    .execute();
}

export async function listAuditEvents(db: Db, workspaceId: string, limit: number) {
  return db
    .selectFrom('audit_events')
    .leftJoin('users', 'users.id', 'audit_events.actor_user_id')
    .select([
      'audit_events.id',
      'audit_events.action',
      'audit_events.target',
      'audit_events.data',
      'audit_events.created_at as createdAt',
      'users.email as actorEmail',
    ])
    .where('audit_events.workspace_id', '=', workspaceId)
    .orderBy('audit_events.id', 'desc')
    .limit(limit)
    .execute();
}
