// One change-stream follower per cache across edge nodes: two edges on one store, one follows (a
// lease in the store), the other stands by and serves the cache from the origin only (no Redis
// bus to hear the owner's invalidations), and takes over within ten seconds when the owner dies.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { slotNameOf } from '../src/replication/origin-link.ts';
import { signUp } from '../src/services/accounts.ts';
import { freePort } from './helpers/listening-app.ts';
import { startLogicalOrigin } from './helpers/logical-origin.ts';
import { until as untilWithin } from './helpers/until.ts';
import { createTestDatabase } from './helpers/stores.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';
import type { ThrowawayCluster } from '../../edge/test/helpers/throwaway-cluster.ts';
import {
  spawnEdgegate,
  stopEdgegate,
  type Edgegate,
} from '../../cli/test/helpers/spawn-edgegate.ts';

const SECRET = 'f'.repeat(48);
const silent = pino({ level: 'silent' });
const REPLICATOR = 'replicator';
const REPLICATOR_PASSWORD = 'replicator-pw-2';
// Failover and slot set-up take seconds: a longer default bound than the other files'.
const until = <T>(what: string, check: () => Promise<T | null>, ms = 15_000) =>
  untilWithin(what, check, ms);

const startOrigin = () => startLogicalOrigin({ user: REPLICATOR, password: REPLICATOR_PASSWORD });

/** A cache in replication mode on `cluster`, made through the control plane's API; its id. */
async function createReplicationCache(
  controlPlane: RunningServer,
  cluster: ThrowawayCluster,
  email: string,
  name: string,
): Promise<string> {
  const { user, personalWorkspace } = await signUp(controlPlane.store.db, {
    email,
    password: 'long enough pw',
  });
  const grant = await consentedGrant(controlPlane.app!, controlPlane.store.db, {
    userId: user.id,
    workspaceId: personalWorkspace.id,
    scopes: ['caches:read', 'caches:write'],
  });
  const token = (await accessTokenFor(controlPlane.app!, grant)).access_token;
  const created = await controlPlane.app!.inject({
    method: 'POST',
    url: '/v1/caches',
    headers: { authorization: `Bearer ${token}` },
    payload: {
      name,
      type: 'postgres',
      hostname: '127.0.0.1',
      port: cluster.port,
      originTls: 'disable',
      defaultTtlSeconds: 3600,
      invalidation: {
        mode: 'replication',
        username: REPLICATOR,
        password: REPLICATOR_PASSWORD,
        database: cluster.database,
        publication: 'app_pub',
      },
    },
  });
  expect(created.statusCode, created.body).toBe(201);
  return (created.json() as { data: { id: string } }).data.id;
}

describe('one follower per cache across edge nodes', () => {
  let cluster: ThrowawayCluster;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let controlPlane: RunningServer;
  let edgeB: RunningServer | undefined;
  let edgeA: Edgegate | undefined;
  let origin: pg.Client;
  let cacheId: string;

  const owner = async () =>
    (await controlPlane.store.db
      .selectFrom('cache_replication_status')
      .select(['owner', 'status'])
      .where('cache_id', '=', cacheId)
      .executeTakeFirst()) ?? null;
  const walsenders = async () =>
    Number(
      (
        await origin.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_replication WHERE application_name = 'edgegate-replication'`,
        )
      ).rows[0]!.n,
    );

  beforeAll(async () => {
    ({ cluster, origin } = await startOrigin());
    database = await createTestDatabase({ migrated: true });
    controlPlane = await startServer(
      loadConfig({
        DATABASE_URL: database.url,
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-failover-cp-')),
        PORT: '0',
        EDGEGATE_SECRET: SECRET,
        LOG_LEVEL: 'silent',
      }),
      { logger: silent, planes: 'server' },
    );
    // Edge A, a process of its own, so that it can die.
    edgeA = spawnEdgegate(
      [
        'edge',
        '--database-url',
        database.url,
        '--data-dir',
        mkdtempSync(join(tmpdir(), 'eg-failover-a-')),
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
      ],
      { EDGEGATE_SECRET: SECRET },
    );
    await edgeA.url;
    cacheId = await createReplicationCache(
      controlPlane,
      cluster,
      'failover@example.com',
      'Failover',
    );
  }, 120_000);

  afterAll(async () => {
    await stopEdgegate(edgeA);
    await edgeB?.close();
    await controlPlane?.close();
    await origin?.end();
    await database?.drop();
    await cluster?.stop();
  });

  it('the node holding the lease follows; the other stands by, then takes over when it dies', async () => {
    const pid = edgeA!.child.pid!;
    await until('edge A to follow the cache', async () => {
      const row = await owner();
      return row?.status === 'following' && row.owner?.includes(`/${pid}/`) === true ? true : null;
    });

    edgeB = await startServer(
      loadConfig({
        DATABASE_URL: database.url,
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-failover-b-')),
        PORT: '0',
        EDGE_PG_PORT: String(await freePort()),
        EDGE_MYSQL_PORT: '0',
        EDGEGATE_SECRET: SECRET,
        LOG_LEVEL: 'silent',
      }),
      { logger: silent, planes: 'edge' },
    );
    const user = `${cluster.users.scram}:${encodeURIComponent(cluster.password(cluster.users.scram))}`;
    const throughB = `postgres://${user}@127.0.0.1:${edgeB.edge!.port}/${cluster.database}?application_name=${cacheId}`;
    const read = async (sql: string) => {
      const client = new pg.Client({ connectionString: throughB });
      await client.connect();
      try {
        return (await client.query(sql)).rows;
      } finally {
        await client.end();
      }
    };
    const hits = async () => {
      await edgeB!.edge!.collect();
      return edgeB!.edge!.stats(cacheId).hits;
    };

    // B stands by: it follows nothing, opens no second stream, and (no Redis bus to hear A's
    // invalidations) serves the cache from the origin only.
    await until('B to know of the cache', async () =>
      edgeB!.edge!.followers.states().has(cacheId) ? true : null,
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(edgeB.edge!.followers.owned()).toEqual([]);
    expect(await walsenders()).toBe(1);
    const sql = 'SELECT name FROM items WHERE id = 1';
    await read(sql);
    await read(sql);
    expect(await hits()).toBe(0);
    expect(edgeB.edge!.followers.states().get(cacheId)?.reason).toContain('without REDIS_URL');

    // A dies without a word; B takes over within ten seconds and serves from its cache again.
    edgeA!.child.kill('SIGKILL');
    await edgeA!.exited;
    const died = Date.now();
    await until(
      'B to follow',
      async () => {
        const row = await owner();
        return row?.owner === edgeB!.edge!.followers.node && row.status === 'following'
          ? true
          : null;
      },
      20_000,
    );
    const takeover = Date.now() - died;
    console.info(`follower failover after SIGKILL: ${takeover} ms`);
    expect(takeover).toBeLessThan(10_000);
    expect(edgeB.edge!.followers.owned()).toEqual([cacheId]);
    // The slot resumed, not made anew, and one stream reads it.
    expect(
      (
        await origin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
          slotNameOf(cacheId),
        ])
      ).rowCount,
    ).toBe(1);
    await until('one stream', async () => ((await walsenders()) === 1 ? true : null));

    await read(sql);
    const before = await hits();
    expect(await read(sql)).toEqual([{ name: 'anvil' }]);
    expect(await hits()).toBe(before + 1);
    await origin.query(`UPDATE items SET name = 'anvil 3' WHERE id = 1`);
    await until('the direct write to reach B', async () =>
      JSON.stringify(await read(sql)) === JSON.stringify([{ name: 'anvil 3' }]) ? true : null,
    );
  });
});

describe('a replication cache on edge nodes that share a Redis bus', () => {
  let cluster: ThrowawayCluster;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let controlPlane: RunningServer;
  const edges: RunningServer[] = [];
  let origin: pg.Client;
  let cacheId: string;

  beforeAll(async () => {
    ({ cluster, origin } = await startOrigin());
    database = await createTestDatabase({ migrated: true });
    const settings = (name: string, extra: Record<string, string> = {}) =>
      loadConfig({
        DATABASE_URL: database.url,
        DATA_DIR: mkdtempSync(join(tmpdir(), `eg-bus-${name}-`)),
        PORT: '0',
        EDGEGATE_SECRET: SECRET,
        LOG_LEVEL: 'silent',
        ...extra,
      });
    controlPlane = await startServer(settings('cp'), { logger: silent, planes: 'server' });
    for (const name of ['a', 'b']) {
      edges.push(
        await startServer(
          settings(name, {
            EDGE_PG_PORT: String(await freePort()),
            EDGE_MYSQL_PORT: '0',
            REDIS_URL: 'redis://127.0.0.1:6379',
          }),
          { logger: silent, planes: 'edge' },
        ),
      );
    }
    cacheId = await createReplicationCache(controlPlane, cluster, 'bus@example.com', 'Bus');
  }, 120_000);

  afterAll(async () => {
    for (const edge of edges) await edge.close();
    await controlPlane?.close();
    await origin?.end();
    await database?.drop();
    await cluster?.stop();
  });

  it('one node follows; the other serves hits and hears the direct writes through the bus', async () => {
    const owner = await until('one node to follow', async () => {
      const owning = edges.filter((edge) => edge.edge!.followers.owned().includes(cacheId));
      const following =
        owning.length === 1 &&
        owning[0]!.edge!.followers.states().get(cacheId)?.status === 'following';
      return following ? owning[0]! : null;
    });
    const standby = edges.find((edge) => edge !== owner)!;
    expect(standby.edge!.followers.owned()).toEqual([]);
    const user = `${cluster.users.scram}:${encodeURIComponent(cluster.password(cluster.users.scram))}`;
    const client = new pg.Client({
      connectionString: `postgres://${user}@127.0.0.1:${standby.edge!.port}/${cluster.database}?application_name=${cacheId}`,
    });
    await client.connect();
    const hits = async () => {
      await standby.edge!.collect();
      return standby.edge!.stats(cacheId).hits;
    };
    try {
      const sql = 'SELECT name FROM items WHERE id = 2';
      // The standby serves from its cache once it sees the owner following (within a second).
      await until('the standby to serve hits', async () => {
        await client.query(sql);
        const before = await hits();
        await client.query(sql);
        return (await hits()) === before + 1 ? true : null;
      });
      const delays: number[] = [];
      for (let round = 0; round < 20; round++) {
        const name = `bus ${round}`;
        await client.query(sql);
        await origin.query('UPDATE items SET name = $1 WHERE id = 2', [name]);
        const wrote = Date.now();
        await until(`round ${round} to reach the standby`, async () =>
          (await client.query<{ name: string }>(sql)).rows[0]?.name === name ? true : null,
        );
        delays.push(Date.now() - wrote);
      }
      delays.sort((x, y) => x - y);
      console.info(
        `direct write → fresh read on the standby node (ms): p50 ${delays[10]}, max ${delays.at(-1)}`,
      );
      expect(delays.at(-1)).toBeLessThan(2000);
    } finally {
      await client.end();
    }
  });
});
