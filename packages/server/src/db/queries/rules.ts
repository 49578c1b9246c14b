// SQL for cache rules; every read is scoped to one cache, which the caller has checked.
import type { Db } from '../store.ts';
import type { CacheRuleRow } from '../schema.ts';

export interface NewRule {
  id: string;
  cacheId: string;
  kind: CacheRuleRow['kind'];
  key: string;
  sql: string | null;
  mode: CacheRuleRow['mode'];
  ttlSeconds: number | null;
  transactionPolicy: CacheRuleRow['transaction_policy'];
}

/** Throws the store's unique violation (23505) when the cache has a rule of this kind and key. */
export async function insertRule(db: Db, rule: NewRule): Promise<CacheRuleRow> {
  return db
    .insertInto('cache_rules')
    .values({
      id: rule.id,
      cache_id: rule.cacheId,
      kind: rule.kind,
      key: rule.key,
      sql: rule.sql,
      mode: rule.mode,
      ttl_seconds: rule.ttlSeconds,
      transaction_policy: rule.transactionPolicy,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findRuleInCache(
  db: Db,
  cacheId: string,
  id: string,
): Promise<CacheRuleRow | undefined> {
  return db
    .selectFrom('cache_rules')
    .selectAll()
    .where('cache_id', '=', cacheId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function findRuleByKey(
  db: Db,
  cacheId: string,
  kind: CacheRuleRow['kind'],
  key: string,
): Promise<CacheRuleRow | undefined> {
  return db
    .selectFrom('cache_rules')
    .selectAll()
    .where('cache_id', '=', cacheId)
    .where('kind', '=', kind)
    .where('key', '=', key)
    .executeTakeFirst();
}

/** limit+1 rules of the cache after `afterId`. */
export async function listRulesOfCache(
  db: Db,
  cacheId: string,
  options: { afterId?: string | undefined; limit: number },
): Promise<CacheRuleRow[]> {
  let query = db.selectFrom('cache_rules').selectAll().where('cache_id', '=', cacheId);
  if (options.afterId) query = query.where('id', '>', options.afterId);
  return query
    .orderBy('id')
    .limit(options.limit + 1)
    .execute();
}

export type RulePatch = Partial<Pick<NewRule, 'mode' | 'ttlSeconds' | 'transactionPolicy'>>;

/** Applies the patch if the row is still at `version`; undefined when someone changed it first. */
export async function updateRule(
  db: Db,
  id: string,
  version: number,
  patch: RulePatch,
): Promise<CacheRuleRow | undefined> {
  return db
    .updateTable('cache_rules')
    .set((eb) => ({
      ...(patch.mode !== undefined ? { mode: patch.mode } : {}),
      ...(patch.ttlSeconds !== undefined ? { ttl_seconds: patch.ttlSeconds } : {}),
      ...(patch.transactionPolicy !== undefined
        ? { transaction_policy: patch.transactionPolicy }
        : {}),
      version: eb('version', '+', 1),
      updated_at: new Date(),
    }))
    .where('id', '=', id)
    .where('version', '=', version)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteRule(db: Db, id: string): Promise<void> {
  await db.deleteFrom('cache_rules').where('id', '=', id).execute();
}

/** Every rule of a cache (a cache has few), for the edge. */
export async function listAllRulesOfCache(db: Db, cacheId: string): Promise<CacheRuleRow[]> {
  return db.selectFrom('cache_rules').selectAll().where('cache_id', '=', cacheId).execute();
}
