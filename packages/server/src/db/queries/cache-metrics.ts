// Metric samples the edges write and the API sums.
import type { StatsDelta } from '@edgegate/edge';
import type { Db } from '../store.ts';
import type { CacheMetricSamplesTable } from '../schema.ts';
import type { Selectable } from 'kysely';

export type CacheMetricSampleRow = Selectable<CacheMetricSamplesTable>;

/** Writes one sample per cache; samples of caches deleted meanwhile are dropped. */
export async function insertMetricSamples(db: Db, deltas: readonly StatsDelta[]): Promise<void> {
  if (deltas.length === 0) return;
  const known = new Set(
    (
      await db
        .selectFrom('caches')
        .select('id')
        .where(
          'id',
          'in',
          deltas.map((d) => d.cacheId),
        )
        .execute()
    ).map((row) => row.id),
  );
  const rows = deltas
    .filter((d) => known.has(d.cacheId))
    .map((d) => ({
      cache_id: d.cacheId,
      queries: d.queries,
      hits: d.hits,
      misses: d.misses,
      uncacheable: d.uncacheable,
      bytes_served: d.bytesServed,
      hit_latency: d.hitLatency,
      miss_latency: d.missLatency,
      templates: JSON.stringify(d.templates),
    }));
  if (rows.length > 0) await db.insertInto('cache_metric_samples').values(rows).execute();
}

export async function listMetricSamples(
  db: Db,
  cacheId: string,
  since: Date,
): Promise<CacheMetricSampleRow[]> {
  return db
    .selectFrom('cache_metric_samples')
    .selectAll()
    .where('cache_id', '=', cacheId)
    .where('at', '>=', since)
    .orderBy('at')
    .execute();
}

export async function deleteMetricSamplesBefore(db: Db, before: Date): Promise<number> {
  const result = await db
    .deleteFrom('cache_metric_samples')
    .where('at', '<', before)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
