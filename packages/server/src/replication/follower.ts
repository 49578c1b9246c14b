// What every change-stream follower (Postgres slot, MySQL/MariaDB binary log) is given and does.
import type { EdgeLogger } from '@edgegate/edge';
import type { ReplicationCredential, ReplicationOrigin } from './origin-link.ts';

export interface FollowerState {
  status: 'following' | 'catching_up' | 'down';
  reason: string | null;
  lagSeconds: number | null;
  /** Bytes of the origin's log not yet applied (Postgres: WAL end − confirmed), when known. */
  lagBytes?: number | null;
}

export interface FollowerOptions {
  origin: ReplicationOrigin;
  credential: ReplicationCredential;
  /** Postgres: the publication to follow. */
  publication: string | null;
  /** Binary log: where the last run stopped (`file:position`); null: the log's current end. */
  position: string | null;
  /** Behind the origin by more than this, the follower reports `catching_up`. */
  maxLagSeconds: number;
  /** Postgres tables by bare name, MySQL by lower-case `database.table`, or the whole cache. */
  /**
   * Invalidates on this node at once; the promise (with other edge nodes) settles when the others
   * have been told, which a Postgres follower waits for before it confirms the commit.
   */
  invalidate(tables: readonly string[] | 'all'): void | Promise<void>;
  report(state: FollowerState): void;
  logger: EdgeLogger;
}

export interface Follower {
  /** Follows until `stop` (resolves) or until the link fails (rejects: the caller retries). */
  run(): Promise<void>;
  stop(): Promise<void>;
  /** Releases what the origin keeps for this follower (a Postgres slot). */
  drop(): Promise<void>;
  /** Where a new run would resume, as stored for the API and the next start. */
  readonly position: string | null;
}
