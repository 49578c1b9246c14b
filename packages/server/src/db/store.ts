// Opens the control-plane store: embedded PGlite in DATA_DIR, or Postgres at DATABASE_URL.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import { Migrator, type MigrationResultSet } from 'kysely/migration';
import type { Database } from './schema.ts';
import type PgModule from 'pg';
import { migrationProvider } from './migrations/index.ts';
import { PipelinedPool } from './pipelined-pool.ts';

export type Db = Kysely<Database>;

export interface Store {
  db: Db;
  /**
   * For hot single statements (no transaction, no session state): on Postgres they share
   * pipelined connections (pipelined-pool.ts); on PGlite this is `db`.
   */
  pipelined: Db;
  kind: 'pglite' | 'postgres';
  /**
   * LISTENs on a channel: `onNotify` gets each payload (NOTIFY is delivered on commit), and
   * `onGap` is called when notifications may have been missed (a dropped connection), so the
   * listener can re-read what it caches. `onConnection` is told when the listening connection
   * drops and when it is back (readiness). Returns a function that stops listening.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onGap: () => void,
    onConnection?: (connected: boolean) => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** `postgres://…` for a pg pool; otherwise the embedded store. */
  databaseUrl?: string | undefined;
  /** Where the embedded store lives; `memory://` keeps it in memory (tests). */
  dataDir: string;
  /**
   * Told when an idle pooled connection fails (Postgres restarted, connection killed). The pool
   * drops that connection and opens another on demand; without a listener the error would end
   * the process.
   */
  onIdleError?: (error: Error) => void;
}

/** How long opening a store connection may take before the request that needed it fails. */
export const STORE_CONNECT_TIMEOUT_MS = 5_000;

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const { default: pg } = await import('pg');
    // A small pool: on a few cores more Postgres backends mean more context switches, not more work.
    // `pipelined` shares two pipelined connections for single statements (pipelined-pool.ts).
    const Client = preparingClient(pg);
    // A store that does not answer a connection attempt fails the request in 5 s instead of
    // holding it until the client gives up (an unreachable host never refuses).
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: 10,
      Client,
      connectionTimeoutMillis: STORE_CONNECT_TIMEOUT_MS,
    });
    pool.on('error', (error) => options.onIdleError?.(error));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const pipelined = new PipelinedPool(
      () =>
        new Client({
          connectionString: options.databaseUrl,
          pipeline: true,
          connectionTimeoutMillis: STORE_CONNECT_TIMEOUT_MS,
        }),
      (error) => options.onIdleError?.(error),
    );
    const pipelinedDb = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: pipelined as unknown as PgModule.Pool }),
    });
    const listeners = new Set<() => Promise<void>>();
    return {
      db,
      pipelined: pipelinedDb,
      kind: 'postgres',
      async listen(channel, onNotify, onGap, onConnection) {
        const stop = await listenWithReconnect(pg, options, channel, onNotify, onGap, onConnection);
        listeners.add(stop);
        return async () => {
          listeners.delete(stop);
          await stop();
        };
      },
      async close() {
        await Promise.all([...listeners].map((stop) => stop()));
        await Promise.all([db.destroy(), pipelinedDb.destroy()]);
      },
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  let location = options.dataDir;
  if (location !== 'memory://') {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    location = join(options.dataDir, 'pglite');
  }
  const pglite = await PGlite.create(location === 'memory://' ? undefined : location);
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
  return {
    db,
    pipelined: db,
    kind: 'pglite',
    async listen(channel, onNotify) {
      // One in-process database: nothing can be missed, so no gaps.
      return pglite.listen(channel, onNotify);
    },
    async close() {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Brings the schema up to date; safe to run on every start and from several nodes. */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(`migration ${failed} failed: ${String(result.error)}`, {
      cause: result.error,
    });
  }
  return result;
}

// A dedicated connection for LISTEN (a pooled one would be handed to queries); when it drops it is
// reopened after a second, and the listener is told it may have missed notifications. Stopping
// ends the connection whatever state it is in, one being reopened included: a reopen that finished
// after the stop would otherwise leave a LISTEN connection open behind a closed store.
async function listenWithReconnect(
  pg: typeof PgModule,
  options: StoreOptions,
  channel: string,
  onNotify: (payload: string) => void,
  onGap: () => void,
  onConnection: (connected: boolean) => void = () => {},
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: PgModule.Client | null = null;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const next = new pg.Client({
      connectionString: options.databaseUrl,
      connectionTimeoutMillis: STORE_CONNECT_TIMEOUT_MS,
    });
    client = next;
    next.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    next.on('error', (error) => {
      options.onIdleError?.(error);
      reopen(next);
    });
    next.on('end', () => reopen(next));
    await next.connect();
    await next.query(`LISTEN "${channel.replaceAll('"', '""')}"`);
    if (stopped) throw new Error('stopped while reconnecting');
    onConnection(true);
  };
  const reopen = (failed: PgModule.Client): void => {
    if (stopped || retry !== undefined || client !== failed) return;
    onConnection(false);
    client = null;
    retry = setTimeout(() => {
      retry = undefined;
      connect()
        .then(onGap)
        .catch(() => {
          if (client) reopen(client);
        });
    }, 1000);
  };
  try {
    await connect();
  } catch (error) {
    stopped = true;
    clearTimeout(retry);
    throw error;
  }
  return async () => {
    stopped = true;
    clearTimeout(retry);
    const last = client;
    client = null;
    await last?.end().catch(() => {});
  };
}

// Every query Kysely sends becomes a named prepared statement on its connection (named by a hash of
// its text): Postgres parses and plans each shape once per connection instead of once per call.
// Kysely compiles a fixed set of shapes, so the number of statements per connection stays small.
function preparingClient(pg: typeof PgModule): typeof PgModule.Client {
  // The name of each text, computed once: the hash is on every query's path otherwise.
  const names = new Map<string, string>();
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (name === undefined) {
      name = `k${createHash('sha1').update(text).digest('base64url')}`;
      if (names.size >= 10_000) names.clear();
      names.set(text, name);
    }
    return name;
  };
  return class PreparingClient extends pg.Client {
    constructor(config?: string | PgModule.ClientConfig) {
      super(config);
      // The pool lends a connection without its own error listener: a connection cut while a
      // statement runs on it would emit 'error' with nobody listening, and end the process. The
      // statement fails by itself (and the pool drops the connection), so nothing more is owed.
      this.on('error', () => undefined);
    }

    override query(config: unknown, values?: unknown, callback?: unknown): never {
      if (typeof config === 'string' && Array.isArray(values) && callback === undefined) {
        // Made from the text and named afterwards: given a config object, pg copies it through
        // property descriptors (cloneQueryConfig), which cost 4% of the API's hottest route.
        return new Promise<PgModule.QueryResult>((resolve, reject) => {
          const query = new pg.Query(config, values, (error: Error | null | undefined, result) => {
            if (!error) return resolve(result);
            Error.captureStackTrace(error); // as pg does: a stack that leads back to the caller
            reject(error);
          });
          (query as unknown as { name: string }).name = nameOf(config);
          super.query(query);
        }) as never;
      }
      return (super.query as (...args: unknown[]) => never)(config, values, callback);
    }
  } as unknown as typeof PgModule.Client;
}
