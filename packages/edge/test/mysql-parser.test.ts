// The MySQL packet framer: any chunking, 16 MiB pieces joined, limits, order of pieces, pausing.
import { describe, expect, it } from 'vitest';
import { PacketParser, ProtocolError, codes, serialize } from '../src/mysql/protocol/index.ts';
import type { Packet } from '../src/mysql/protocol/index.ts';
import { clientPayloads, hex, serverPayloads } from './mysql-protocol-fixtures.ts';

const PIECE = codes.MAX_PACKET_PIECE_BYTES;

function collect(parser: PacketParser, chunks: Buffer[]): Packet[] {
  const packets: Packet[] = [];
  for (const chunk of chunks) parser.parse(chunk, (packet) => void packets.push(packet));
  return packets;
}

// Every fixture framed with its own sequence id, as one byte stream.
const payloads = [...serverPayloads, ...clientPayloads, Buffer.alloc(0)];
const stream = Buffer.concat(payloads.map((payload, i) => serialize.packet(i, payload)));

function expectAllFixtures(packets: Packet[]): void {
  expect(packets.map((p) => p.payload.toString('hex'))).toEqual(
    payloads.map((p) => p.toString('hex')),
  );
  expect(packets.map((p) => p.sequenceId)).toEqual(payloads.map((_p, i) => i));
}

describe('framing', () => {
  it('a header is a 3-byte little-endian length and a sequence id', () => {
    expect(serialize.packet(3, hex('0e')).toString('hex')).toBe('010000030e');
    expect(serialize.packet(256 + 7, Buffer.alloc(0)).toString('hex')).toBe('00000007');
  });

  it('yields the same packets at every split point of a stream', () => {
    for (let at = 0; at <= stream.length; at++) {
      const parser = new PacketParser();
      expectAllFixtures(collect(parser, [stream.subarray(0, at), stream.subarray(at)]));
      expect(parser.bufferedBytes).toBe(0);
    }
  });

  it('yields the same packets fed one byte at a time, and at every pair of split points of a packet', () => {
    const parser = new PacketParser();
    const bytes = Array.from({ length: stream.length }, (_b, i) => stream.subarray(i, i + 1));
    expectAllFixtures(collect(parser, bytes));
    const one = serialize.packet(0, serverPayloads[0] as Buffer);
    for (let a = 0; a <= one.length; a++) {
      for (let b = a; b <= one.length; b++) {
        const packets = collect(new PacketParser(), [
          one.subarray(0, a),
          one.subarray(a, b),
          one.subarray(b),
        ]);
        expect(packets).toHaveLength(1);
        expect(packets[0]?.payload).toEqual(serverPayloads[0]);
      }
    }
  });

  it('counts the bytes of an unfinished packet as buffered', () => {
    const parser = new PacketParser();
    expect(collect(parser, [stream.subarray(0, 2)])).toEqual([]);
    expect(parser.bufferedBytes).toBe(2);
    expect(collect(parser, [stream.subarray(2, 10)])).toEqual([]);
    expect(parser.bufferedBytes).toBe(10);
  });

  it('hands out views of the chunk, not copies, for packets that fit in it', () => {
    const packets = collect(new PacketParser(), [stream]);
    expect(packets[0]?.payload.buffer).toBe(stream.buffer);
  });

  // The edge relays a packet as the chunk's bytes at chunkOffset: they must be exactly the packet
  // as framed (header and payload) whenever it is given, at every split point of the stream.
  it('gives where a packet whole in its chunk starts there, and -1 for one that is not', () => {
    const framed = payloads.map((payload, i) => serialize.packet(i, payload));
    for (let at = 0; at <= stream.length; at++) {
      const parser = new PacketParser();
      const chunks = [stream.subarray(0, at), stream.subarray(at)];
      const seen: { packet: Packet; chunk: Buffer }[] = [];
      for (const chunk of chunks) {
        parser.parse(chunk, (packet) => void seen.push({ packet, chunk }));
      }
      let whole = 0;
      seen.forEach(({ packet, chunk }, i) => {
        const wire = framed[i] as Buffer;
        if (packet.chunkOffset < 0) return;
        whole += 1;
        const bytes = chunk.subarray(packet.chunkOffset, packet.chunkOffset + wire.length);
        expect(bytes.equals(wire)).toBe(true);
      });
      // Only the packet the split cuts lacks one.
      expect(whole).toBeGreaterThanOrEqual(payloads.length - 1);
      if (at === 0 || at === stream.length) expect(whole).toBe(payloads.length);
    }
  });

  it('gives no chunk offset to a packet joined from pieces or completed from an earlier chunk', () => {
    const one = serialize.packet(0, serverPayloads[0] as Buffer);
    const [first] = collect(new PacketParser(), [one.subarray(0, 3), one.subarray(3)]);
    expect(first?.chunkOffset).toBe(-1);
    const big = Buffer.alloc(PIECE + 3, 7);
    const [joined] = collect(new PacketParser(), [serialize.packet(0, big)]);
    expect(joined?.pieces).toBe(2);
    expect(joined?.chunkOffset).toBe(-1);
  });
});

describe('packets of 16 MiB and more', () => {
  it.each([
    ['just under one piece', PIECE - 1, 1],
    ['exactly one piece (an empty piece follows)', PIECE, 2],
    ['one piece and a bit', PIECE + 10, 2],
    ['two pieces and a bit', 2 * PIECE + 5, 3],
  ])('%s: split on write, joined on read', (_label, size, pieces) => {
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4099) payload[i] = i % 251;
    const wire = serialize.packet(254, payload);
    expect(wire.length).toBe(size + 4 * pieces);
    // The last piece's id wraps around 255.
    const chunks: Buffer[] = [];
    for (let at = 0; at < wire.length; at += 65536) chunks.push(wire.subarray(at, at + 65536));
    const parser = new PacketParser();
    const packets = collect(parser, [...chunks, serialize.packet(0, hex('0e'))]);
    expect(packets).toHaveLength(2);
    expect(packets[0]).toMatchObject({
      sequenceId: 254,
      lastSequenceId: (254 + pieces - 1) & 0xff,
      pieces,
    });
    expect(packets[0]?.payload.equals(payload)).toBe(true);
    expect(packets[1]?.payload).toEqual(hex('0e'));
    expect(parser.bufferedBytes).toBe(0);
  });

  it('refuses a next piece whose sequence id does not follow', () => {
    const wire = serialize.packet(5, Buffer.alloc(PIECE + 1));
    wire[4 + PIECE + 3] = 9;
    const error = catchError(() => collect(new PacketParser(), [wire]));
    expect(error).toMatchObject({ errno: codes.ER_NET_PACKETS_OUT_OF_ORDER, sqlState: '08S01' });
  });
});

describe('limits', () => {
  it('refuses a packet above the limit from its header alone, and stays failed', () => {
    const parser = new PacketParser({ maxPacketBytes: 1024 });
    expect(collect(parser, [serialize.packet(0, Buffer.alloc(1024))])).toHaveLength(1);
    const header = serialize.packet(1, Buffer.alloc(1025)).subarray(0, 4);
    const error = catchError(() => collect(parser, [header]));
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({ errno: codes.ER_NET_PACKET_TOO_LARGE, sqlState: '08S01' });
    expect(catchError(() => collect(parser, [serialize.packet(2, hex('0e'))]))).toBe(error);
  });

  it('counts the pieces already received against the limit', () => {
    const parser = new PacketParser({ maxPacketBytes: PIECE + 100 });
    expect(collect(parser, [serialize.packet(0, Buffer.alloc(PIECE + 100))])).toHaveLength(1);
    const tooBig = serialize.packet(0, Buffer.alloc(PIECE + 101));
    expect(catchError(() => collect(parser, [tooBig]))).toMatchObject({
      errno: codes.ER_NET_PACKET_TOO_LARGE,
    });
  });

  it('a header split across chunks is checked once complete', () => {
    const parser = new PacketParser({ maxPacketBytes: 10 });
    const wire = serialize.packet(0, Buffer.alloc(11));
    expect(collect(parser, [wire.subarray(0, 3)])).toEqual([]);
    expect(catchError(() => collect(parser, [wire.subarray(3, 4)]))).toBeInstanceOf(ProtocolError);
  });
});

describe('pausing after a packet', () => {
  it('keeps the bytes after an SSLRequest for the TLS layer', () => {
    const ssl = serialize.sslRequest({
      capabilities: codes.CLIENT_PROTOCOL_41 | codes.CLIENT_SSL,
      maxPacketSize: 0,
      characterSet: 45,
    });
    const clientHello = hex('16030100c4010000c00303');
    const parser = new PacketParser();
    const seen: Packet[] = [];
    parser.parse(Buffer.concat([serialize.packet(1, ssl), clientHello]), (packet) => {
      seen.push(packet);
      return 'pause';
    });
    expect(seen).toHaveLength(1);
    expect(parser.bufferedBytes).toBe(clientHello.length);
    expect(parser.takeHeld()).toEqual(clientHello);
    expect(parser.bufferedBytes).toBe(0);
    expect(parser.takeHeld()).toHaveLength(0);
  });

  it('resumes with held bytes first when they are not taken', () => {
    const parser = new PacketParser();
    const seen: string[] = [];
    const onPacket = (packet: Packet) => {
      seen.push(packet.payload.toString('hex'));
      return 'pause' as const;
    };
    const wire = Buffer.concat([serialize.packet(0, hex('0e')), serialize.packet(0, hex('01'))]);
    parser.parse(wire.subarray(0, 7), onPacket);
    parser.parse(wire.subarray(7), onPacket);
    expect(seen).toEqual(['0e', '01']);
  });
});

function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}
