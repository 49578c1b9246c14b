// Without the DDL event trigger (a credential that is not a superuser), Postgres's change stream
// never shows a CREATE VIEW: the follower learns a view made later only by reading the origin's
// catalog again on its timer (docs/edge.md, "Views": within a minute). Here the timer is short and
// a real follower reads a throwaway `wal_level=logical` Postgres.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring } from '../src/connect/keyring.ts';
import type { ViewTables } from '../src/replication/view-tables.ts';
import {
  insertReplicationCache,
  startLogicalOrigin,
  startTestFollowers,
} from './helpers/logical-origin.ts';
import { openTestStore } from './helpers/stores.ts';
import { until } from './helpers/until.ts';
import type { ThrowawayCluster } from '../../edge/test/helpers/throwaway-cluster.ts';

const REPLICATOR_CREDENTIAL = { user: 'replicator', password: 'replicator-pw-4' };
const VIEWS_EVERY_MS = 400;

describe('the views of an origin without the DDL event trigger', () => {
  let cluster: ThrowawayCluster;
  let origin: pg.Client;

  beforeAll(async () => {
    ({ cluster, origin } = await startLogicalOrigin(REPLICATOR_CREDENTIAL));
    await origin.query('CREATE TABLE gadgets (id int primary key, name text)');
    await origin.query('CREATE TABLE makers (id int primary key, name text)');
  }, 120_000);
  afterAll(async () => {
    await origin?.end();
    await cluster?.stop();
  });

  it('a view made after the follower started is learned on the next timed read of the catalog', async () => {
    const store = await openTestStore('pglite');
    const keyring = createKeyring('v'.repeat(48));
    const cacheId = await insertReplicationCache(store, keyring, cluster, REPLICATOR_CREDENTIAL);
    const given: ViewTables[] = [];
    let held = 0;
    const followers = await startTestFollowers({
      store,
      keyring,
      hold: (id, delta) => {
        if (id === cacheId) held += delta;
      },
      setViewTables: (id, viewTables) => {
        if (id === cacheId && viewTables !== null) given.push(viewTables);
      },
      viewsEveryMs: VIEWS_EVERY_MS,
    });
    try {
      await until('the follower to follow with its views read', async () =>
        followers.states().get(cacheId)?.status === 'following' && held === 0 && given.length > 0
          ? true
          : null,
      );
      expect(given.at(-1)).toEqual({});
      // No event trigger: nothing on the stream tells the follower about this.
      const { rows } = await origin.query('SELECT count(*)::int AS n FROM pg_event_trigger');
      expect(rows[0].n).toBe(0);

      await origin.query(
        'CREATE VIEW gadget_makers AS SELECT g.name AS gadget, m.name AS maker FROM gadgets g JOIN makers m ON m.id = g.id',
      );
      await origin.query(
        'CREATE VIEW loud_gadgets AS SELECT upper(gadget) AS g FROM gadget_makers',
      );
      const made = Date.now();
      const learned = await until(
        'the new views to reach the edge',
        async () => (given.at(-1)?.loud_gadgets !== undefined ? Date.now() : null),
        // A few timed reads, with room for a loaded machine (each read opens a connection).
        10_000,
      );
      console.info(`views made on the origin were learned ${learned - made} ms later`);
      expect(given.at(-1)).toEqual({
        gadget_makers: ['gadgets', 'makers'],
        loud_gadgets: ['gadget_makers', 'gadgets', 'makers'],
      });
    } finally {
      await followers.stop();
      await store.close();
    }
  });
});
