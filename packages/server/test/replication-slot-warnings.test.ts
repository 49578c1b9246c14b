// The control plane's warning about a replication slot that keeps too much WAL (docs/edge.md, "Lag
// and slot size"): a slot past REPLICATION_SLOT_WARN_MB is announced once, as the workspace event
// `cache.replication_slot_large` and a warning in the log, and again only after it fell under 80 %
// of the bound. The real checker runs against a real store; the owners' measures are written the
// way an owner writes them.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listEvents } from '../src/connect/events.ts';
import { insertCache } from '../src/db/queries/caches.ts';
import {
  acquireReplicationLease,
  recordRetainedBytes,
} from '../src/db/queries/replication-status.ts';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { newId } from '../src/services/crypto.ts';
import { startSlotWarnings } from '../src/services/replication-warnings.ts';
import { openTestStore } from './helpers/stores.ts';
import { until } from './helpers/until.ts';

const BOUND = 1000;
const OWNER = 'node-a';

describe('the warning about a replication slot past REPLICATION_SLOT_WARN_MB', () => {
  let store: Store;
  let workspaceId: string;
  const warnings: string[] = [];
  let stopWarnings: () => void;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    ({
      personalWorkspace: { id: workspaceId },
    } = await signUp(store.db, { email: 'slots@example.com', password: 'long enough pw' }));
    stopWarnings = startSlotWarnings(store.db, {
      boundBytes: BOUND,
      everyMs: 20,
      logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }),
    });
  });
  afterAll(async () => {
    stopWarnings?.();
    await store?.close();
  });

  /** A cache in replication mode whose owner holds its lease and has measured nothing yet. */
  async function replicationCache(name: string): Promise<string> {
    const row = await insertCache(store.db, {
      id: newId('cch'),
      workspaceId,
      name,
      description: '',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: 5432,
      defaultMode: 'auto',
      defaultTtlSeconds: 60,
      originTls: 'disable',
      replication: {
        connectionId: null,
        username: 'replicator',
        sealed: null,
        database: null,
        publication: null,
        maxLagSeconds: 30,
      },
    });
    expect(await acquireReplicationLease(store.db, row.id, OWNER, 3600)).toBe(true);
    return row.id;
  }

  const slotKeeps = (cacheId: string, bytes: number) =>
    recordRetainedBytes(store.db, cacheId, OWNER, bytes);

  /** What was announced for a cache: its events and its log lines. */
  async function announcementsOf(cacheId: string) {
    const events = await listEvents(store.db, workspaceId, {
      afterSeq: 0,
      limit: 1000,
      types: ['cache.replication_slot_large'],
    });
    return {
      events: events.filter((event) => (event.data as { cacheId: string }).cacheId === cacheId),
      logLines: warnings.filter((line) => line.includes(cacheId)),
    };
  }

  /**
   * Returns once a whole check ran after this call: a check announces all it claims in one go, so
   * the check that announces a second new slot past the bound began after the first was announced.
   */
  async function aWholeCheck(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const witness = await replicationCache(`witness ${newId('w')}`);
      await slotKeeps(witness, BOUND + 1);
      await until('a check to announce the witness', async () =>
        (await announcementsOf(witness)).logLines.length === 1 ? true : null,
      );
    }
  }

  async function expectAnnounced(cacheId: string, times: number, retainedBytes?: number) {
    const { events, logLines } = await announcementsOf(cacheId);
    expect(events).toHaveLength(times);
    expect(logLines).toHaveLength(times);
    if (retainedBytes !== undefined) {
      expect(events.at(-1)!.data).toEqual({
        cacheId,
        name: 'watched',
        retainedBytes,
        boundBytes: BOUND,
      });
      expect(JSON.parse(logLines.at(-1)!)).toMatchObject({
        level: 40,
        cacheId,
        retainedBytes,
        boundBytes: BOUND,
      });
    }
  }

  it('announces once past the bound, and again only after the slot fell under 80 % of it', async () => {
    const cacheId = await replicationCache('watched');

    // At the bound is not past it.
    await slotKeeps(cacheId, BOUND);
    await aWholeCheck();
    await expectAnnounced(cacheId, 0);

    await slotKeeps(cacheId, BOUND + 1);
    await until('the first announcement', async () =>
      (await announcementsOf(cacheId)).logLines.length > 0 ? true : null,
    );
    await expectAnnounced(cacheId, 1, BOUND + 1);

    // Still past it, growing: nothing more, however many checks run.
    await slotKeeps(cacheId, 5 * BOUND);
    await aWholeCheck();
    await aWholeCheck();
    await expectAnnounced(cacheId, 1);

    // Back to 80 % of the bound (not under it), then past the bound again: not re-armed.
    await slotKeeps(cacheId, 0.8 * BOUND);
    await aWholeCheck();
    await slotKeeps(cacheId, 2 * BOUND);
    await aWholeCheck();
    await expectAnnounced(cacheId, 1);

    // Under 80 %: re-armed, so the next crossing is announced, once.
    await slotKeeps(cacheId, 0.8 * BOUND - 1);
    await aWholeCheck();
    await expectAnnounced(cacheId, 1);
    await slotKeeps(cacheId, 3 * BOUND);
    await until('the second announcement', async () =>
      (await announcementsOf(cacheId)).logLines.length > 1 ? true : null,
    );
    await expectAnnounced(cacheId, 2, 3 * BOUND);
    await aWholeCheck();
    await expectAnnounced(cacheId, 2);
  });
});
