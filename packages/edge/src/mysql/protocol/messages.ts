// Typed MySQL packets the decoders return. Capability sets are unsigned 32-bit numbers; MariaDB's
// extended capabilities (bits 32–63) are a second number, shifted down by 32.

/** The server's first packet (Protocol::HandshakeV10). */
export interface HandshakeV10 {
  serverVersion: string;
  connectionId: number;
  /** The scramble (both parts, without part 2's NUL terminator). */
  authPluginData: Buffer;
  capabilities: number;
  mariadbCapabilities: number;
  characterSet: number;
  statusFlags: number;
  /** Null when the server lacks CLIENT_PLUGIN_AUTH. */
  authPluginName: string | null;
}

/** The fixed prefix of a HandshakeResponse41 that a client sends alone to ask for TLS. */
export interface SslRequest {
  kind: 'sslRequest';
  capabilities: number;
  mariadbCapabilities: number;
  maxPacketSize: number;
  characterSet: number;
}

/** The client's login (Protocol::HandshakeResponse41). */
export interface HandshakeResponse41 {
  kind: 'handshakeResponse';
  capabilities: number;
  mariadbCapabilities: number;
  maxPacketSize: number;
  characterSet: number;
  username: string;
  authResponse: Buffer;
  database: string | null;
  authPluginName: string | null;
  /** Connection attributes in the order sent; null without CLIENT_CONNECT_ATTRS. */
  connectAttributes: [string, string][] | null;
  /** MySQL 8's zstd level; null without CLIENT_ZSTD_COMPRESSION_ALGORITHM. */
  zstdCompressionLevel: number | null;
}

export type ClientHandshake = SslRequest | HandshakeResponse41;

export interface AuthSwitchRequest {
  pluginName: string;
  /** Plugin data as sent (a scramble often keeps its NUL terminator here). */
  pluginData: Buffer;
}

/** One entry of an OK packet's session state information (CLIENT_SESSION_TRACK). */
export type SessionStateChange =
  | { type: 'systemVariable'; name: string; value: string }
  | { type: 'schema'; name: string }
  | { type: 'stateChange'; changed: boolean }
  | { type: 'other'; code: number; data: Buffer };

export interface OkPacket {
  /** 0x00, or 0xfe for an OK that ends a result set under CLIENT_DEPRECATE_EOF. */
  header: number;
  affectedRows: bigint;
  lastInsertId: bigint;
  statusFlags: number;
  warnings: number;
  info: string;
  sessionStateChanges: SessionStateChange[];
}

export interface ErrPacket {
  kind: 'error';
  code: number;
  /** Null when the server sent none (before CLIENT_PROTOCOL_41 is agreed, as in early handshake errors). */
  sqlState: string | null;
  message: string;
}

/** MariaDB's progress report, sent as an ERR packet with code 0xffff (MARIADB_CLIENT_PROGRESS). */
export interface ProgressReport {
  kind: 'progress';
  stage: number;
  maxStage: number;
  /** Thousandths of a percent. */
  progress: number;
  info: string;
}

export interface EofPacket {
  warnings: number;
  statusFlags: number;
}

export interface QueryAttribute {
  name: string;
  /** The binary-protocol type (MYSQL_TYPE_*). */
  type: number;
  unsigned: boolean;
  /** The binary-protocol value bytes; null for NULL. */
  value: Buffer | null;
}

type Command<K extends string, Fields = unknown> = { kind: K; command: number } & Fields;

export type ClientCommand =
  | Command<'query', { sql: string; attributes: QueryAttribute[] }>
  | Command<'initDb', { schema: string }>
  | Command<'fieldList', { table: string; wildcard: string }>
  | Command<'processKill', { connectionId: number }>
  | Command<
      'changeUser',
      {
        username: string;
        authResponse: Buffer;
        database: string;
        characterSet: number | null;
        authPluginName: string | null;
        connectAttributes: [string, string][] | null;
      }
    >
  | Command<'stmtPrepare', { sql: string }>
  | Command<
      'stmtExecute',
      {
        statementId: number;
        flags: number;
        iterationCount: number;
        /** Null bitmap, types and values: their layout depends on the prepared statement. */
        parameters: Buffer;
      }
    >
  | Command<'stmtSendLongData', { statementId: number; parameterId: number; data: Buffer }>
  | Command<'stmtClose', { statementId: number }>
  | Command<'stmtReset', { statementId: number }>
  | Command<'stmtFetch', { statementId: number; rows: number }>
  | Command<'stmtBulkExecute', { statementId: number; bulkFlags: number; body: Buffer }>
  | Command<'setOption', { option: number }>
  | Command<'quit' | 'ping' | 'statistics' | 'resetConnection' | 'debug' | 'processInfo'>
  | Command<'other', { body: Buffer }>;
