// Decoders for the server → client packets the edge must read: handshake, auth rounds, OK, ERR, EOF.
import * as codes from './codes.ts';
import type {
  AuthSwitchRequest,
  EofPacket,
  ErrPacket,
  HandshakeV10,
  OkPacket,
  ProgressReport,
  SessionStateChange,
} from './messages.ts';
import { PacketReader, malformed } from './packet-reader.ts';

const has = (flags: number, flag: number): boolean => (flags & flag) !== 0;

export function decodeHandshakeV10(payload: Buffer): HandshakeV10 {
  const reader = new PacketReader(payload);
  const version = reader.uint8();
  if (version !== codes.PROTOCOL_VERSION_10)
    throw malformed(`handshake protocol version ${version}`);
  const serverVersion = reader.cstring();
  const connectionId = reader.uint32();
  const part1 = reader.bytes(codes.SCRAMBLE_PART_1_BYTES);
  reader.skip(1);
  let capabilities = reader.uint16();
  const handshake: HandshakeV10 = {
    serverVersion,
    connectionId,
    authPluginData: part1,
    capabilities,
    mariadbCapabilities: 0,
    characterSet: 0,
    statusFlags: 0,
    authPluginName: null,
  };
  // Servers from before MySQL 4.1 stop here.
  if (reader.remaining === 0) return handshake;
  handshake.characterSet = reader.uint8();
  handshake.statusFlags = reader.uint16();
  capabilities = (capabilities | (reader.uint16() << 16)) >>> 0;
  handshake.capabilities = capabilities;
  const authDataLength = reader.uint8();
  reader.skip(6);
  const extended = reader.uint32();
  if (!has(capabilities, codes.CLIENT_MYSQL)) handshake.mariadbCapabilities = extended;
  if (has(capabilities, codes.CLIENT_SECURE_CONNECTION)) {
    const part2Length = Math.max(13, authDataLength - codes.SCRAMBLE_PART_1_BYTES);
    let part2 = reader.bytes(Math.min(part2Length, reader.remaining));
    if (part2.length > 0 && part2[part2.length - 1] === 0) part2 = part2.subarray(0, -1);
    handshake.authPluginData = Buffer.concat([part1, part2]);
  }
  if (has(capabilities, codes.CLIENT_PLUGIN_AUTH)) {
    // MySQL 5.5.7–5.5.9 left out the terminator.
    handshake.authPluginName = reader.cstringOrRest();
  }
  return handshake;
}

// An OK packet (header 0x00, or 0xfe ending a result set under CLIENT_DEPRECATE_EOF).
export function decodeOk(payload: Buffer, capabilities: number): OkPacket {
  const reader = new PacketReader(payload);
  const header = reader.uint8();
  if (header !== codes.OK_HEADER && header !== codes.EOF_HEADER) {
    throw malformed(`0x${header.toString(16)} does not start an OK packet`);
  }
  const ok: OkPacket = {
    header,
    affectedRows: reader.lenencBigInt(),
    lastInsertId: reader.lenencBigInt(),
    statusFlags: 0,
    warnings: 0,
    info: '',
    sessionStateChanges: [],
  };
  if (has(capabilities, codes.CLIENT_PROTOCOL_41)) {
    ok.statusFlags = reader.uint16();
    ok.warnings = reader.uint16();
  } else if (has(capabilities, codes.CLIENT_TRANSACTIONS)) {
    ok.statusFlags = reader.uint16();
  }
  if (has(capabilities, codes.CLIENT_SESSION_TRACK)) {
    // Servers leave out an empty info string at the end of the packet.
    if (reader.remaining > 0) ok.info = reader.lenencString();
    if (has(ok.statusFlags, codes.SERVER_SESSION_STATE_CHANGED) && reader.remaining > 0) {
      ok.sessionStateChanges = decodeSessionState(reader.lenencBytes());
    }
  } else {
    ok.info = reader.rest().toString('utf8');
  }
  return ok;
}

function decodeSessionState(block: Buffer): SessionStateChange[] {
  const reader = new PacketReader(block);
  const changes: SessionStateChange[] = [];
  while (reader.remaining > 0) {
    const code = reader.uint8();
    const data = new PacketReader(reader.lenencBytes());
    switch (code) {
      case codes.SESSION_TRACK_SYSTEM_VARIABLES:
        changes.push({
          type: 'systemVariable',
          name: data.lenencString(),
          value: data.lenencString(),
        });
        break;
      case codes.SESSION_TRACK_SCHEMA:
        changes.push({ type: 'schema', name: data.lenencString() });
        break;
      case codes.SESSION_TRACK_STATE_CHANGE:
        changes.push({ type: 'stateChange', changed: data.lenencString() === '1' });
        break;
      default:
        changes.push({ type: 'other', code, data: data.rest() });
    }
  }
  return changes;
}

export function decodeErr(payload: Buffer, capabilities: number): ErrPacket | ProgressReport {
  const reader = new PacketReader(payload);
  const header = reader.uint8();
  if (header !== codes.ERR_HEADER) {
    throw malformed(`0x${header.toString(16)} does not start an ERR packet`);
  }
  const code = reader.uint16();
  if (code === codes.PROGRESS_REPORT_ERROR_CODE) {
    return {
      kind: 'progress',
      stage: reader.uint8(),
      maxStage: reader.uint8(),
      progress: reader.uint24(),
      info: reader.lenencString(),
    };
  }
  let sqlState: string | null = null;
  // Errors sent during the handshake, before capabilities are agreed, may lack the SQLSTATE.
  if (
    has(capabilities, codes.CLIENT_PROTOCOL_41) &&
    reader.remaining > 0 &&
    reader.peek() === codes.SQL_STATE_MARKER
  ) {
    reader.skip(1);
    sqlState = reader.bytes(5).toString('latin1');
  }
  return { kind: 'error', code, sqlState, message: reader.rest().toString('utf8') };
}

/** True for a classic EOF packet: 0xfe and shorter than any row or OK that starts with 0xfe. */
export function isEofPacket(payload: Buffer): boolean {
  return payload[0] === codes.EOF_HEADER && payload.length < codes.EOF_MAX_PAYLOAD_BYTES;
}

export function decodeEof(payload: Buffer, capabilities: number): EofPacket {
  if (!isEofPacket(payload)) throw malformed('not an EOF packet');
  const reader = new PacketReader(payload, 1);
  if (!has(capabilities, codes.CLIENT_PROTOCOL_41)) return { warnings: 0, statusFlags: 0 };
  return { warnings: reader.uint16(), statusFlags: reader.uint16() };
}

export function decodeAuthSwitchRequest(payload: Buffer): AuthSwitchRequest {
  const reader = new PacketReader(payload);
  if (reader.uint8() !== codes.AUTH_SWITCH_REQUEST_HEADER)
    throw malformed('not an AuthSwitchRequest');
  // A lone 0xfe is the old request to switch to mysql_old_password, with the first scramble.
  if (reader.remaining === 0)
    return { pluginName: 'mysql_old_password', pluginData: Buffer.alloc(0) };
  return { pluginName: reader.cstring(), pluginData: reader.rest() };
}

export function decodeAuthMoreData(payload: Buffer): Buffer {
  const reader = new PacketReader(payload);
  if (reader.uint8() !== codes.AUTH_MORE_DATA_HEADER) throw malformed('not an AuthMoreData packet');
  return reader.rest();
}

/** The server's request for a client file during LOAD DATA LOCAL INFILE: 0xfb and the file name. */
export function decodeLocalInfileRequest(payload: Buffer): string {
  const reader = new PacketReader(payload);
  if (reader.uint8() !== codes.LOCAL_INFILE_HEADER) throw malformed('not a LOCAL INFILE request');
  if (reader.remaining === 0) throw malformed('LOCAL INFILE request without a file name');
  return reader.rest().toString('utf8');
}
