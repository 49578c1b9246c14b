// Follows one cache's origin through Postgres logical replication (pgoutput, on the cache's own
// slot): at each Commit, the tables its changes touched are invalidated, and only then is the
// commit confirmed to the slot, so a restart resumes after the last invalidated commit and never
// misses one. Speaks the walsender protocol through `pg` directly (see docs/edge.md for why).
import type pg from 'pg';
import {
  formatLsn,
  parseLsn,
  parseWalFrame,
  standbyStatusUpdate,
  type PgoutputMessage,
} from './pgoutput.ts';
import { connectPostgres, slotNameOf } from './origin-link.ts';
import type { Follower, FollowerOptions } from './follower.ts';

const DUPLICATE_OBJECT = '42710';
const UNDEFINED_OBJECT = '42704';
const OBJECT_IN_USE = '55006';
/** How often the follower confirms its position and asks the server whether it is caught up. */
const HEARTBEAT_MS = 1000;
/** No answer to a heartbeat for this long: the link is treated as dead and made again. */
const SILENCE_MS = 10_000;

interface Transaction {
  tables: Set<string>;
  /** A change the follower could not map to a table, or a relation renamed under it. */
  all: boolean;
}

export class PostgresFollower implements Follower {
  readonly #options: FollowerOptions;
  readonly #slot: string;
  #client: pg.Client | null = null;
  #stopped = false;
  /** Relation id → bare table name, from this connection's Relation messages. */
  #relations = new Map<number, string>();
  #transaction: Transaction | null = null;
  #confirmed = 0n;
  /** The end of the server's WAL, as its last keepalive or data message said. */
  #serverEnd = 0n;
  /**
   * With other edge nodes, a commit is confirmed only once they have been told of it (a node that
   * died between would otherwise leave them stale): confirmations wait in order on this chain.
   */
  #telling: Promise<void> = Promise.resolve();
  #untold = 0;
  /** The server's WAL position when this run started: reached, the follower has caught up. */
  #caughtUpAt: bigint | null = null;
  #lastHeard = 0;
  #heartbeat: NodeJS.Timeout | null = null;

  constructor(options: FollowerOptions) {
    this.#options = options;
    this.#slot = slotNameOf(options.origin.cacheId);
  }

  /** Connects, creates the slot if it is missing and streams until `stop`; reports every failure. */
  async run(): Promise<void> {
    const { origin, credential, publication } = this.#options;
    if (publication === null) throw new Error('a Postgres follower needs a publication');
    this.#relations = new Map();
    this.#transaction = null;
    const client = await connectPostgres(origin, credential, { replication: true });
    this.#client = client;
    if (this.#stopped) {
      await client.end();
      return;
    }
    try {
      await client.query(`CREATE_REPLICATION_SLOT "${this.#slot}" LOGICAL pgoutput`);
      // A new slot starts now: whatever was cached before may predate writes it will never show.
      this.#options.invalidate('all');
    } catch (error) {
      if ((error as { code?: string }).code !== DUPLICATE_OBJECT) throw error;
    }
    const system = await client.query<{ xlogpos: string }>('IDENTIFY_SYSTEM');
    this.#caughtUpAt = parseLsn(system.rows[0]?.xlogpos ?? '0/0');
    // Logical decoding messages (Postgres 14+) carry the DDL event trigger's news (prerequisites.ts).
    const version = await client.query<{ server_version_num: string }>('SHOW server_version_num');
    const messages =
      Number(version.rows[0]?.server_version_num ?? 0) >= 140000 ? `, messages 'true'` : '';
    // Private in pg's types, but it is where a walsender's CopyData frames arrive and leave.
    const connection = (
      client as unknown as {
        connection: {
          on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void;
          once(event: 'replicationStart', listener: () => void): void;
          sendCopyFromChunk(chunk: Buffer): void;
        };
      }
    ).connection;
    connection.on('copyData', ({ chunk }) => {
      try {
        this.#onFrame(chunk, connection);
      } catch (error) {
        // A frame this reader cannot take: nothing after it may be trusted, so start over from
        // the slot (which has not confirmed the transaction it was in).
        client.connection.stream.destroy(error as Error);
      }
    });
    connection.once('replicationStart', () => {
      this.#options.report({ status: 'catching_up', reason: 'reading the slot', lagSeconds: null });
      this.#lastHeard = Date.now();
      // Ask at once whether there is more to read: the answer says when it has caught up.
      connection.sendCopyFromChunk(standbyStatusUpdate(this.#confirmed, true));
      this.#heartbeat = setInterval(() => {
        if (Date.now() - this.#lastHeard > SILENCE_MS) {
          client.connection.stream.destroy(new Error('the origin stopped answering heartbeats'));
          return;
        }
        connection.sendCopyFromChunk(standbyStatusUpdate(this.#confirmed, true));
      }, HEARTBEAT_MS);
      this.#heartbeat.unref();
    });
    try {
      // Resolves when the stream ends; 0/0 means "where the slot's confirmed position is".
      await client.query(
        `START_REPLICATION SLOT "${this.#slot}" LOGICAL 0/0 ` +
          `(proto_version '1', publication_names '"${publication}"'${messages})`,
      );
      if (!this.#stopped) throw new Error('the origin ended the replication stream');
    } catch (error) {
      if (!this.#stopped) throw error;
    } finally {
      if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
      this.#heartbeat = null;
      this.#client = null;
      await client.end().catch(() => undefined);
    }
  }

  #onFrame(chunk: Buffer, connection: { sendCopyFromChunk(chunk: Buffer): void }): void {
    const frame = parseWalFrame(chunk);
    if (frame === null) return;
    this.#lastHeard = Date.now();
    if (frame.walEnd > this.#serverEnd) this.#serverEnd = frame.walEnd;
    if (frame.kind === 'keepalive') {
      // Between transactions everything up to the server's position has been applied: confirming
      // it lets the slot release WAL written by other databases or unpublished tables.
      if (this.#transaction === null && this.#untold === 0) {
        if (frame.walEnd > this.#confirmed) this.#confirmed = frame.walEnd;
        if (this.#caughtUp(frame.walEnd)) {
          this.#options.report({
            status: 'following',
            reason: null,
            lagSeconds: 0,
            lagBytes: this.#lagBytes(),
          });
        }
      }
      if (frame.replyRequested) {
        connection.sendCopyFromChunk(standbyStatusUpdate(this.#confirmed, false));
      }
      return;
    }
    const applied = this.#apply(frame.message);
    if (applied !== null) {
      if (applied.told === undefined && this.#untold === 0) {
        this.#confirmed = applied.endLsn;
        connection.sendCopyFromChunk(standbyStatusUpdate(this.#confirmed, false));
      } else {
        this.#untold += 1;
        const { endLsn, told } = applied;
        this.#telling = this.#telling
          .then(() => told)
          .then(
            () => {
              this.#untold -= 1;
              if (endLsn > this.#confirmed) this.#confirmed = endLsn;
              if (!this.#stopped && this.#client !== null) {
                connection.sendCopyFromChunk(standbyStatusUpdate(this.#confirmed, false));
              }
            },
            (error: unknown) => {
              // Not confirmed: the stream starts over from the slot and tells them again.
              this.#untold -= 1;
              this.#client?.connection.stream.destroy(
                new Error(`could not tell the other edge nodes of a commit: ${String(error)}`),
              );
            },
          );
      }
      const lagSeconds = Math.max(0, (Date.now() - applied.commitTime) / 1000);
      const behind = !this.#caughtUp(applied.endLsn) || lagSeconds > this.#options.maxLagSeconds;
      this.#options.report({
        status: behind ? 'catching_up' : 'following',
        reason: behind ? `${lagSeconds.toFixed(1)} s behind the origin` : null,
        lagSeconds,
        lagBytes: this.#lagBytes(),
      });
    }
  }

  #lagBytes(): number {
    return this.#serverEnd > this.#confirmed ? Number(this.#serverEnd - this.#confirmed) : 0;
  }

  /** Whether the stream has passed where the server was when this run started. */
  #caughtUp(position: bigint): boolean {
    if (this.#caughtUpAt !== null && position >= this.#caughtUpAt) this.#caughtUpAt = null;
    return this.#caughtUpAt === null;
  }

  /** Takes one message; at a Commit, invalidates and returns what to confirm (once `told`). */
  #apply(
    message: PgoutputMessage,
  ): { endLsn: bigint; commitTime: number; told: Promise<void> | undefined } | null {
    switch (message.tag) {
      case 'begin':
        this.#transaction = { tables: new Set(), all: false };
        return null;
      case 'relation': {
        const known = this.#relations.get(message.relationId);
        // Renamed (or a new relation under a reused id): reads cached under the old name go too.
        if (known !== undefined && known !== message.name && this.#transaction !== null) {
          this.#transaction.all = true;
        }
        this.#relations.set(message.relationId, message.name);
        return null;
      }
      case 'change':
        this.#touch([message.relationId]);
        return null;
      case 'truncate':
        this.#touch(message.relationIds);
        return null;
      case 'ignored':
        return null;
      case 'unknown':
        if (this.#transaction !== null) this.#transaction.all = true;
        else this.#options.invalidate('all');
        return null;
      case 'commit': {
        const transaction = this.#transaction;
        this.#transaction = null;
        let told: Promise<void> | undefined;
        if (transaction !== null && (transaction.all || transaction.tables.size > 0)) {
          told =
            this.#options.invalidate(transaction.all ? 'all' : [...transaction.tables]) ??
            undefined;
        }
        return { endLsn: message.endLsn, commitTime: message.commitTime, told };
      }
    }
  }

  #touch(relationIds: readonly number[]): void {
    const transaction = this.#transaction;
    if (transaction === null) return;
    for (const id of relationIds) {
      const name = this.#relations.get(id);
      if (name === undefined) transaction.all = true;
      else transaction.tables.add(name);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const client = this.#client;
    if (client !== null) client.connection.stream.destroy();
  }

  /** Drops the cache's slot (and the publication made for it), so the origin keeps no WAL for it. */
  async drop(): Promise<void> {
    const { origin, credential, publication } = this.#options;
    const client = await connectPostgres(origin, credential, { replication: false });
    try {
      // The walsender of a follower just stopped may hold the slot a moment longer.
      for (let attempt = 1; ; attempt++) {
        try {
          await client.query('SELECT pg_drop_replication_slot($1)', [this.#slot]);
          break;
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code === UNDEFINED_OBJECT) break;
          if (code !== OBJECT_IN_USE || attempt === 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
      if (publication === this.#slot) {
        await client.query(`DROP PUBLICATION IF EXISTS "${publication}"`);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  get position(): string {
    return formatLsn(this.#confirmed);
  }
}
