// Pure functions that build single Postgres messages as Buffers, for both directions.
import * as codes from './codes.ts';
import type { DescribeTarget, FieldDescription, TransactionStatus } from './messages.ts';

// Fixed messages are built once and shared: they are the most frequent writes, and the
// caller only ever hands them to a socket.
function fixed(code: number, body: number[] = []): Buffer {
  return Buffer.from([code, 0, 0, 0, 4 + body.length, ...body]);
}

const SYNC = fixed(codes.Sync);
const FLUSH = fixed(codes.Flush);
const TERMINATE = fixed(codes.Terminate);
const COPY_DONE = fixed(codes.CopyDone);
const PARSE_COMPLETE = fixed(codes.ParseComplete);
const BIND_COMPLETE = fixed(codes.BindComplete);
const CLOSE_COMPLETE = fixed(codes.CloseComplete);
const NO_DATA = fixed(codes.NoData);
const PORTAL_SUSPENDED = fixed(codes.PortalSuspended);
const EMPTY_QUERY_RESPONSE = fixed(codes.EmptyQueryResponse);
const READY_FOR_QUERY = {
  I: fixed(codes.ReadyForQuery, [codes.TransactionIdle]),
  T: fixed(codes.ReadyForQuery, [codes.TransactionInBlock]),
  E: fixed(codes.ReadyForQuery, [codes.TransactionFailed]),
};
const SSL_ACCEPTED = Buffer.from([codes.SSLAccepted]);
const SSL_REFUSED = Buffer.from([codes.SSLRefused]);

// Fills a buffer whose size was computed up front, so each message is one allocation.
class Writer {
  readonly buffer: Buffer;
  offset = 0;

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  int8(value: number): this {
    this.buffer[this.offset++] = value;
    return this;
  }

  int16(value: number): this {
    this.offset = this.buffer.writeInt16BE(value, this.offset);
    return this;
  }

  int32(value: number): this {
    this.offset = this.buffer.writeInt32BE(value, this.offset);
    return this;
  }

  uint32(value: number): this {
    this.offset = this.buffer.writeUInt32BE(value, this.offset);
    return this;
  }

  cstring(value: string): this {
    this.offset += this.buffer.write(value, this.offset, 'utf8');
    this.buffer[this.offset++] = 0;
    return this;
  }

  bytes(value: Uint8Array): this {
    this.buffer.set(value, this.offset);
    this.offset += value.length;
    return this;
  }

  nullableBytes(value: Uint8Array | null): this {
    if (value === null) return this.int32(-1);
    return this.int32(value.length).bytes(value);
  }
}

function typed(code: number, bodyBytes: number): Writer {
  return new Writer(5 + bodyBytes).int8(code).int32(4 + bodyBytes);
}

// Byte length of a C string including its terminator. An embedded NUL would silently cut
// the string short on the other side, so it is refused here.
function cstringBytes(value: string): number {
  if (value.includes('\0')) throw new RangeError('a protocol string cannot contain NUL');
  return Buffer.byteLength(value, 'utf8') + 1;
}

function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

function toNullableBytes(value: Uint8Array | string | null): Uint8Array | null {
  return value === null ? null : toBytes(value);
}

// ---- Backend (server → client) ----

export interface NoticeInput {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function notice(type: number, input: NoticeInput): Buffer {
  // V is the untranslated severity that clients since 9.6 prefer over S.
  const fields: [string, string | undefined][] = [
    ['S', input.severity],
    ['V', input.severity],
    ['C', input.code],
    ['M', input.message],
    ['D', input.detail],
    ['H', input.hint],
  ];
  let size = 1;
  for (const [, value] of fields) if (value !== undefined) size += 1 + cstringBytes(value);
  const writer = typed(type, size);
  for (const [key, value] of fields) {
    if (value !== undefined) writer.int8(key.charCodeAt(0)).cstring(value);
  }
  return writer.int8(0).buffer;
}

export function errorResponse(input: NoticeInput): Buffer {
  return notice(codes.ErrorResponse, input);
}

export function noticeResponse(input: NoticeInput): Buffer {
  return notice(codes.NoticeResponse, input);
}

export function readyForQuery(status: TransactionStatus): Buffer {
  return READY_FOR_QUERY[status];
}

const AUTHENTICATION_OK = typed(codes.Authentication, 4).int32(codes.AuthenticationOk).buffer;
const AUTHENTICATION_CLEARTEXT = typed(codes.Authentication, 4).int32(
  codes.AuthenticationCleartextPassword,
).buffer;

export function authenticationOk(): Buffer {
  return AUTHENTICATION_OK;
}

export function authenticationCleartext(): Buffer {
  return AUTHENTICATION_CLEARTEXT;
}

export function authenticationMD5(salt: Uint8Array): Buffer {
  if (salt.length !== 4) throw new RangeError('an MD5 salt is 4 bytes');
  return typed(codes.Authentication, 8).int32(codes.AuthenticationMD5Password).bytes(salt).buffer;
}

export function authenticationSASL(mechanisms: string[]): Buffer {
  let size = 4 + 1;
  for (const name of mechanisms) size += cstringBytes(name);
  const writer = typed(codes.Authentication, size).int32(codes.AuthenticationSASL);
  for (const name of mechanisms) writer.cstring(name);
  return writer.int8(0).buffer;
}

export function authenticationSASLContinue(data: Uint8Array | string): Buffer {
  return authenticationData(codes.AuthenticationSASLContinue, data);
}

export function authenticationSASLFinal(data: Uint8Array | string): Buffer {
  return authenticationData(codes.AuthenticationSASLFinal, data);
}

function authenticationData(subtype: number, data: Uint8Array | string): Buffer {
  const bytes = toBytes(data);
  return typed(codes.Authentication, 4 + bytes.length)
    .int32(subtype)
    .bytes(bytes).buffer;
}

export function parameterStatus(name: string, value: string): Buffer {
  return typed(codes.ParameterStatus, cstringBytes(name) + cstringBytes(value))
    .cstring(name)
    .cstring(value).buffer;
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return typed(codes.BackendKeyData, 8).int32(processId).int32(secretKey).buffer;
}

export function commandComplete(tag: string): Buffer {
  return typed(codes.CommandComplete, cstringBytes(tag)).cstring(tag).buffer;
}

export function parseComplete(): Buffer {
  return PARSE_COMPLETE;
}

export function bindComplete(): Buffer {
  return BIND_COMPLETE;
}

export function closeComplete(): Buffer {
  return CLOSE_COMPLETE;
}

export function noData(): Buffer {
  return NO_DATA;
}

export function portalSuspended(): Buffer {
  return PORTAL_SUSPENDED;
}

export function emptyQueryResponse(): Buffer {
  return EMPTY_QUERY_RESPONSE;
}

// Defaults describe a text column of an expression (no table), typed `text`.
export type FieldInput = Pick<FieldDescription, 'name'> & Partial<FieldDescription>;

export function rowDescription(fields: FieldInput[]): Buffer {
  let size = 2;
  for (const field of fields) size += cstringBytes(field.name) + 18;
  const writer = typed(codes.RowDescription, size).int16(fields.length);
  for (const field of fields) {
    writer
      .cstring(field.name)
      .uint32(field.tableOid ?? 0)
      .int16(field.columnId ?? 0)
      .uint32(field.typeOid ?? 25)
      .int16(field.typeSize ?? -1)
      .int32(field.typeModifier ?? -1)
      .int16(field.format ?? 0);
  }
  return writer.buffer;
}

// Strings are sent as UTF-8 text-format values; null is SQL NULL.
export function dataRow(values: (Uint8Array | string | null)[]): Buffer {
  const bytes = values.map(toNullableBytes);
  let size = 2;
  for (const value of bytes) size += 4 + (value?.length ?? 0);
  const writer = typed(codes.DataRow, size).int16(bytes.length);
  for (const value of bytes) writer.nullableBytes(value);
  return writer.buffer;
}

export function copyData(data: Uint8Array): Buffer {
  return typed(codes.CopyData, data.length).bytes(data).buffer;
}

export function copyDone(): Buffer {
  return COPY_DONE;
}

// The one-byte answer to SSLRequest (and, with the same letters, GSSENCRequest).
export function sslResponse(ok: boolean): Buffer {
  return ok ? SSL_ACCEPTED : SSL_REFUSED;
}

// ---- Frontend (client → server) ----

// Startup-phase messages carry no type byte, only length and request code.
function untyped(requestCode: number, bodyBytes: number): Writer {
  return new Writer(8 + bodyBytes).int32(8 + bodyBytes).int32(requestCode);
}

export function startupMessage(
  parameters: Record<string, string> | Map<string, string>,
  protocolVersion: number = codes.ProtocolVersion3,
): Buffer {
  const entries =
    parameters instanceof Map ? [...parameters.entries()] : Object.entries(parameters);
  let size = 1;
  for (const [name, value] of entries) size += cstringBytes(name) + cstringBytes(value);
  const writer = untyped(protocolVersion, size);
  for (const [name, value] of entries) writer.cstring(name).cstring(value);
  return writer.int8(0).buffer;
}

export function sslRequest(): Buffer {
  return untyped(codes.SSLRequest, 0).buffer;
}

export function gssEncRequest(): Buffer {
  return untyped(codes.GSSENCRequest, 0).buffer;
}

export function cancelRequest(processId: number, secretKey: number): Buffer {
  return untyped(codes.CancelRequest, 8).int32(processId).int32(secretKey).buffer;
}

// A CancelRequest carrying a BackendKeyData body as it came (longer than 8 bytes in protocol 3.2).
export function cancelRequestWithKey(key: Uint8Array): Buffer {
  const writer = untyped(codes.CancelRequest, key.length);
  writer.buffer.set(key, writer.offset);
  return writer.buffer;
}

export function query(sql: string): Buffer {
  return typed(codes.Query, cstringBytes(sql)).cstring(sql).buffer;
}

export interface ParseInput {
  name?: string;
  sql: string;
  paramTypes?: number[];
}

export function parse({ name = '', sql, paramTypes = [] }: ParseInput): Buffer {
  const size = cstringBytes(name) + cstringBytes(sql) + 2 + 4 * paramTypes.length;
  const writer = typed(codes.Parse, size).cstring(name).cstring(sql).int16(paramTypes.length);
  for (const oid of paramTypes) writer.uint32(oid);
  return writer.buffer;
}

export interface BindInput {
  portal?: string;
  statement?: string;
  paramFormats?: number[];
  params?: (Uint8Array | string | null)[];
  resultFormats?: number[];
}

export function bind({
  portal = '',
  statement = '',
  paramFormats = [],
  params = [],
  resultFormats = [],
}: BindInput): Buffer {
  const values = params.map(toNullableBytes);
  let size = cstringBytes(portal) + cstringBytes(statement);
  size += 2 + 2 * paramFormats.length + 2 + 2 + 2 * resultFormats.length;
  for (const value of values) size += 4 + (value?.length ?? 0);
  const writer = typed(codes.Bind, size).cstring(portal).cstring(statement);
  writer.int16(paramFormats.length);
  for (const format of paramFormats) writer.int16(format);
  writer.int16(values.length);
  for (const value of values) writer.nullableBytes(value);
  writer.int16(resultFormats.length);
  for (const format of resultFormats) writer.int16(format);
  return writer.buffer;
}

function targeted(code: number, target: DescribeTarget, name: string): Buffer {
  return typed(code, 1 + cstringBytes(name))
    .int8(target.charCodeAt(0))
    .cstring(name).buffer;
}

export function describe(target: DescribeTarget, name = ''): Buffer {
  return targeted(codes.Describe, target, name);
}

export function close(target: DescribeTarget, name = ''): Buffer {
  return targeted(codes.Close, target, name);
}

// maxRows 0 means no limit.
export function execute(portal = '', maxRows = 0): Buffer {
  return typed(codes.Execute, cstringBytes(portal) + 4)
    .cstring(portal)
    .int32(maxRows).buffer;
}

export function sync(): Buffer {
  return SYNC;
}

export function flush(): Buffer {
  return FLUSH;
}

export function terminate(): Buffer {
  return TERMINATE;
}

export function copyFail(message: string): Buffer {
  return typed(codes.CopyFail, cstringBytes(message)).cstring(message).buffer;
}

export function passwordMessage(password: string): Buffer {
  return typed(codes.PasswordMessage, cstringBytes(password)).cstring(password).buffer;
}

// data null sends length -1: the mechanism gets no initial response.
export function saslInitialResponse(mechanism: string, data: Uint8Array | string | null): Buffer {
  const bytes = toNullableBytes(data);
  const size = cstringBytes(mechanism) + 4 + (bytes?.length ?? 0);
  return typed(codes.SASLInitialResponse, size).cstring(mechanism).nullableBytes(bytes).buffer;
}

export function saslResponse(data: Uint8Array | string): Buffer {
  const bytes = toBytes(data);
  return typed(codes.SASLResponse, bytes.length).bytes(bytes).buffer;
}
