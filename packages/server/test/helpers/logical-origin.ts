// A throwaway `wal_level=logical` Postgres for replication tests: a role that may replicate and a
// publication of all tables, with a superuser connection to it for the test's own statements.
import pg from 'pg';
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
