// Pure functions that build MySQL packet payloads, and `packet` that frames a payload for the wire.
// Payloads carry no header because the sequence id depends on where in an exchange they are sent.
import * as codes from './codes.ts';
import type { HandshakeV10, OkPacket } from './messages.ts';

const TWO_BYTES = 0x10000;
const THREE_BYTES = 0x1000000;

export function lenencInt(value: number | bigint): Buffer {
  const n = BigInt(value);
  if (n < 0n || n >= 2n ** 64n) throw new RangeError(`${n} does not fit a length-encoded integer`);
  if (n < BigInt(codes.LENENC_NULL)) return Buffer.from([Number(n)]);
  if (n < TWO_BYTES) {
    const out = Buffer.alloc(3);
    out[0] = codes.LENENC_2_BYTES;
    out.writeUInt16LE(Number(n), 1);
    return out;
  }
  if (n < THREE_BYTES) {
    const out = Buffer.alloc(4);
    out[0] = codes.LENENC_3_BYTES;
    out.writeUIntLE(Number(n), 1, 3);
    return out;
  }
  const out = Buffer.alloc(9);
  out[0] = codes.LENENC_8_BYTES;
  out.writeBigUInt64LE(n, 1);
  return out;
}

export function lenencString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([lenencInt(bytes.length), bytes]);
}

function cstring(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

function uint16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16LE(value);
  return out;
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value >>> 0);
  return out;
}

/**
 * Frames `payload` starting at `sequenceId`: a payload of 16 MiB − 1 or more becomes 0xffffff-byte
 * pieces with consecutive ids, ending with a shorter (possibly empty) piece.
 */
export function packet(sequenceId: number, payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  let sequence = sequenceId & 0xff;
  let offset = 0;
  for (;;) {
    const length = Math.min(codes.MAX_PACKET_PIECE_BYTES, payload.length - offset);
    const header = Buffer.alloc(codes.PACKET_HEADER_BYTES);
    header.writeUIntLE(length, 0, 3);
    header[3] = sequence;
    parts.push(header, payload.subarray(offset, offset + length));
    offset += length;
    sequence = (sequence + 1) & 0xff;
    if (length < codes.MAX_PACKET_PIECE_BYTES) return Buffer.concat(parts);
  }
}

/** The server's greeting; `authPluginData` is the whole scramble (20 bytes for the usual plugins). */
export function handshakeV10(handshake: HandshakeV10): Buffer {
  const { authPluginData, capabilities } = handshake;
  const part1 = authPluginData.subarray(0, codes.SCRAMBLE_PART_1_BYTES);
  const part2 = authPluginData.subarray(codes.SCRAMBLE_PART_1_BYTES);
  const mariadb = (capabilities & codes.CLIENT_MYSQL) === 0;
  // Filler, capabilities (low), charset, status, capabilities (high), auth data length,
  // 6 reserved bytes, then MariaDB's extended capabilities (or 4 more reserved bytes).
  const fixed = Buffer.alloc(19);
  fixed.writeUInt16LE(capabilities & 0xffff, 1);
  fixed[3] = handshake.characterSet;
  fixed.writeUInt16LE(handshake.statusFlags, 4);
  fixed.writeUInt16LE(capabilities >>> 16, 6);
  fixed[8] = (capabilities & codes.CLIENT_PLUGIN_AUTH) !== 0 ? authPluginData.length + 1 : 0;
  fixed.writeUInt32LE(mariadb ? handshake.mariadbCapabilities >>> 0 : 0, 15);
  const parts = [
    Buffer.from([codes.PROTOCOL_VERSION_10]),
    cstring(handshake.serverVersion),
    uint32(handshake.connectionId),
    part1,
    fixed,
  ];
  if ((capabilities & codes.CLIENT_SECURE_CONNECTION) !== 0) {
    // Part 2 is at least 13 bytes with its terminator.
    const padded = Buffer.alloc(Math.max(13, part2.length + 1));
    part2.copy(padded);
    parts.push(padded);
  }
  if ((capabilities & codes.CLIENT_PLUGIN_AUTH) !== 0) {
    parts.push(cstring(handshake.authPluginName ?? codes.MYSQL_NATIVE_PASSWORD));
  }
  return Buffer.concat(parts);
}

export interface HandshakeResponseInput {
  capabilities: number;
  mariadbCapabilities?: number;
  maxPacketSize: number;
  characterSet: number;
  username: string;
  authResponse: Buffer;
  database?: string | null;
  authPluginName?: string | null;
  connectAttributes?: [string, string][] | null;
  zstdCompressionLevel?: number | null;
}

/** The fixed 32-byte prefix of a HandshakeResponse41; sent alone (with CLIENT_SSL) it is an SSLRequest. */
export function sslRequest(input: {
  capabilities: number;
  mariadbCapabilities?: number;
  maxPacketSize: number;
  characterSet: number;
}): Buffer {
  const out = Buffer.alloc(codes.HANDSHAKE_RESPONSE_FIXED_BYTES);
  out.writeUInt32LE(input.capabilities >>> 0, 0);
  out.writeUInt32LE(input.maxPacketSize >>> 0, 4);
  out[8] = input.characterSet;
  if ((input.capabilities & codes.CLIENT_MYSQL) === 0) {
    out.writeUInt32LE((input.mariadbCapabilities ?? 0) >>> 0, 28);
  }
  return out;
}

/** A HandshakeResponse41 laid out as the capabilities in it say. */
export function handshakeResponse41(input: HandshakeResponseInput): Buffer {
  const { capabilities } = input;
  const has = (flag: number) => (capabilities & flag) !== 0;
  const parts = [sslRequest(input), cstring(input.username)];
  if (has(codes.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)) {
    parts.push(lenencString(input.authResponse));
  } else if (has(codes.CLIENT_SECURE_CONNECTION)) {
    if (input.authResponse.length > 0xff) throw new RangeError('auth response above 255 bytes');
    parts.push(Buffer.from([input.authResponse.length]), input.authResponse);
  } else {
    parts.push(input.authResponse, Buffer.from([0]));
  }
  if (has(codes.CLIENT_CONNECT_WITH_DB)) parts.push(cstring(input.database ?? ''));
  if (has(codes.CLIENT_PLUGIN_AUTH)) parts.push(cstring(input.authPluginName ?? ''));
  if (has(codes.CLIENT_CONNECT_ATTRS)) {
    const pairs = (input.connectAttributes ?? []).flatMap(([key, value]) => [
      lenencString(key),
      lenencString(value),
    ]);
    parts.push(lenencString(Buffer.concat(pairs)));
  }
  if (has(codes.CLIENT_ZSTD_COMPRESSION_ALGORITHM)) {
    parts.push(Buffer.from([input.zstdCompressionLevel ?? 3]));
  }
  return Buffer.concat(parts);
}

/** An ERR packet; without CLIENT_PROTOCOL_41 (`protocol41: false`) it carries no SQLSTATE. */
export function errPacket(
  error: { code: number; sqlState: string; message: string },
  protocol41 = true,
): Buffer {
  if (!/^[0-9A-Z]{5}$/.test(error.sqlState)) {
    throw new RangeError(`${JSON.stringify(error.sqlState)} is not a SQLSTATE`);
  }
  const head = Buffer.alloc(3);
  head[0] = codes.ERR_HEADER;
  head.writeUInt16LE(error.code, 1);
  const state = protocol41 ? Buffer.from(`#${error.sqlState}`, 'latin1') : Buffer.alloc(0);
  return Buffer.concat([head, state, Buffer.from(error.message, 'utf8')]);
}

export type OkInput = Partial<
  Omit<OkPacket, 'sessionStateChanges' | 'affectedRows' | 'lastInsertId'>
> & {
  affectedRows?: number | bigint;
  lastInsertId?: number | bigint;
};

/** An OK packet (no session state block) laid out for the agreed `capabilities`. */
export function okPacket(ok: OkInput, capabilities: number): Buffer {
  const parts = [
    Buffer.from([ok.header ?? codes.OK_HEADER]),
    lenencInt(ok.affectedRows ?? 0),
    lenencInt(ok.lastInsertId ?? 0),
  ];
  const status = (ok.statusFlags ?? 0) & ~codes.SERVER_SESSION_STATE_CHANGED;
  if ((capabilities & codes.CLIENT_PROTOCOL_41) !== 0) {
    parts.push(uint16(status), uint16(ok.warnings ?? 0));
  } else if ((capabilities & codes.CLIENT_TRANSACTIONS) !== 0) {
    parts.push(uint16(status));
  }
  const info = ok.info ?? '';
  if ((capabilities & codes.CLIENT_SESSION_TRACK) !== 0) {
    if (info !== '') parts.push(lenencString(info));
  } else {
    parts.push(Buffer.from(info, 'utf8'));
  }
  return Buffer.concat(parts);
}

export function eofPacket(eof: { warnings?: number; statusFlags?: number }): Buffer {
  const out = Buffer.alloc(5);
  out[0] = codes.EOF_HEADER;
  out.writeUInt16LE(eof.warnings ?? 0, 1);
  out.writeUInt16LE(eof.statusFlags ?? 0, 3);
  return out;
}

export function authSwitchRequest(pluginName: string, pluginData: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([codes.AUTH_SWITCH_REQUEST_HEADER]),
    cstring(pluginName),
    pluginData,
  ]);
}

export function authMoreData(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([codes.AUTH_MORE_DATA_HEADER]), data]);
}

/** A command packet's payload: the command byte and its argument (COM_QUERY text, COM_INIT_DB schema…). */
export function command(code: number, argument: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof argument === 'string' ? Buffer.from(argument, 'utf8') : argument;
  return Buffer.concat([Buffer.from([code]), body]);
}

/** COM_CHANGE_USER laid out as the agreed capabilities say (the inverse of decodeCommand's). */
export function changeUser(
  input: {
    username: string;
    authResponse: Buffer;
    database: string;
    characterSet: number | null;
    authPluginName: string | null;
    connectAttributes: [string, string][] | null;
  },
  capabilities: number,
): Buffer {
  const has = (flag: number) => (capabilities & flag) !== 0;
  const parts = [Buffer.from([codes.COM_CHANGE_USER]), cstring(input.username)];
  if (has(codes.CLIENT_SECURE_CONNECTION)) {
    if (input.authResponse.length > 0xff) throw new RangeError('auth response above 255 bytes');
    parts.push(Buffer.from([input.authResponse.length]), input.authResponse);
  } else {
    parts.push(input.authResponse, Buffer.from([0]));
  }
  parts.push(cstring(input.database));
  if (input.characterSet !== null) {
    const charset = Buffer.alloc(2);
    charset.writeUInt16LE(input.characterSet);
    parts.push(charset);
    if (has(codes.CLIENT_PLUGIN_AUTH)) parts.push(cstring(input.authPluginName ?? ''));
    if (has(codes.CLIENT_CONNECT_ATTRS) && input.connectAttributes !== null) {
      const pairs = input.connectAttributes.flatMap(([key, value]) => [
        lenencString(key),
        lenencString(value),
      ]);
      parts.push(lenencString(Buffer.concat(pairs)));
    }
  }
  return Buffer.concat(parts);
}
