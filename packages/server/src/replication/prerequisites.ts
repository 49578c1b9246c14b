// Checks, by logging in with the replication credential, that an origin can feed a cache its
// change stream, and says exactly what is missing (one 422 problem per prerequisite). For Postgres
// it also creates the cache's publication when none is named and the user may.
import type pg from 'pg';
import { Problem } from '../problem.ts';
import {
  connectMysql,
  connectPostgres,
  slotNameOf,
  type ReplicationCredential,
  type ReplicationOrigin,
} from './origin-link.ts';

export type ReplicationCheck = (
  origin: ReplicationOrigin,
  credential: ReplicationCredential,
  publication: string | null,
) => Promise<{ publication: string | null }>;

const INSUFFICIENT_PRIVILEGE = '42501';
const DUPLICATE_OBJECT = '42710';

const missing = (code: string, detail: string) => new Problem(`invalidation.${code}`, 422, detail);

function unreachable(origin: ReplicationOrigin, credential: ReplicationCredential, error: unknown) {
  if (error instanceof Problem) return error;
  return missing(
    'origin_unreachable',
    `Could not log in to ${origin.hostname}:${origin.port} as "${credential.username}" to check ` +
      `replication: ${(error as Error).message}`,
  );
}

export const checkReplicationPrerequisites: ReplicationCheck = async (
  origin,
  credential,
  publication,
) => {
  switch (origin.type) {
    case 'postgres':
      return checkPostgres(origin, credential, publication);
    case 'mysql':
    case 'mariadb':
      await checkBinlog(origin, credential);
      return { publication: null };
    case 'mssql':
      throw missing(
        'unsupported',
        'Replication invalidation follows Postgres logical replication and the MySQL/MariaDB binary log; SQL Server caches use mode edge.',
      );
  }
};

async function checkPostgres(
  origin: ReplicationOrigin,
  credential: ReplicationCredential,
  named: string | null,
): Promise<{ publication: string }> {
  let client;
  try {
    client = await connectPostgres(origin, credential, { replication: false });
  } catch (error) {
    throw unreachable(origin, credential, error);
  }
  try {
    const settings = await client.query<{
      wal_level: string;
      may_replicate: boolean;
      superuser: boolean;
      max_slots: string;
      slots: string;
      own_slot: boolean;
    }>(
      `SELECT current_setting('wal_level') AS wal_level,
        (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)
          -- Amazon RDS grants replication through membership of rds_replication instead.
          OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_replication'
            AND pg_has_role(current_user, r.oid, 'member')) AS may_replicate,
        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
        current_setting('max_replication_slots') AS max_slots,
        (SELECT count(*) FROM pg_replication_slots) AS slots,
        EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS own_slot`,
      [slotNameOf(origin.cacheId)],
    );
    const row = settings.rows[0];
    if (row === undefined) throw new Error('the settings query returned no row');
    if (row.wal_level !== 'logical') {
      throw missing(
        'wal_level',
        `The origin runs with wal_level=${row.wal_level}; following its writes needs wal_level=logical ` +
          '(ALTER SYSTEM SET wal_level = logical, then restart Postgres; on managed services, the logical replication parameter).',
      );
    }
    if (!row.may_replicate) {
      throw missing(
        'replication_privilege',
        `User "${credential.username}" lacks the REPLICATION privilege (ALTER ROLE ${credential.username} REPLICATION; on Amazon RDS, GRANT rds_replication TO ${credential.username}).`,
      );
    }
    if (!row.own_slot && Number(row.slots) >= Number(row.max_slots)) {
      throw missing(
        'no_free_slot',
        `All ${row.max_slots} replication slots of the origin are taken (max_replication_slots): raise it or drop an unused slot.`,
      );
    }
    if (row.superuser) await announceDdl(client);
    const publication = named ?? slotNameOf(origin.cacheId);
    const found = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [
      publication,
    ]);
    if (found.rowCount !== 0) return { publication };
    if (named !== null) {
      throw missing(
        'publication_missing',
        `There is no publication "${named}" in database "${credential.database}".`,
      );
    }
    try {
      await client.query(`CREATE PUBLICATION "${publication}" FOR ALL TABLES`);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === DUPLICATE_OBJECT) return { publication };
      if (code === INSUFFICIENT_PRIVILEGE) {
        throw missing(
          'publication_not_created',
          `No publication was named, and user "${credential.username}" may not create one FOR ALL TABLES ` +
            '(that needs a superuser): create one, e.g. CREATE PUBLICATION edgegate FOR TABLE t1, t2 ' +
            '(needs ownership of the tables), and name it in invalidation.publication.',
        );
      }
      throw error;
    }
    return { publication };
  } catch (error) {
    throw unreachable(origin, credential, error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * pgoutput carries no DDL. An event trigger (superusers only) writes a logical decoding message
 * at the end of every DDL command; the follower reads any message as "drop the whole cache". One
 * per database, shared by every cache following it.
 */
export const DDL_TRIGGER = 'edgegate_ddl';

async function announceDdl(client: pg.Client): Promise<void> {
  const found = await client.query('SELECT 1 FROM pg_event_trigger WHERE evtname = $1', [
    DDL_TRIGGER,
  ]);
  if (found.rowCount !== 0) return;
  await client.query(`CREATE OR REPLACE FUNCTION ${DDL_TRIGGER}_message() RETURNS event_trigger
    LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_logical_emit_message(true, '${DDL_TRIGGER}', tg_tag); END $$`);
  try {
    await client.query(
      `CREATE EVENT TRIGGER ${DDL_TRIGGER} ON ddl_command_end EXECUTE FUNCTION ${DDL_TRIGGER}_message()`,
    );
  } catch (error) {
    // Another cache's check made it first.
    if ((error as { code?: string }).code !== DUPLICATE_OBJECT) throw error;
  }
}

/** The privileges a user holds on every database, from SHOW GRANTS lines. */
function globalPrivileges(grants: readonly string[]): Set<string> {
  const held = new Set<string>();
  for (const line of grants) {
    const match = /^GRANT (.+?) ON \*\.\* TO /i.exec(line);
    for (const privilege of match?.[1]?.split(',') ?? []) held.add(privilege.trim().toUpperCase());
  }
  return held;
}

/** Each grant the reader needs, with the names servers show it under (MariaDB 10.5+: BINLOG MONITOR). */
const BINLOG_GRANTS = [
  { grant: 'REPLICATION SLAVE', shownAs: ['REPLICATION SLAVE', 'REPLICATION REPLICA'] },
  { grant: 'REPLICATION CLIENT', shownAs: ['REPLICATION CLIENT', 'BINLOG MONITOR'] },
];

async function checkBinlog(
  origin: ReplicationOrigin,
  credential: ReplicationCredential,
): Promise<void> {
  let connection;
  try {
    connection = await connectMysql(origin, credential);
  } catch (error) {
    throw unreachable(origin, credential, error);
  }
  try {
    const [variables] = await connection.query(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image')",
    );
    const value = new Map(
      (variables as { Variable_name: string; Value: string }[]).map((v) => [
        v.Variable_name,
        v.Value,
      ]),
    );
    if (value.get('log_bin') !== 'ON') {
      throw missing(
        'log_bin',
        'The origin has no binary log (log_bin is OFF): start it with --log-bin (and --server-id).',
      );
    }
    if (value.get('binlog_format') !== 'ROW') {
      throw missing(
        'binlog_format',
        `The origin logs binlog_format=${value.get('binlog_format') ?? 'unknown'}; following its writes needs binlog_format=ROW.`,
      );
    }
    const [grants] = await connection.query('SHOW GRANTS');
    const held = globalPrivileges(
      (grants as Record<string, string>[]).map((row) => String(Object.values(row)[0])),
    );
    const lacking = held.has('ALL PRIVILEGES')
      ? []
      : BINLOG_GRANTS.filter(({ shownAs }) => !shownAs.some((name) => held.has(name))).map(
          ({ grant }) => grant,
        );
    if (lacking.length > 0) {
      throw missing(
        'replication_grants',
        `User "${credential.username}" lacks ${lacking.join(' and ')} ON *.*: ` +
          `GRANT ${lacking.join(', ')} ON *.* TO the user.`,
      );
    }
  } catch (error) {
    throw unreachable(origin, credential, error);
  } finally {
    await connection.end().catch(() => undefined);
  }
}
