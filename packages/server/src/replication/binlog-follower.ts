// Follows one MySQL/MariaDB cache's origin through its row-based binary log (@vlasky/zongji, pure
// JS over mysql2): at each commit (Xid, or COMMIT for non-transactional tables) the tables its row
// events touched are invalidated as lower-case `database.table`, as the MySQL edge names them;
// TRUNCATE invalidates its table and other DDL the whole cache (they arrive as query events).
// The position after the last invalidated commit is stored, so a restart resumes from there.
import ZongJi, { type AnyBinlogEvent } from '@vlasky/zongji';
import { createHash, randomBytes } from 'node:crypto';
import { guardedAddress } from './origin-link.ts';
import type { Follower, FollowerOptions } from './follower.ts';

const ROW_EVENTS = new Set(['writerows', 'updaterows', 'deleterows']);
const IGNORED_STATEMENTS = /^\s*(BEGIN|SAVEPOINT|ROLLBACK\s+TO|RELEASE\s+SAVEPOINT|XA\s)/i;
const COMMIT = /^\s*COMMIT\s*$/i;
const ROLLBACK = /^\s*ROLLBACK\s*$/i;
const TRUNCATE =
  /^\s*TRUNCATE\s+(?:TABLE\s+)?(?:`([^`]+)`|(\w+))(?:\.(?:`([^`]+)`|(\w+)))?\s*;?\s*$/i;

// Two readers with one replica id keep disconnecting each other: every process (an edge node)
// and cache get their own, so several nodes can each follow the log for their own cache.
const PROCESS_SALT = randomBytes(8).toString('hex');

function serverIdOf(cacheId: string): number {
  const digest = createHash('sha256').update(`${PROCESS_SALT}:${cacheId}`).digest();
  return 0x10000 + (digest.readUInt32BE(0) % 0x7fff0000);
}

/** The table a TRUNCATE names, as `database.table` in lower case; null if it is not a TRUNCATE. */
export function truncatedTable(statement: string, schema: string): string | null {
  const match = TRUNCATE.exec(statement);
  if (match === null) return null;
  const first = match[1] ?? match[2] ?? '';
  const second = match[3] ?? match[4];
  return (second === undefined ? `${schema}.${first}` : `${first}.${second}`).toLowerCase();
}

export class BinlogFollower implements Follower {
  readonly #options: FollowerOptions;
  #reader: ZongJi | null = null;
  #stopped = false;
  #file: string | null = null;
  #position: string | null;
  #pending = new Set<string>();
  /** Where the log ended when a resumed run started, until the stream has passed it. */
  #end: { file: string; position: number } | null = null;
  #all = false;

  constructor(options: FollowerOptions) {
    this.#options = options;
    this.#position = options.position;
  }

  get position(): string | null {
    return this.#position;
  }

  run(): Promise<void> {
    return guardedAddress(this.#options.origin).then(
      (host) =>
        new Promise<void>((resolve, reject) => {
          if (this.#stopped) return resolve();
          const { origin, credential } = this.#options;
          const reader = new ZongJi({
            host,
            port: origin.port,
            user: credential.username,
            password: credential.password,
            ...(origin.originTls === 'require' ? { ssl: { rejectUnauthorized: false } } : {}),
          });
          this.#reader = reader;
          this.#pending = new Set();
          this.#all = false;
          const resume = this.#position?.match(/^(.+):(\d+)$/) ?? null;
          if (resume === null) {
            // From the log's end: what was cached before may predate writes never to be seen.
            this.#options.invalidate('all');
          } else {
            this.#file = resume[1] ?? null;
          }
          reader.on('ready', () => this.#onReady(reader));
          reader.on('binlog', (event) => {
            try {
              this.#onEvent(event);
            } catch (error) {
              // Start over from the last invalidated commit rather than guess past this event.
              reader.stop();
              reject(error as Error);
            }
          });
          reader.on('error', (error) => {
            reader.stop();
            reject(error);
          });
          reader.on('stopped', () => resolve());
          reader.start({
            serverId: serverIdOf(origin.cacheId),
            includeEvents: [
              'rotate',
              'tablemap',
              'writerows',
              'updaterows',
              'deleterows',
              'query',
              'xid',
            ],
            ...(resume === null
              ? { startAtEnd: true }
              : { filename: resume[1] as string, position: Number(resume[2]) }),
          });
        }),
    );
  }

  /** Caught up when the stream has passed where the log ended as it started (the backlog). */
  #onReady(reader: ZongJi): void {
    if (this.#file === null) {
      this.#options.report({ status: 'following', reason: null, lagSeconds: 0 });
      return;
    }
    reader.ctrlConnection?.query('SHOW MASTER STATUS', (error, rows) => {
      const end = (rows as { File?: string; Position?: number }[] | undefined)?.[0];
      if (error !== null || end?.File === undefined || end.Position === undefined) {
        this.#options.report({
          status: 'catching_up',
          reason: `could not read where the binary log ends: ${error?.message ?? 'no answer'}`,
          lagSeconds: null,
        });
        return;
      }
      this.#end = { file: end.File, position: end.Position };
      this.#reportProgress(0);
    });
  }

  /** Whether the last invalidated commit is at or past the log's end as it was at the start. */
  #caughtUp(): boolean {
    const end = this.#end;
    if (end === null) return true;
    const at = this.#position?.match(/^(.+):(\d+)$/);
    const file = at?.[1] ?? '';
    const done = file > end.file || (file === end.file && Number(at?.[2]) >= end.position);
    if (done) this.#end = null;
    return done;
  }

  #reportProgress(lagSeconds: number): void {
    const behind = !this.#caughtUp() || lagSeconds > this.#options.maxLagSeconds;
    this.#options.report({
      status: behind ? 'catching_up' : 'following',
      reason: behind ? `${lagSeconds.toFixed(0)} s behind the origin` : null,
      lagSeconds,
    });
  }

  #onEvent(event: AnyBinlogEvent): void {
    const name = event.getEventName();
    if (name === 'rotate' && 'binlogName' in event) {
      this.#file = event.binlogName;
      return;
    }
    if (ROW_EVENTS.has(name) && 'tableMap' in event && 'tableId' in event) {
      const table = event.tableMap[event.tableId];
      if (table === undefined) this.#all = true;
      else this.#pending.add(`${table.parentSchema}.${table.tableName}`.toLowerCase());
      return;
    }
    if (name === 'xid') {
      this.#commit(event);
      return;
    }
    if (name === 'query' && 'query' in event) {
      const statement = event.query;
      if (COMMIT.test(statement)) return this.#commit(event);
      if (ROLLBACK.test(statement)) {
        this.#pending = new Set();
        this.#all = false;
        return;
      }
      if (IGNORED_STATEMENTS.test(statement)) return;
      // DDL commits on its own (and so what came before it in the session).
      const truncated = truncatedTable(statement, event.schema);
      if (truncated !== null) this.#pending.add(truncated);
      else this.#all = true;
      this.#commit(event);
    }
  }

  #commit(event: AnyBinlogEvent): void {
    if (this.#all) this.#options.invalidate('all');
    else if (this.#pending.size > 0) this.#options.invalidate([...this.#pending]);
    this.#pending = new Set();
    this.#all = false;
    if (this.#file !== null) this.#position = `${this.#file}:${event.nextPosition}`;
    // Binary log timestamps are whole seconds: the lag reads up to a second high.
    this.#reportProgress(Math.max(0, (Date.now() - event.timestamp) / 1000));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#reader?.stop();
  }

  /** The binary log is the server's own: nothing is kept for this reader. */
  async drop(): Promise<void> {}
}
