// An owner that cannot renew its replication lease stops following at once, before another node
// may start (docs/edge.md, "Several edge nodes"): the store failing under a following owner ends
// its replication stream on the origin and holds the cache, well before the lease it last renewed
// runs out. A real follower reads a throwaway `wal_level=logical` Postgres.
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring, sealSecret } from '../src/connect/keyring.ts';
import { insertCache } from '../src/db/queries/caches.ts';
import type { Store } from '../src/db/store.ts';
import { startReplicationFollowers } from '../src/replication/followers.ts';
import { slotNameOf } from '../src/replication/origin-link.ts';
import { signUp } from '../src/services/accounts.ts';
import { newId } from '../src/services/crypto.ts';
import { openTestStore } from './helpers/stores.ts';
import { until } from './helpers/until.ts';
import {
  startThrowawayCluster,
  type ThrowawayCluster,
} from '../../edge/test/helpers/throwaway-cluster.ts';

const SECRET = 'l'.repeat(48);
const silent = pino({ level: 'silent' });
const REPLICATOR = 'replicator';
const REPLICATOR_PASSWORD = 'replicator-pw-3';

describe('an owner that cannot renew its replication lease', () => {
  let cluster: ThrowawayCluster;
  let origin: pg.Client;

  beforeAll(async () => {
    cluster = await startThrowawayCluster({ walLevel: 'logical' });
    origin = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: cluster.superuser,
      password: cluster.password('postgres'),
      database: cluster.database,
    });
    await origin.connect();
    await origin.query(
      `CREATE ROLE ${REPLICATOR} LOGIN REPLICATION PASSWORD '${REPLICATOR_PASSWORD}'`,
    );
    await origin.query('CREATE PUBLICATION app_pub FOR ALL TABLES');
  }, 120_000);
  afterAll(async () => {
    await origin?.end();
    await cluster?.stop();
  });

  /** A cache in replication mode on the throwaway origin, as the API would store it. */
  async function replicationCache(store: Store, keyring: ReturnType<typeof createKeyring>) {
    const { personalWorkspace } = await signUp(store.db, {
      email: `lease-${newId('u')}@example.com`,
      password: 'long enough pw',
    });
    const id = newId('cch');
    const sealed = await sealSecret(
      store.db,
      keyring,
      personalWorkspace.id,
      `cache-replication:${id}`,
      REPLICATOR_PASSWORD,
    );
    await insertCache(store.db, {
      id,
      workspaceId: personalWorkspace.id,
      name: 'Lease',
      description: '',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: cluster.port,
      defaultMode: 'auto',
      defaultTtlSeconds: 3600,
      originTls: 'disable',
      replication: {
        connectionId: null,
        username: REPLICATOR,
        sealed: { keyId: sealed.keyId, secret: sealed.sealed },
        database: cluster.database,
        publication: 'app_pub',
        maxLagSeconds: 30,
      },
    });
    return id;
  }

  const slotActive = async (cacheId: string) =>
    (
      await origin.query<{ active: boolean }>(
        'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
        [slotNameOf(cacheId)],
      )
    ).rows[0]?.active === true;

  it('stops following at once when its store is gone, before its lease runs out', async () => {
    const store = await openTestStore('pglite');
    const keyring = createKeyring(SECRET);
    const cacheId = await replicationCache(store, keyring);
    let held = 0;
    const followers = await startReplicationFollowers({
      store,
      keyring,
      subscribe: () => () => undefined,
      invalidate: () => undefined,
      hold: (id, delta) => {
        if (id === cacheId) held += delta;
      },
      setViewTables: () => undefined,
      privateRanges: 'allow',
      logger: silent,
    });
    try {
      // Following, and serving: its views read, nothing holds the cache.
      await until('the owner to follow', async () =>
        followers.states().get(cacheId)?.status === 'following' &&
        held === 0 &&
        (await slotActive(cacheId))
          ? true
          : null,
      );
      expect(followers.owned()).toEqual([cacheId]);
      const { lease_until: leaseUntil } = await store.db
        .selectFrom('cache_replication_status')
        .select('lease_until')
        .where('cache_id', '=', cacheId)
        .executeTakeFirstOrThrow();

      const closed = Date.now();
      await store.close();
      // Until the lease it last renewed runs out no other node may start: this one must be gone
      // by then, from the origin and from serving.
      const stopped = await until(
        'the owner to stop following',
        async () =>
          followers.states().get(cacheId)?.status !== 'following' && !(await slotActive(cacheId))
            ? Date.now()
            : null,
        leaseUntil!.getTime() - Date.now(),
      );
      console.info(`the store closed, the owner stopped following ${stopped - closed} ms later`);
      expect(stopped).toBeLessThan(leaseUntil!.getTime());
      expect(held).toBeGreaterThan(0);
    } finally {
      await followers.stop();
      await store.close().catch(() => undefined);
    }
  });
});
