// A throwaway `wal_level=logical` Postgres for replication tests: a role that may replicate and a
// publication of all tables, with a superuser connection to it for the test's own statements.
import pg from 'pg';
import { pino } from 'pino';
import { sealSecret, type Keyring } from '../../src/connect/keyring.ts';
import { insertCache } from '../../src/db/queries/caches.ts';
import type { Store } from '../../src/db/store.ts';
import {
  startReplicationFollowers,
  type Followers,
  type FollowersOptions,
} from '../../src/replication/followers.ts';
import { signUp } from '../../src/services/accounts.ts';
import { newId } from '../../src/services/crypto.ts';
import {
  startThrowawayCluster,
  type ThrowawayCluster,
} from '../../../edge/test/helpers/throwaway-cluster.ts';

export async function startLogicalOrigin(replicator: {
  user: string;
  password: string;
}): Promise<{ cluster: ThrowawayCluster; origin: pg.Client }> {
  const cluster = await startThrowawayCluster({ walLevel: 'logical' });
  const origin = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cluster.superuser,
    password: cluster.password('postgres'),
    database: cluster.database,
  });
  await origin.connect();
  await origin.query(
    `CREATE ROLE ${replicator.user} LOGIN REPLICATION PASSWORD '${replicator.password}'`,
  );
  await origin.query('CREATE PUBLICATION app_pub FOR ALL TABLES');
  return { cluster, origin };
}

/**
 * A cache in replication mode on the throwaway origin, stored as the API would store it (in a new
 * user's workspace, the password sealed) but without the API's checks: no DDL event trigger is
 * installed on the origin. Returns its id.
 */
export async function insertReplicationCache(
  store: Store,
  keyring: Keyring,
  cluster: ThrowawayCluster,
  replicator: { user: string; password: string },
): Promise<string> {
  const { personalWorkspace } = await signUp(store.db, {
    email: `replication-${newId('u')}@example.com`,
    password: 'long enough pw',
  });
  const id = newId('cch');
  const sealed = await sealSecret(
    store.db,
    keyring,
    personalWorkspace.id,
    `cache-replication:${id}`,
    replicator.password,
  );
  await insertCache(store.db, {
    id,
    workspaceId: personalWorkspace.id,
    name: 'Replication',
    description: '',
    type: 'postgres',
    hostname: '127.0.0.1',
    port: cluster.port,
    defaultMode: 'auto',
    defaultTtlSeconds: 3600,
    originTls: 'disable',
    replication: {
      connectionId: null,
      username: replicator.user,
      sealed: { keyId: sealed.keyId, secret: sealed.sealed },
      database: cluster.database,
      publication: 'app_pub',
      maxLagSeconds: 30,
    },
  });
  return id;
}

/**
 * Replication followers on `store` as an edge node runs them, but outside an edge: what they hand
 * the edge goes to the callbacks given (nothing by default), and no cache ever changes.
 */
export function startTestFollowers(
  options: Pick<FollowersOptions, 'store' | 'keyring'> & Partial<FollowersOptions>,
): Promise<Followers> {
  return startReplicationFollowers({
    subscribe: () => () => undefined,
    invalidate: () => undefined,
    hold: () => undefined,
    setViewTables: () => undefined,
    privateRanges: 'allow',
    logger: pino({ level: 'silent' }),
    ...options,
  });
}
