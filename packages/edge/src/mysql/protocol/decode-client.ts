// Decoders for the client → server packets the edge must read: the login, and each command.
import * as codes from './codes.ts';
import type { ClientCommand, ClientHandshake, QueryAttribute } from './messages.ts';
import { PacketReader, malformed } from './packet-reader.ts';

const has = (flags: number, flag: number): boolean => (flags & flag) !== 0;
// HandshakeResponse41's filler: 19 bytes, then MariaDB's extended capabilities (or 4 more filler bytes).
const FILLER_BYTES = 19;

/** The client's first packet: an SSLRequest (the fixed prefix alone, CLIENT_SSL set) or its login. */
export function decodeClientHandshake(payload: Buffer): ClientHandshake {
  const reader = new PacketReader(payload);
  const capabilities = reader.uint32();
  if (!has(capabilities, codes.CLIENT_PROTOCOL_41)) {
    throw malformed('HandshakeResponse320 (clients older than MySQL 4.1) is not supported');
  }
  const maxPacketSize = reader.uint32();
  const characterSet = reader.uint8();
  reader.skip(FILLER_BYTES);
  const extended = reader.uint32();
  const mariadbCapabilities = has(capabilities, codes.CLIENT_MYSQL) ? 0 : extended;
  const fixed = { capabilities, mariadbCapabilities, maxPacketSize, characterSet };
  if (reader.remaining === 0) {
    if (!has(capabilities, codes.CLIENT_SSL)) throw malformed('login without a username');
    return { kind: 'sslRequest', ...fixed };
  }
  const username = reader.cstring();
  let authResponse: Buffer;
  if (has(capabilities, codes.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)) {
    authResponse = reader.lenencBytes();
  } else if (has(capabilities, codes.CLIENT_SECURE_CONNECTION)) {
    authResponse = reader.bytes(reader.uint8());
  } else {
    authResponse = Buffer.from(reader.cstring(), 'utf8');
  }
  const database = has(capabilities, codes.CLIENT_CONNECT_WITH_DB) ? reader.cstringOrRest() : null;
  const authPluginName =
    has(capabilities, codes.CLIENT_PLUGIN_AUTH) && reader.remaining > 0
      ? reader.cstringOrRest()
      : null;
  const connectAttributes =
    has(capabilities, codes.CLIENT_CONNECT_ATTRS) && reader.remaining > 0
      ? decodeConnectAttributes(reader)
      : null;
  const zstdCompressionLevel =
    has(capabilities, codes.CLIENT_ZSTD_COMPRESSION_ALGORITHM) && reader.remaining > 0
      ? reader.uint8()
      : null;
  return {
    kind: 'handshakeResponse',
    ...fixed,
    username,
    authResponse,
    database,
    authPluginName,
    connectAttributes,
    zstdCompressionLevel,
  };
}

function decodeConnectAttributes(reader: PacketReader): [string, string][] {
  const block = new PacketReader(reader.lenencBytes());
  const attributes: [string, string][] = [];
  while (block.remaining > 0) attributes.push([block.lenencString(), block.lenencString()]);
  return attributes;
}

/**
 * A command packet (the first packet of each exchange). `capabilities` are the ones both sides
 * agreed on: they decide whether COM_QUERY carries attributes and how COM_CHANGE_USER is laid out.
 */
export function decodeCommand(payload: Buffer, capabilities: number): ClientCommand {
  const reader = new PacketReader(payload);
  const command = reader.uint8();
  switch (command) {
    case codes.COM_QUERY: {
      const attributes = has(capabilities, codes.CLIENT_QUERY_ATTRIBUTES)
        ? decodeQueryAttributes(reader)
        : [];
      return { kind: 'query', command, sql: reader.rest().toString('utf8'), attributes };
    }
    case codes.COM_INIT_DB:
      return { kind: 'initDb', command, schema: reader.rest().toString('utf8') };
    case codes.COM_FIELD_LIST:
      return {
        kind: 'fieldList',
        command,
        table: reader.cstring(),
        wildcard: reader.rest().toString('utf8'),
      };
    case codes.COM_PROCESS_KILL:
      return { kind: 'processKill', command, connectionId: reader.uint32() };
    case codes.COM_CHANGE_USER:
      return decodeChangeUser(reader, capabilities);
    case codes.COM_STMT_PREPARE:
      return { kind: 'stmtPrepare', command, sql: reader.rest().toString('utf8') };
    case codes.COM_STMT_EXECUTE:
      return {
        kind: 'stmtExecute',
        command,
        statementId: reader.uint32(),
        flags: reader.uint8(),
        iterationCount: reader.uint32(),
        parameters: reader.rest(),
      };
    case codes.COM_STMT_SEND_LONG_DATA:
      return {
        kind: 'stmtSendLongData',
        command,
        statementId: reader.uint32(),
        parameterId: reader.uint16(),
        data: reader.rest(),
      };
    case codes.COM_STMT_CLOSE:
      return { kind: 'stmtClose', command, statementId: reader.uint32() };
    case codes.COM_STMT_RESET:
      return { kind: 'stmtReset', command, statementId: reader.uint32() };
    case codes.COM_STMT_FETCH:
      return { kind: 'stmtFetch', command, statementId: reader.uint32(), rows: reader.uint32() };
    case codes.COM_STMT_BULK_EXECUTE:
      return {
        kind: 'stmtBulkExecute',
        command,
        statementId: reader.uint32(),
        bulkFlags: reader.uint16(),
        body: reader.rest(),
      };
    case codes.COM_SET_OPTION:
      return { kind: 'setOption', command, option: reader.uint16() };
    case codes.COM_QUIT:
      return { kind: 'quit', command };
    case codes.COM_PING:
      return { kind: 'ping', command };
    case codes.COM_STATISTICS:
      return { kind: 'statistics', command };
    case codes.COM_RESET_CONNECTION:
      return { kind: 'resetConnection', command };
    case codes.COM_DEBUG:
      return { kind: 'debug', command };
    case codes.COM_PROCESS_INFO:
      return { kind: 'processInfo', command };
    default:
      return { kind: 'other', command, body: reader.rest() };
  }
}

function decodeChangeUser(reader: PacketReader, capabilities: number): ClientCommand {
  const username = reader.cstring();
  const authResponse = has(capabilities, codes.CLIENT_SECURE_CONNECTION)
    ? reader.bytes(reader.uint8())
    : Buffer.from(reader.cstring(), 'utf8');
  const database = reader.cstringOrRest();
  const characterSet = reader.remaining >= 2 ? reader.uint16() : null;
  const authPluginName =
    has(capabilities, codes.CLIENT_PLUGIN_AUTH) && reader.remaining > 0
      ? reader.cstringOrRest()
      : null;
  const connectAttributes =
    has(capabilities, codes.CLIENT_CONNECT_ATTRS) && reader.remaining > 0
      ? decodeConnectAttributes(reader)
      : null;
  return {
    kind: 'changeUser',
    command: codes.COM_CHANGE_USER,
    username,
    authResponse,
    database,
    characterSet,
    authPluginName,
    connectAttributes,
  };
}

// COM_QUERY's attributes under CLIENT_QUERY_ATTRIBUTES: a parameter count and a set count (always
// 1), then — when there are any — a NULL bitmap, a bind flag, types and names, and binary values.
function decodeQueryAttributes(reader: PacketReader): QueryAttribute[] {
  const count = reader.lenencInt();
  const setCount = reader.lenencInt();
  if (setCount !== 1) throw malformed(`query attribute set count ${setCount}`);
  if (count === 0) return [];
  // Each attribute takes at least a type (2 bytes) and a name length (1 byte).
  if (count * 3 > reader.remaining) throw malformed('bad query attribute count');
  const nulls = reader.bytes(Math.ceil(count / 8));
  if (reader.uint8() !== 1) throw malformed('query attributes without types');
  const attributes: QueryAttribute[] = [];
  for (let i = 0; i < count; i++) {
    const typeAndFlag = reader.uint16();
    const name = reader.lenencString();
    attributes.push({
      name,
      type: typeAndFlag & 0xff,
      unsigned: has(typeAndFlag >> 8, codes.PARAMETER_UNSIGNED_FLAG),
      value: null,
    });
  }
  attributes.forEach((attribute, i) => {
    const isNull = has(nulls[i >> 3] as number, 1 << (i & 7));
    if (!isNull && attribute.type !== codes.MYSQL_TYPE_NULL) {
      attribute.value = readBinaryValue(reader, attribute.type);
    }
  });
  return attributes;
}

// Bytes of one binary-protocol value: fixed widths for numbers, a length byte for temporal
// types, a length-encoded string for everything else.
function readBinaryValue(reader: PacketReader, type: number): Buffer {
  switch (type) {
    case codes.MYSQL_TYPE_TINY:
      return reader.bytes(1);
    case codes.MYSQL_TYPE_SHORT:
    case codes.MYSQL_TYPE_YEAR:
      return reader.bytes(2);
    case codes.MYSQL_TYPE_LONG:
    case codes.MYSQL_TYPE_INT24:
    case codes.MYSQL_TYPE_FLOAT:
      return reader.bytes(4);
    case codes.MYSQL_TYPE_LONGLONG:
    case codes.MYSQL_TYPE_DOUBLE:
      return reader.bytes(8);
    case codes.MYSQL_TYPE_DATE:
    case codes.MYSQL_TYPE_DATETIME:
    case codes.MYSQL_TYPE_TIMESTAMP:
    case codes.MYSQL_TYPE_TIME:
      return reader.bytes(reader.uint8());
    default:
      return reader.lenencBytes();
  }
}
