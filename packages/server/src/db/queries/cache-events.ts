// Tells running edges that a cache or its rules changed: NOTIFY is delivered on commit, so an edge
// never reloads a change that was rolled back.
import { sql } from 'kysely';
import type { Db } from '../store.ts';

export const CACHE_CHANGED_CHANNEL = 'edgegate_cache_changed';

export async function notifyCacheChanged(db: Db, cacheId: string): Promise<void> {
  await sql`SELECT pg_notify(${CACHE_CHANGED_CHANNEL}, ${cacheId})`.execute(db);
}
