// A Postgres replication slot keeps WAL on the origin until its follower confirms it: a follower
// down for long, or one that cannot keep up, fills the origin's disk. A control plane looks at
// what the owners measured and announces each slot past REPLICATION_SLOT_WARN_MB once, as a
// workspace event (webhooks, GET /v1/events) and a log line; it is announced again only after
// falling back under 80 % of the bound.
import type { Logger } from 'pino';
import { appendEvent } from '../connect/events.ts';
import { claimLargeSlots } from '../db/queries/replication-status.ts';
import type { Db } from '../db/store.ts';

export function startSlotWarnings(
  db: Db,
  options: { boundBytes: number; everyMs?: number; logger: Logger },
): () => void {
  const { boundBytes, logger } = options;
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      // Claimed and announced in one transaction: a failed announcement is claimed again later.
      const announced = await db.transaction().execute(async (tx) => {
        const large = await claimLargeSlots(tx, boundBytes);
        for (const slot of large) {
          await appendEvent(tx, slot.workspaceId, 'cache.replication_slot_large', {
            cacheId: slot.cacheId,
            name: slot.name,
            retainedBytes: slot.retainedBytes,
            boundBytes,
          });
        }
        return large;
      });
      for (const slot of announced) {
        logger.warn(
          { cacheId: slot.cacheId, retainedBytes: slot.retainedBytes, boundBytes },
          `the replication slot of cache ${slot.cacheId} keeps ${Math.round(slot.retainedBytes / 1048576)} MiB of WAL on its origin (past REPLICATION_SLOT_WARN_MB): is its follower down or behind?`,
        );
      }
    } catch (error) {
      logger.debug({ err: error }, 'could not check the replication slots');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), options.everyMs ?? 30_000);
  timer.unref();
  return () => clearInterval(timer);
}
