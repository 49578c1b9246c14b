// Pasted origin connection strings come back pointing at the edge, every other byte kept.
import { describe, expect, it } from 'vitest';
import type { CacheType } from '../src/api/caches.ts';
import {
  ConnectionStringError,
  type ConnectionStringErrorCode,
  toEdgeConnectionString,
} from '../src/connection-string.ts';

const ID = 'cch_A1b2C3d4E5f6G7h8I9j0Kl';
const EDGE = 'edge.example.com';
// Edge ports differ from the origins' so a port left unchanged shows up.
const EDGE_PORT: Record<CacheType, number> = {
  postgres: 6543,
  mysql: 4306,
  mariadb: 4306,
  mssql: 2433,
};

interface Row {
  name: string;
  cacheType: CacheType;
  input: string;
  cacheId?: string;
  edgeHost?: string;
  expected?: string;
  error?: { code: ConnectionStringErrorCode; fragment: string };
}

const rows: Row[] = [
  // Postgres
  {
    name: 'postgres: host and port become the edge, the cache id is appended as application_name',
    cacheType: 'postgres',
    input: 'postgres://alice:secret@db.internal:5432/app',
    expected: `postgres://alice:secret@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: a percent-encoded password is kept byte for byte',
    cacheType: 'postgres',
    input: 'postgres://alice:p%40ss%2Fword@db.internal:5432/app',
    expected: `postgres://alice:p%40ss%2Fword@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: a percent-encoded ":" in the password stays encoded',
    cacheType: 'postgres',
    input: 'postgres://alice:a%3Ab%3Ac@db.internal:5432/app',
    expected: `postgres://alice:a%3Ab%3Ac@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: a raw ":" inside the password is kept',
    cacheType: 'postgres',
    input: 'postgres://alice:pa:ss@db.internal/app',
    expected: `postgres://alice:pa:ss@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: case of user, password escapes, database and parameters is kept',
    cacheType: 'postgres',
    input: 'postgres://Alice:PW%2f@DB.Internal:5432/App?SSLMode=Require',
    expected: `postgres://Alice:PW%2f@${EDGE}:6543/App?SSLMode=Require&application_name=${ID}`,
  },
  {
    name: 'postgres: the postgresql:// scheme is kept as written',
    cacheType: 'postgres',
    input: 'postgresql://alice:pw@db.internal:5432/app',
    expected: `postgresql://alice:pw@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: an origin without a port gets the edge port',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app',
    expected: `postgres://alice:pw@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: an IPv6 origin with a port',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@[2001:db8::1]:5432/app',
    expected: `postgres://alice:pw@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: an IPv6 origin without a port',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@[::1]/app',
    expected: `postgres://alice:pw@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: sslmode is kept and application_name goes after it',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal:5432/app?sslmode=require',
    expected: `postgres://alice:pw@${EDGE}:6543/app?sslmode=require&application_name=${ID}`,
  },
  {
    name: 'postgres: an existing application_name is replaced where it stands',
    cacheType: 'postgres',
    input:
      'postgres://alice:pw@db.internal/app?sslmode=require&application_name=my%20app&connect_timeout=10',
    expected: `postgres://alice:pw@${EDGE}:6543/app?sslmode=require&application_name=${ID}&connect_timeout=10`,
  },
  {
    name: 'postgres: an application_name first in the query stays first',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app?application_name=psql&sslmode=verify-full',
    expected: `postgres://alice:pw@${EDGE}:6543/app?application_name=${ID}&sslmode=verify-full`,
  },
  {
    name: 'postgres: an empty query gets just application_name',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app?',
    expected: `postgres://alice:pw@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: a trailing "&" does not double up',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app?sslmode=require&',
    expected: `postgres://alice:pw@${EDGE}:6543/app?sslmode=require&application_name=${ID}`,
  },
  {
    name: 'postgres: no database path',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal:5432',
    expected: `postgres://alice:pw@${EDGE}:6543?application_name=${ID}`,
  },
  {
    name: 'postgres: a user without a password',
    cacheType: 'postgres',
    input: 'postgres://alice@db.internal/app',
    expected: `postgres://alice@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: an empty password is kept as written',
    cacheType: 'postgres',
    input: 'postgres://alice:@db.internal/app',
    expected: `postgres://alice:@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: no user at all is fine (libpq defaults it)',
    cacheType: 'postgres',
    input: 'postgres://db.internal/app',
    expected: `postgres://${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: whitespace around the string is trimmed',
    cacheType: 'postgres',
    input: '  postgres://alice:pw@db.internal/app \n',
    expected: `postgres://alice:pw@${EDGE}:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: an IPv6 edge host is bracketed',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app',
    edgeHost: '2001:db8::7',
    expected: `postgres://alice:pw@[2001:db8::7]:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: an already bracketed IPv6 edge host is not bracketed twice',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app',
    edgeHost: '[::1]',
    expected: `postgres://alice:pw@[::1]:6543/app?application_name=${ID}`,
  },
  {
    name: 'postgres: host and port query parameters point at the edge too',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@/app?host=db.internal&port=5433',
    expected: `postgres://alice:pw@${EDGE}:6543/app?host=${EDGE}&port=6543&application_name=${ID}`,
  },
  {
    name: 'postgres: hostaddr is dropped so it cannot bypass the edge',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal/app?hostaddr=10.0.0.5&sslmode=require',
    expected: `postgres://alice:pw@${EDGE}:6543/app?sslmode=require&application_name=${ID}`,
  },
  {
    name: 'postgres: several origin hosts become the one edge',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db1:5432,[::2]:5433/app?target_session_attrs=read-write',
    expected: `postgres://alice:pw@${EDGE}:6543/app?target_session_attrs=read-write&application_name=${ID}`,
  },
  {
    name: 'postgres: a fragment stays at the end',
    cacheType: 'postgres',
    input: 'postgres://alice@db.internal/app#notes',
    expected: `postgres://alice@${EDGE}:6543/app?application_name=${ID}#notes`,
  },
  {
    name: 'postgres: a mysql:// string is a type mismatch naming both',
    cacheType: 'postgres',
    input: 'mysql://app:pw@db.internal:3306/shop',
    error: {
      code: 'connection_string.type_mismatch',
      fragment: 'MySQL connection string (mysql://), but the cache is a Postgres cache',
    },
  },
  {
    name: 'postgres: an ADO.NET string is a type mismatch naming SQL Server',
    cacheType: 'postgres',
    input: 'Server=sql.internal,1433;User Id=app;Password=pw',
    error: { code: 'connection_string.type_mismatch', fragment: 'SQL Server connection string' },
  },
  {
    name: 'postgres: a URL without a host',
    cacheType: 'postgres',
    input: 'postgres:///app',
    error: { code: 'connection_string.missing_host', fragment: 'names no host' },
  },
  {
    name: 'postgres: a port without a host',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@:5432/app',
    error: { code: 'connection_string.missing_host', fragment: 'names no host' },
  },
  {
    name: 'postgres: an IPv6 origin without brackets',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@2001:db8::1:5432/app',
    error: { code: 'connection_string.invalid', fragment: 'must be written in brackets' },
  },
  {
    name: 'postgres: an IPv6 origin missing its closing bracket',
    cacheType: 'postgres',
    input: 'postgres://alice@[::1/app',
    error: { code: 'connection_string.invalid', fragment: 'closing "]"' },
  },
  {
    name: 'postgres: a port that is not a number',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal:54x2/app',
    error: { code: 'connection_string.invalid', fragment: 'not a number from 1 to 65535' },
  },
  {
    name: 'postgres: a port above 65535',
    cacheType: 'postgres',
    input: 'postgres://alice:pw@db.internal:70000/app',
    error: { code: 'connection_string.invalid', fragment: 'not a number from 1 to 65535' },
  },
  {
    name: 'postgres: a raw "/" in the password gets a percent-encoding hint',
    cacheType: 'postgres',
    input: 'postgres://alice:pa/ss@db.internal/app',
    error: { code: 'connection_string.invalid', fragment: 'percent-encode it' },
  },
  {
    name: 'postgres: keyword/value libpq strings are refused with the URL form to use',
    cacheType: 'postgres',
    input: 'host=db.internal port=5432 dbname=app user=alice',
    error: { code: 'connection_string.invalid', fragment: 'Keyword/value strings' },
  },
  {
    name: 'postgres: a non-database scheme',
    cacheType: 'postgres',
    input: 'https://db.internal/app',
    error: {
      code: 'connection_string.invalid',
      fragment: '"https://" is not a database connection string',
    },
  },
  {
    name: 'postgres: a JDBC URL is told to drop its prefix',
    cacheType: 'postgres',
    input: 'jdbc:postgresql://db.internal:5432/app',
    error: { code: 'connection_string.invalid', fragment: 'remove the "jdbc:" prefix' },
  },
  {
    name: 'postgres: a host and path without a scheme',
    cacheType: 'postgres',
    input: 'db.internal:5432/app',
    error: { code: 'connection_string.invalid', fragment: 'not a URL' },
  },
  {
    name: 'an empty string',
    cacheType: 'postgres',
    input: '',
    error: { code: 'connection_string.empty', fragment: 'is empty' },
  },
  {
    name: 'a whitespace-only string',
    cacheType: 'mysql',
    input: ' \t\n ',
    error: { code: 'connection_string.empty', fragment: 'is empty' },
  },
  {
    name: 'a cache id with a hyphen',
    cacheType: 'mysql',
    cacheId: 'cch-abc',
    input: 'mysql://app:pw@db.internal/shop',
    error: {
      code: 'connection_string.invalid_cache_id',
      fragment: 'letters, digits and underscores',
    },
  },
  {
    name: 'an empty cache id',
    cacheType: 'postgres',
    cacheId: '',
    input: 'postgres://alice@db.internal/app',
    error: {
      code: 'connection_string.invalid_cache_id',
      fragment: 'letters, digits and underscores',
    },
  },

  // MySQL and MariaDB
  {
    name: 'mysql: the user is prefixed with the cache id and the host becomes the edge',
    cacheType: 'mysql',
    input: 'mysql://app:secret@db.internal:3306/shop',
    expected: `mysql://${ID}-app:secret@${EDGE}:4306/shop`,
  },
  {
    name: 'mysql: percent-encoded user and password and query parameters are kept',
    cacheType: 'mysql',
    input: 'mysql://app%2Buser:p%40ss%2Fword@db.internal/shop?ssl-mode=REQUIRED&charset=utf8mb4',
    expected: `mysql://${ID}-app%2Buser:p%40ss%2Fword@${EDGE}:4306/shop?ssl-mode=REQUIRED&charset=utf8mb4`,
  },
  {
    name: 'mysql: application_name is not a MySQL thing and is left alone',
    cacheType: 'mysql',
    input: 'mysql://app:pw@db.internal/shop?application_name=x',
    expected: `mysql://${ID}-app:pw@${EDGE}:4306/shop?application_name=x`,
  },
  {
    name: 'mysql: a user without password and no database',
    cacheType: 'mysql',
    input: 'mysql://app@db.internal',
    expected: `mysql://${ID}-app@${EDGE}:4306`,
  },
  {
    name: 'mysql: a mariadb:// string is accepted (same wire protocol)',
    cacheType: 'mysql',
    input: 'mariadb://app:pw@db.internal:3306/shop',
    expected: `mariadb://${ID}-app:pw@${EDGE}:4306/shop`,
  },
  {
    name: 'mariadb: a mariadb:// string with an IPv6 origin',
    cacheType: 'mariadb',
    input: 'mariadb://app:pw@[fd00::5]:3306/shop',
    expected: `mariadb://${ID}-app:pw@${EDGE}:4306/shop`,
  },
  {
    name: 'mariadb: a mysql:// string is accepted',
    cacheType: 'mariadb',
    input: 'mysql://app:pw@db.internal/shop',
    expected: `mysql://${ID}-app:pw@${EDGE}:4306/shop`,
  },
  {
    name: 'mysql: an IPv6 edge host is bracketed',
    cacheType: 'mysql',
    input: 'mysql://app:pw@db.internal/shop',
    edgeHost: '::1',
    expected: `mysql://${ID}-app:pw@[::1]:4306/shop`,
  },
  {
    name: 'mysql: no user is refused because the cache id rides in it',
    cacheType: 'mysql',
    input: 'mysql://db.internal:3306/shop',
    error: {
      code: 'connection_string.missing_user',
      fragment: 'cache id rides in the username, so the connection string needs a user',
    },
  },
  {
    name: 'mysql: an empty user before the password is refused',
    cacheType: 'mysql',
    input: 'mysql://:pw@db.internal/shop',
    error: { code: 'connection_string.missing_user', fragment: 'mysql://USER:PASSWORD@HOST/DB' },
  },
  {
    name: 'mysql: a raw "/" in the user gets a percent-encoding hint',
    cacheType: 'mysql',
    input: 'mysql://us/er:pw@db.internal/shop',
    error: { code: 'connection_string.missing_user', fragment: 'percent-encode it' },
  },
  {
    name: 'mysql: no host',
    cacheType: 'mysql',
    input: 'mysql://app:pw@/shop',
    error: { code: 'connection_string.missing_host', fragment: 'names no host' },
  },
  {
    name: 'mysql: a postgres:// string is a type mismatch naming both',
    cacheType: 'mysql',
    input: 'postgres://alice:pw@db.internal/app',
    error: {
      code: 'connection_string.type_mismatch',
      fragment: 'Postgres connection string (postgres://), but the cache is a MySQL cache',
    },
  },
  {
    name: 'mariadb: a sqlserver:// string is a type mismatch naming both',
    cacheType: 'mariadb',
    input: 'sqlserver://sql.internal:1433;user=app',
    error: {
      code: 'connection_string.type_mismatch',
      fragment: 'SQL Server connection string (sqlserver://), but the cache is a MariaDB cache',
    },
  },

  // MS SQL: sqlserver:// and mssql:// URLs
  {
    name: 'mssql: a sqlserver:// URL with properties has its host, port and user rewritten',
    cacheType: 'mssql',
    input:
      'sqlserver://sql.internal:1433;databaseName=shop;user=app;password={p@ss;w0rd};encrypt=true',
    expected: `sqlserver://${EDGE}:2433;databaseName=shop;user=${ID}-app;password={p@ss;w0rd};encrypt=true`,
  },
  {
    name: 'mssql: serverName and portNumber properties point at the edge too',
    cacheType: 'mssql',
    input:
      'sqlserver://;serverName=sql.internal;portNumber=1433;databaseName=shop;userName=app;password=pw',
    expected: `sqlserver://${EDGE}:2433;serverName=${EDGE};portNumber=2433;databaseName=shop;userName=${ID}-app;password=pw`,
  },
  {
    name: 'mssql: a named instance is replaced by the edge port',
    cacheType: 'mssql',
    input: 'sqlserver://sql.internal\\SQLEXPRESS;user=app;password=pw',
    expected: `sqlserver://${EDGE}:2433;user=${ID}-app;password=pw`,
  },
  {
    name: 'mssql: a braced user gets the prefix inside the braces',
    cacheType: 'mssql',
    input: 'sqlserver://sql.internal:1433;user={app;x};password=pw',
    expected: `sqlserver://${EDGE}:2433;user={${ID}-app;x};password=pw`,
  },
  {
    name: 'mssql: an mssql:// URL with user and password before the host',
    cacheType: 'mssql',
    input: 'mssql://app:p%40ss@sql.internal:1433/shop?encrypt=true',
    expected: `mssql://${ID}-app:p%40ss@${EDGE}:2433/shop?encrypt=true`,
  },
  {
    name: 'mssql: a sqlserver:// URL with an IPv6 origin',
    cacheType: 'mssql',
    input: 'sqlserver://app:pw@[2001:db8::9]:1433?database=shop',
    expected: `sqlserver://${ID}-app:pw@${EDGE}:2433?database=shop`,
  },
  {
    name: 'mssql: a sqlserver:// URL without a user',
    cacheType: 'mssql',
    input: 'sqlserver://sql.internal:1433;databaseName=shop;integratedSecurity=true',
    error: { code: 'connection_string.missing_user', fragment: ';user=USER' },
  },
  {
    name: 'mssql: an mssql:// URL without a user',
    cacheType: 'mssql',
    input: 'mssql://sql.internal/shop',
    error: { code: 'connection_string.missing_user', fragment: 'cache id rides in the username' },
  },
  {
    name: 'mssql: a sqlserver:// URL without a host',
    cacheType: 'mssql',
    input: 'sqlserver://;databaseName=shop;user=app;password=pw',
    error: { code: 'connection_string.missing_host', fragment: 'names no host' },
  },
  {
    name: 'mssql: a postgres:// string is a type mismatch naming both',
    cacheType: 'mssql',
    input: 'postgresql://alice@db.internal/app',
    error: {
      code: 'connection_string.type_mismatch',
      fragment: 'Postgres connection string (postgresql://), but the cache is a SQL Server cache',
    },
  },

  // MS SQL: ADO.NET strings
  {
    name: 'mssql ADO: Server and User Id are rewritten, everything else kept',
    cacheType: 'mssql',
    input: 'Server=sql.internal,1433;Database=shop;User Id=app;Password=pw;Encrypt=True',
    expected: `Server=${EDGE},2433;Database=shop;User Id=${ID}-app;Password=pw;Encrypt=True`,
  },
  {
    name: 'mssql ADO: lower-case Data Source with tcp: prefix and UID',
    cacheType: 'mssql',
    input:
      'data source=tcp:sql.internal,1433;initial catalog=shop;UID=app;PWD=pw;TrustServerCertificate=true',
    expected: `data source=tcp:${EDGE},2433;initial catalog=shop;UID=${ID}-app;PWD=pw;TrustServerCertificate=true`,
  },
  {
    name: 'mssql ADO: quoted values, doubled quotes and a trailing ";"',
    cacheType: 'mssql',
    input: `Address="sql.internal";User ID='o''brien';Password="a;b""c";`,
    expected: `Address=${EDGE},2433;User ID='${ID}-o''brien';Password="a;b""c";`,
  },
  {
    name: 'mssql ADO: Addr with a named instance, User, and spaces around "="',
    cacheType: 'mssql',
    input: 'Addr = sql.internal\\SQLEXPRESS ; User = app ; Password = pw',
    expected: `Addr = ${EDGE},2433 ; User = ${ID}-app ; Password = pw`,
  },
  {
    name: 'mssql ADO: an IPv6 edge host is written bare before ",PORT"',
    cacheType: 'mssql',
    input: 'Server=sql.internal;User Id=app;Password=pw',
    edgeHost: '2001:db8::7',
    expected: `Server=2001:db8::7,2433;User Id=${ID}-app;Password=pw`,
  },
  {
    name: 'mssql ADO: Windows authentication has no user to carry the cache id',
    cacheType: 'mssql',
    input: 'Server=sql.internal;Database=shop;Integrated Security=SSPI',
    error: {
      code: 'connection_string.missing_user',
      fragment: 'Windows authentication cannot carry a cache id',
    },
  },
  {
    name: 'mssql ADO: an empty User Id',
    cacheType: 'mssql',
    input: 'Server=sql.internal;User Id=;Password=pw',
    error: { code: 'connection_string.missing_user', fragment: 'cache id rides in the username' },
  },
  {
    name: 'mssql ADO: no server',
    cacheType: 'mssql',
    input: 'Database=shop;User Id=app;Password=pw',
    error: { code: 'connection_string.missing_host', fragment: 'Server=HOST,1433' },
  },
  {
    name: 'mssql ADO: an unterminated quote',
    cacheType: 'mssql',
    input: 'Server=sql.internal;User Id=app;Password="pw',
    error: { code: 'connection_string.invalid', fragment: 'never closes it' },
  },
  {
    name: 'mssql ADO: a named-pipe server cannot go through the edge',
    cacheType: 'mssql',
    input: 'Server=np:\\\\sql\\pipe\\sql\\query;User Id=app;Password=pw',
    error: { code: 'connection_string.invalid', fragment: 'reached over TCP' },
  },
  {
    name: 'mssql: a bare host name',
    cacheType: 'mssql',
    input: 'sql.internal',
    error: { code: 'connection_string.invalid', fragment: 'neither a URL nor KEY=VALUE' },
  },
  {
    name: 'mysql: an ADO.NET string is a type mismatch naming both',
    cacheType: 'mysql',
    input: 'Data Source=sql.internal;User Id=app;Password=pw',
    error: { code: 'connection_string.type_mismatch', fragment: 'but the cache is a MySQL cache' },
  },
  {
    name: 'an ADO.NET Failover Partner would bypass the edge',
    cacheType: 'mssql',
    input: 'Server=sql.internal,1433;Failover Partner=sql-b.internal;User Id=app;Password=pw',
    error: { code: 'connection_string.invalid', fragment: 'Failover Partner' },
  },
  {
    name: 'a MySQL socketPath would bypass the edge',
    cacheType: 'mysql',
    input: 'mysql://app:pw@db.internal:3306/shop?socketPath=/var/run/mysqld/mysqld.sock',
    error: { code: 'connection_string.invalid', fragment: 'socketPath' },
  },
];

function convert(row: Pick<Row, 'cacheType' | 'input' | 'cacheId' | 'edgeHost'>): string {
  return toEdgeConnectionString({
    cacheId: row.cacheId ?? ID,
    cacheType: row.cacheType,
    connectionString: row.input,
    edgeHost: row.edgeHost ?? EDGE,
    edgePort: EDGE_PORT[row.cacheType],
  });
}

function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, none was thrown');
}

describe('toEdgeConnectionString', () => {
  it.each(rows.map((row) => [row.name, row] as const))('%s', (_name, row) => {
    if (row.expected !== undefined) {
      expect(convert(row)).toBe(row.expected);
      return;
    }
    const error = thrownBy(() => convert(row));
    expect(error).toBeInstanceOf(ConnectionStringError);
    expect(error).toMatchObject({ code: row.error?.code });
    expect((error as Error).message).toContain(row.error?.fragment);
  });

  it('never repeats the password in an error message', () => {
    const error = thrownBy(() =>
      convert({
        cacheType: 'mssql',
        input: 'Server=sql.internal;User Id=app;Password=hunter2;secretpart',
      }),
    );
    expect(error).toMatchObject({ code: 'connection_string.invalid' });
    expect((error as Error).message).not.toContain('secretpart');
    const portError = thrownBy(() =>
      convert({ cacheType: 'postgres', input: 'postgres://a:hunter2/x@db/app' }),
    );
    expect((portError as Error).message).not.toContain('hunter2');
  });

  it('treats a bad edge host or port as a configuration bug, not bad input', () => {
    const base = {
      cacheId: ID,
      cacheType: 'postgres' as const,
      connectionString: 'postgres://a@db/app',
    };
    expect(() => toEdgeConnectionString({ ...base, edgeHost: '', edgePort: 6543 })).toThrow(
      RangeError,
    );
    expect(() => toEdgeConnectionString({ ...base, edgeHost: 'a/b', edgePort: 6543 })).toThrow(
      RangeError,
    );
    expect(() => toEdgeConnectionString({ ...base, edgeHost: EDGE, edgePort: 0 })).toThrow(
      RangeError,
    );
    expect(() => toEdgeConnectionString({ ...base, edgeHost: EDGE, edgePort: 1.5 })).toThrow(
      RangeError,
    );
  });
});

describe('toEdgeConnectionString with random passwords', () => {
  // A seeded generator so a failure reproduces.
  function mulberry32(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const random = mulberry32(20240607);
  const unicode = ['é', 'ß', 'Ω', 'ж', '中', '文', '😀', '🔑', '\u00a0', 'ñ'];
  function randomPassword(): string {
    const length = 1 + Math.floor(random() * 24);
    let password = '';
    for (let i = 0; i < length; i++) {
      password +=
        random() < 0.85
          ? String.fromCharCode(0x20 + Math.floor(random() * 95))
          : unicode[Math.floor(random() * unicode.length)];
    }
    return password;
  }
  const edgeHosts = [EDGE, '::1', '2001:db8::7'];

  it('keeps 500 percent-encoded passwords byte for byte, readable by new URL()', () => {
    for (let i = 0; i < 500; i++) {
      const password = randomPassword();
      const encoded = encodeURIComponent(password);
      const cacheType: CacheType = i % 2 === 0 ? 'postgres' : 'mysql';
      const scheme = cacheType === 'postgres' ? 'postgres' : 'mysql';
      const edgeHost = edgeHosts[i % edgeHosts.length] ?? EDGE;
      const urlHost = edgeHost.includes(':') ? `[${edgeHost}]` : edgeHost;
      const output = convert({
        cacheType,
        input: `${scheme}://app:${encoded}@db.internal:5432/shop`,
        edgeHost,
      });

      const credentials = output.slice(`${scheme}://`.length, output.lastIndexOf(`@${urlHost}:`));
      expect(credentials.slice(credentials.indexOf(':') + 1)).toBe(encoded);

      const url = new URL(output);
      expect(decodeURIComponent(url.password)).toBe(password);
      expect(url.hostname).toBe(urlHost);
      expect(url.port).toBe(String(EDGE_PORT[cacheType]));
      expect(url.username).toBe(cacheType === 'postgres' ? 'app' : `${ID}-app`);
    }
  });
});
