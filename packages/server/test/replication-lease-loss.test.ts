// An owner that cannot renew its replication lease stops following before another node may start
// (docs/edge.md, "Several edge nodes"): the store failing under a following owner ends its
// replication stream on the origin and holds the cache before the last lease granted runs out; a
// store that refuses says so at the next renewal, one that never answers only by the clock. A real
// follower reads a throwaway `wal_level=logical` Postgres.
import net from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring } from '../src/connect/keyring.ts';
import { openStore, type Store } from '../src/db/store.ts';
import { slotNameOf } from '../src/replication/origin-link.ts';
import { createTestDatabase, openTestStore } from './helpers/stores.ts';
import {
  insertReplicationCache,
  startLogicalOrigin,
  startTestFollowers,
} from './helpers/logical-origin.ts';
import { until } from './helpers/until.ts';
import type { ThrowawayCluster } from '../../edge/test/helpers/throwaway-cluster.ts';

const SECRET = 'l'.repeat(48);
const REPLICATOR_CREDENTIAL = { user: 'replicator', password: 'replicator-pw-3' };
/** How long a lease lasts and how often it is renewed (LEASE_SECONDS, LEASE_RENEW_MS). */
const LEASE_MS = 8000;
const LEASE_RENEW_MS = 2000;

/** A store for the owner, and how it fails under it. */
interface FailingStore {
  store: Store;
  fail(cacheId: string): Promise<void>;
  /** When the last lease the store granted on the cache ends, by the store's clock. */
  leaseEnd(cacheId: string): Promise<Date>;
  /** The store answers again: what was held completes. */
  recover(): void;
  /** A renewal that fails says so: the owner stops at the next one (null: no answer to wait for). */
  stopsWithinMs: number | null;
  cleanUp(): Promise<void>;
}

const leaseEndIn = async (db: Store['db'], cacheId: string): Promise<Date> =>
  (
    await db
      .selectFrom('cache_replication_status')
      .select('lease_until')
      .where('cache_id', '=', cacheId)
      .executeTakeFirstOrThrow()
  ).lease_until!;

/**
 * A TCP relay to the machine's Postgres that can freeze: every byte held from then on, connections
 * left open and new ones accepted but never answered, as a store behind a network partition. Thawed,
 * the held bytes flow again (a store lost mid-query would throw from the pool's client instead).
 */
async function freezableRelay(target: URL) {
  const links = new Set<[net.Socket, net.Socket]>();
  const unanswered = new Set<net.Socket>();
  let frozen = false;
  const server = net.createServer((client) => {
    client.on('error', () => client.destroy());
    if (frozen) {
      unanswered.add(client);
      return;
    }
    const store = net.connect(Number(target.port || 5432), target.hostname);
    const link: [net.Socket, net.Socket] = [client, store];
    links.add(link);
    store.on('error', () => client.destroy());
    client.on('close', () => store.destroy());
    store.on('close', () => {
      client.destroy();
      links.delete(link);
    });
    client.pipe(store).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      frozen = true;
      for (const [client, store] of links) {
        client.unpipe(store).pause();
        store.unpipe(client).pause();
      }
    },
    thaw() {
      frozen = false;
      for (const [client, store] of links) client.pipe(store).pipe(client);
      for (const client of unanswered) client.destroy();
      unanswered.clear();
    },
    async close() {
      for (const [client] of links) client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const storeFailures: [string, () => Promise<FailingStore>][] = [
  [
    'its store is closed (every query fails)',
    async () => {
      const store = await openTestStore('pglite');
      let leaseEnd: Date;
      return {
        store,
        async fail(cacheId) {
          leaseEnd = await leaseEndIn(store.db, cacheId);
          await store.close();
        },
        leaseEnd: async () => leaseEnd,
        recover: () => undefined,
        // The next renewal, and the stream's end.
        stopsWithinMs: LEASE_RENEW_MS + 1500,
        cleanUp: () => store.close(),
      };
    },
  ],
  [
    'its store stops answering (a network partition: queries hang)',
    async () => {
      const database = await createTestDatabase({ migrated: true });
      const relay = await freezableRelay(new URL(database.url));
      const viaRelay = new URL(database.url);
      viaRelay.host = `127.0.0.1:${relay.port}`;
      const store = await openStore({
        databaseUrl: viaRelay.toString(),
        dataDir: 'unused',
        onIdleError: () => undefined,
      });
      return {
        store,
        fail: async () => relay.freeze(),
        async leaseEnd(cacheId) {
          const direct = await openStore({ databaseUrl: database.url, dataDir: 'unused' });
          try {
            return await leaseEndIn(direct.db, cacheId);
          } finally {
            await direct.close();
          }
        },
        recover: () => relay.thaw(),
        stopsWithinMs: null,
        async cleanUp() {
          await store.close();
          await relay.close();
          await database.drop();
        },
      };
    },
  ],
];

describe('an owner that cannot renew its replication lease', () => {
  let cluster: ThrowawayCluster;
  let origin: pg.Client;

  beforeAll(async () => {
    ({ cluster, origin } = await startLogicalOrigin(REPLICATOR_CREDENTIAL));
  }, 120_000);
  afterAll(async () => {
    await origin?.end();
    await cluster?.stop();
  });

  const slotActive = async (cacheId: string) =>
    (
      await origin.query<{ active: boolean }>(
        'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
        [slotNameOf(cacheId)],
      )
    ).rows[0]?.active === true;

  it.each(storeFailures)(
    'stops following before its lease runs out when %s',
    async (_how, openFailingStore) => {
      const { store, fail, leaseEnd, recover, stopsWithinMs, cleanUp } = await openFailingStore();
      const keyring = createKeyring(SECRET);
      const cacheId = await insertReplicationCache(store, keyring, cluster, REPLICATOR_CREDENTIAL);
      let held = 0;
      const followers = await startTestFollowers({
        store,
        keyring,
        hold: (id, delta) => {
          if (id === cacheId) held += delta;
        },
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

        const failed = Date.now();
        await fail(cacheId);
        const stopped = await until(
          'the owner to stop following',
          async () =>
            followers.states().get(cacheId)?.status !== 'following' && !(await slotActive(cacheId))
              ? Date.now()
              : null,
          LEASE_MS + 4000,
        );
        console.info(`the store failed, the owner stopped following ${stopped - failed} ms later`);
        // Until the last lease granted runs out no other node may start: this one was gone by then,
        // from the origin and from serving.
        expect(stopped).toBeLessThan((await leaseEnd(cacheId)).getTime());
        if (stopsWithinMs !== null) expect(stopped - failed).toBeLessThan(stopsWithinMs);
        expect(held).toBeGreaterThan(0);
      } finally {
        recover();
        await followers.stop();
        await cleanUp();
      }
    },
  );
});
