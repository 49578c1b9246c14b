// The Postgres wire codec: byte codes, an incremental parser and a message serializer.
export * as codes from './codes.ts';
export * as serialize from './serializer.ts';
export type { BindInput, FieldInput, NoticeInput, ParseInput } from './serializer.ts';
export { BackendParser, DEFAULT_MAX_MESSAGE_BYTES, FrontendParser } from './parser.ts';
export type { ParserOptions } from './parser.ts';
export { PROTOCOL_VIOLATION, ProtocolError } from './protocol-error.ts';
export { dataRowText, dataRowValues } from './decode-backend.ts';
export {
  decodePasswordMessage,
  decodeSASLInitialResponse,
  decodeSASLResponse,
} from './decode-frontend.ts';
export type * from './messages.ts';
