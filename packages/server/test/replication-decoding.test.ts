// The change-stream readers' decoding, from bytes: walsender frames and pgoutput messages as
// Postgres sends them (layouts from the protocol docs, "Logical Streaming Replication Protocol"),
// and the TRUNCATE statements of a binary log.
import { describe, expect, it } from 'vitest';
import { truncatedTable } from '../src/replication/binlog-follower.ts';
import {
  formatLsn,
  parsePgoutput,
  parseWalFrame,
  standbyStatusUpdate,
} from '../src/replication/pgoutput.ts';

const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1);
const int8 = (value: number) => Buffer.from([value]);
const int32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
};
const int64 = (value: bigint) => {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64BE(value);
  return bytes;
};
const cstring = (text: string) => Buffer.from(`${text}\0`);
const letter = (code: string) => Buffer.from(code, 'ascii');
/** A Postgres timestamp (microseconds since 2000-01-01) for a JavaScript time. */
const pgTime = (ms: number) => BigInt(ms - POSTGRES_EPOCH_MS) * 1000n;

describe('pgoutput messages', () => {
  const committed = Date.UTC(2026, 11, 7, 6, 30, 0, 250);

  it('Begin and Commit give the commit time and the LSN to confirm', () => {
    expect(
      parsePgoutput(
        Buffer.concat([letter('B'), int64(0x1_6b3748n), int64(pgTime(committed)), int32(733)]),
      ),
    ).toEqual({ tag: 'begin', commitTime: committed });
    expect(
      parsePgoutput(
        Buffer.concat([
          letter('C'),
          int8(0),
          int64(0x1_6b3748n),
          int64(0x1_6b3778n),
          int64(pgTime(committed)),
        ]),
      ),
    ).toEqual({ tag: 'commit', endLsn: 0x1_6b3778n, commitTime: committed });
  });

  it('Relation names a relation id; Insert, Update and Delete name the id they change', () => {
    const relation = Buffer.concat([
      letter('R'),
      int32(16_384),
      cstring('public'),
      cstring('items'),
      letter('d'),
      Buffer.from([0, 1]),
      int8(1),
      cstring('id'),
      int32(23),
      int32(0xffffffff),
    ]);
    expect(parsePgoutput(relation)).toEqual({
      tag: 'relation',
      relationId: 16_384,
      schema: 'public',
      name: 'items',
    });
    const tuple = Buffer.concat([Buffer.from([0, 1]), letter('t'), int32(1), Buffer.from('7')]);
    for (const code of ['I', 'U', 'D']) {
      const keyOrNew = code === 'I' ? 'N' : 'K';
      expect(
        parsePgoutput(Buffer.concat([letter(code), int32(16_390), letter(keyOrNew), tuple])),
      ).toEqual({ tag: 'change', relationId: 16_390 });
    }
  });

  it('Truncate names every relation it empties', () => {
    expect(
      parsePgoutput(Buffer.concat([letter('T'), int32(2), int8(1), int32(16_384), int32(16_400)])),
    ).toEqual({ tag: 'truncate', relationIds: [16_384, 16_400] });
  });

  it('Origin and Type change nothing; a logical message or an unknown code is unmapped', () => {
    expect(parsePgoutput(Buffer.concat([letter('O'), int64(1n), cstring('node')]))).toEqual({
      tag: 'ignored',
    });
    expect(
      parsePgoutput(Buffer.concat([letter('Y'), int32(700), cstring('public'), cstring('mood')])),
    ).toEqual({ tag: 'ignored' });
    const message = Buffer.concat([
      letter('M'),
      int8(1),
      int64(0x1_6b3748n),
      cstring('edgegate_ddl'),
      int32(11),
      Buffer.from('ALTER TABLE'),
    ]);
    expect(parsePgoutput(message)).toEqual({ tag: 'unknown', code: 0x4d });
    expect(parsePgoutput(letter('S'))).toEqual({ tag: 'unknown', code: 0x53 });
  });
});

describe('walsender frames', () => {
  it('XLogData carries the server WAL end and a pgoutput message', () => {
    const frame = Buffer.concat([
      letter('w'),
      int64(0x10n),
      int64(0x2_0000_0040n),
      int64(0n),
      letter('T'),
      int32(1),
      int8(0),
      int32(42),
    ]);
    expect(parseWalFrame(frame)).toEqual({
      kind: 'xlog',
      walEnd: 0x2_0000_0040n,
      message: { tag: 'truncate', relationIds: [42] },
    });
  });

  it('a keepalive carries the WAL end and whether a reply is wanted', () => {
    const keepalive = (reply: number) =>
      Buffer.concat([letter('k'), int64(0x5_0000_0100n), int64(0n), int8(reply)]);
    expect(parseWalFrame(keepalive(1))).toEqual({
      kind: 'keepalive',
      walEnd: 0x5_0000_0100n,
      replyRequested: true,
    });
    expect(parseWalFrame(keepalive(0))).toMatchObject({ replyRequested: false });
    expect(parseWalFrame(letter('x'))).toBeNull();
  });

  it('the standby status confirms one LSN as written, flushed and applied', () => {
    const frame = standbyStatusUpdate(0x3_0000_00a0n, true);
    expect(frame).toHaveLength(34);
    expect(frame[0]).toBe(0x72);
    for (const offset of [1, 9, 17]) expect(frame.readBigUInt64BE(offset)).toBe(0x3_0000_00a0n);
    const sentAt = POSTGRES_EPOCH_MS + Number(frame.readBigInt64BE(25) / 1000n);
    expect(Math.abs(sentAt - Date.now())).toBeLessThan(5000);
    expect(frame[33]).toBe(1);
    expect(standbyStatusUpdate(0n, false)[33]).toBe(0);
    expect(formatLsn(0x3_0000_00a0n)).toBe('3/A0');
  });
});

describe('TRUNCATE in a binary log', () => {
  it('names the table as the MySQL edge does: lower-case database.table', () => {
    expect(truncatedTable('TRUNCATE TABLE Items', 'App')).toBe('app.items');
    expect(truncatedTable('truncate `shop`.`Orders`', 'app')).toBe('shop.orders');
    expect(truncatedTable('TRUNCATE tools;', 'app')).toBe('app.tools');
    expect(truncatedTable('DROP TABLE tools', 'app')).toBeNull();
    expect(truncatedTable('TRUNCATE TABLE a, b', 'app')).toBeNull();
  });
});
