// The most a Node MySQL edge can do here: sysbench's point select answered from one stored reply.
// The login and every other command are relayed to the origin (argv[2]); a point select — as text
// (COM_QUERY) or as an execution of its prepared statement — is answered with the bytes the origin
// sent for the first one, whatever the id: framing only, no parsing, no lookup. Prints its port;
// answers `{stats: true}` with how many point selects it answered itself.
import net from 'node:net';
import {
  PacketParser,
  codes,
  decodeClientHandshake,
  decodeHandshakeV10,
  serialize,
} from '../../packages/edge/src/mysql/protocol/index.ts';
import type { Packet } from '../../packages/edge/src/mysql/protocol/index.ts';

const [originPort] = process.argv.slice(2).map(Number) as [number];
// sysbench's point select (oltp_common.lua, one table): `id=` and a number as text, `id=?` prepared.
const POINT_SELECT = Buffer.from('SELECT c FROM sbtest1 WHERE id=');
const POINT_SELECT_PREPARED = Buffer.concat([POINT_SELECT, Buffer.from('?')]);
// COM_STMT_PREPARE_OK: 0x00, then the 4-byte statement id; COM_STMT_EXECUTE: 0x17, then the same.
const STATEMENT_ID = { start: 1, end: 5 };

type Reply = 'text' | 'binary';
/** The stored replies as the origin framed them (sequence ids from 1), shared by all connections. */
const stored: Record<Reply, Buffer | null> = { text: null, binary: null };
let answered = 0;

/** What the origin's next packets are; every origin byte is relayed unchanged but the greeting. */
type Step =
  | { kind: 'greeting' }
  /** Until the origin's OK; the client's HandshakeResponse41 tells whether EOF is deprecated. */
  | { kind: 'login' }
  | { kind: 'relay' }
  /** The reply to a COM_STMT_PREPARE of the point select: its first packet carries the id. */
  | { kind: 'prepare' }
  /** The reply to the first point select of a kind, kept as it passes. */
  | { kind: 'capture'; reply: Reply; packets: Buffer[]; columns: number; seen: number };

function handle(client: net.Socket): void {
  const origin = net.connect({ host: '127.0.0.1', port: originPort, noDelay: true });
  const clientParser = new PacketParser();
  const originParser = new PacketParser();
  let step: Step = { kind: 'greeting' };
  let deprecateEof = false;
  let pointStatement: Buffer | null = null;
  const close = () => {
    client.destroy();
    origin.destroy();
  };
  for (const socket of [client, origin]) {
    socket.on('error', close);
    socket.on('close', close);
  }

  client.on('data', (chunk: Buffer) =>
    clientParser.parse(chunk, (packet) => {
      const { payload } = packet;
      if (step.kind === 'greeting' || step.kind === 'login') {
        if (packet.sequenceId === 1) {
          const login = decodeClientHandshake(payload);
          deprecateEof = (login.capabilities & codes.CLIENT_DEPRECATE_EOF) !== 0;
        }
        return void origin.write(frame(packet));
      }
      const reply = pointSelectReply(payload, pointStatement);
      if (reply !== null) {
        const bytes = stored[reply];
        if (bytes !== null) {
          answered += 1;
          return void client.write(bytes);
        }
        step = { kind: 'capture', reply, packets: [], columns: -1, seen: 0 };
      } else if (
        payload[0] === codes.COM_STMT_PREPARE &&
        payload.subarray(1).equals(POINT_SELECT_PREPARED)
      ) {
        step = { kind: 'prepare' };
      }
      origin.write(frame(packet));
    }),
  );

  origin.on('data', (chunk: Buffer) => {
    let replaced: Buffer | null = null;
    originParser.parse(chunk, (packet) => {
      switch (step.kind) {
        case 'greeting':
          replaced = greeting(packet.payload);
          step = { kind: 'login' };
          return;
        case 'login':
          if (packet.payload[0] === codes.OK_HEADER) step = { kind: 'relay' };
          return;
        case 'prepare':
          if (packet.payload[0] === codes.OK_HEADER) {
            pointStatement = Buffer.from(
              packet.payload.subarray(STATEMENT_ID.start, STATEMENT_ID.end),
            );
          }
          step = { kind: 'relay' };
          return;
        case 'capture':
          step.packets.push(frame(packet));
          if (endsResultSet(step, packet.payload, deprecateEof)) {
            stored[step.reply] = Buffer.concat(step.packets);
            step = { kind: 'relay' };
          }
          return;
        case 'relay':
          return;
      }
    });
    client.write(replaced ?? chunk);
  });
}

// Which stored reply answers this command, if it is a point select.
function pointSelectReply(payload: Buffer, pointStatement: Buffer | null): Reply | null {
  if (
    payload[0] === codes.COM_QUERY &&
    payload.length > POINT_SELECT.length + 1 &&
    payload.compare(POINT_SELECT, 0, POINT_SELECT.length, 1, POINT_SELECT.length + 1) === 0
  ) {
    return 'text';
  }
  if (
    payload[0] === codes.COM_STMT_EXECUTE &&
    pointStatement !== null &&
    payload.compare(pointStatement, 0, 4, STATEMENT_ID.start, STATEMENT_ID.end) === 0
  ) {
    return 'binary';
  }
  return null;
}

// A result set is the column count, that many definitions, an EOF unless CLIENT_DEPRECATE_EOF,
// the rows, then an EOF (or an OK with the 0xfe header); an ERR ends it early.
function endsResultSet(
  capture: Extract<Step, { kind: 'capture' }>,
  payload: Buffer,
  deprecateEof: boolean,
): boolean {
  capture.seen += 1;
  if (payload[0] === codes.ERR_HEADER) return true;
  if (capture.columns < 0) {
    // A point select has one column: the count fits the first byte.
    capture.columns = payload[0] as number;
    return capture.columns === 0;
  }
  if (capture.seen <= 1 + capture.columns + (deprecateEof ? 0 : 1)) return false;
  return payload[0] === codes.EOF_HEADER && payload.length < codes.MAX_PACKET_PIECE_BYTES;
}

// The origin's greeting without TLS and compression, which would hide the frames, and without
// MariaDB's metadata cache, which would make a stored reply depend on what its connection had seen
// (the edge refuses all three as well).
function greeting(payload: Buffer): Buffer {
  const handshake = decodeHandshakeV10(payload);
  handshake.capabilities =
    (handshake.capabilities & ~codes.CLIENT_SSL & ~codes.CLIENT_COMPRESS) >>> 0;
  handshake.mariadbCapabilities &= ~codes.MARIADB_CLIENT_CACHE_METADATA;
  return serialize.packet(0, serialize.handshakeV10(handshake));
}

function frame(packet: Packet): Buffer {
  return serialize.packet(packet.sequenceId, packet.payload);
}

const server = net.createServer({ noDelay: true }, handle);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n');
});
process.on('message', (message: { stats?: boolean }) => {
  if (message.stats) process.send?.({ answered });
});
