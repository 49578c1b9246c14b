// The walsender's CopyData frames and the pgoutput messages inside them (protocol version 1), as
// far as invalidation needs: which relations a transaction touched and where it ended. Bytes in,
// typed messages out; column values are never decoded. And the one frame a follower sends back.

// Frames in CopyData (the walsender's streaming replication protocol).
export const XLogData = 0x77; // w
export const PrimaryKeepalive = 0x6b; // k
export const StandbyStatusUpdate = 0x72; // r

// pgoutput messages inside XLogData.
const Begin = 0x42; // B
const Commit = 0x43; // C
const Origin = 0x4f; // O
const Relation = 0x52; // R
const Type = 0x59; // Y
const Insert = 0x49; // I
const Update = 0x55; // U
const Delete = 0x44; // D
const Truncate = 0x54; // T
const LogicalMessage = 0x4d; // M

/** Postgres timestamps count microseconds from 2000-01-01 UTC. */
const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1);

export type WalFrame =
  | { kind: 'xlog'; walEnd: bigint; message: PgoutputMessage }
  | { kind: 'keepalive'; walEnd: bigint; replyRequested: boolean };

export type PgoutputMessage =
  | { tag: 'begin'; commitTime: number }
  | { tag: 'commit'; endLsn: bigint; commitTime: number }
  | { tag: 'relation'; relationId: number; schema: string; name: string }
  /** Insert, Update or Delete of rows of one relation. */
  | { tag: 'change'; relationId: number }
  | { tag: 'truncate'; relationIds: number[] }
  /** Origin and Type: nothing to invalidate. */
  | { tag: 'ignored' }
  /**
   * A logical decoding message (the DDL event trigger's, or anyone's) or a code this reader does
   * not know: it cannot say what changed.
   */
  | { tag: 'unknown'; code: number };

const toMs = (microseconds: bigint) => POSTGRES_EPOCH_MS + Number(microseconds / 1000n);

/** One CopyData payload from the walsender; null for a frame kind this reader does not know. */
export function parseWalFrame(frame: Buffer): WalFrame | null {
  switch (frame[0]) {
    case XLogData:
      // w, start LSN, end of WAL on the server, send time, then the pgoutput message.
      return {
        kind: 'xlog',
        walEnd: frame.readBigUInt64BE(9),
        message: parsePgoutput(frame.subarray(25)),
      };
    case PrimaryKeepalive:
      return {
        kind: 'keepalive',
        walEnd: frame.readBigUInt64BE(1),
        replyRequested: frame[17] === 1,
      };
    default:
      return null;
  }
}

export function parsePgoutput(message: Buffer): PgoutputMessage {
  switch (message[0]) {
    case Begin:
      // B, final LSN, commit time, xid.
      return { tag: 'begin', commitTime: toMs(message.readBigInt64BE(9)) };
    case Commit:
      // C, flags, commit LSN, end LSN, commit time.
      return {
        tag: 'commit',
        endLsn: message.readBigUInt64BE(10),
        commitTime: toMs(message.readBigInt64BE(18)),
      };
    case Relation: {
      // R, relation id, namespace (cstring), name (cstring), then columns (not needed).
      const relationId = message.readUInt32BE(1);
      const schemaEnd = message.indexOf(0, 5);
      const nameEnd = message.indexOf(0, schemaEnd + 1);
      return {
        tag: 'relation',
        relationId,
        schema: message.toString('utf8', 5, schemaEnd),
        name: message.toString('utf8', schemaEnd + 1, nameEnd),
      };
    }
    case Insert:
    case Update:
    case Delete:
      return { tag: 'change', relationId: message.readUInt32BE(1) };
    case Truncate: {
      // T, number of relations, options, their ids.
      const count = message.readUInt32BE(1);
      const relationIds: number[] = [];
      for (let i = 0; i < count; i++) relationIds.push(message.readUInt32BE(6 + 4 * i));
      return { tag: 'truncate', relationIds };
    }
    case Origin:
    case Type:
      return { tag: 'ignored' };
    case LogicalMessage:
    default:
      return { tag: 'unknown', code: message[0] ?? 0 };
  }
}

/**
 * The follower's standby status: everything up to `flushed` is applied (the slot may forget it).
 * `replyRequested` asks the server for a keepalive at once, which is how the follower learns it
 * has caught up and that the link is alive.
 */
export function standbyStatusUpdate(flushed: bigint, replyRequested: boolean): Buffer {
  const frame = Buffer.alloc(34);
  frame[0] = StandbyStatusUpdate;
  frame.writeBigUInt64BE(flushed, 1); // written
  frame.writeBigUInt64BE(flushed, 9); // flushed
  frame.writeBigUInt64BE(flushed, 17); // applied
  frame.writeBigInt64BE(BigInt(Date.now() - POSTGRES_EPOCH_MS) * 1000n, 25);
  frame[33] = replyRequested ? 1 : 0;
  return frame;
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** `16/B374D848` as a number. */
export function parseLsn(text: string): bigint {
  const [high = '0', low = '0'] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}
