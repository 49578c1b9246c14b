// The MySQL/MariaDB wire codec: byte codes, a packet framer, decoders and payload serializers.
export * as codes from './codes.ts';
export * as serialize from './serializer.ts';
export type { HandshakeResponseInput, OkInput } from './serializer.ts';
export { DEFAULT_MAX_PACKET_BYTES, PacketParser } from './parser.ts';
export type { Packet, PacketCallback, PacketParserOptions } from './parser.ts';
export { ProtocolError } from './protocol-error.ts';
export {
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeEof,
  decodeErr,
  decodeHandshakeV10,
  decodeLocalInfileRequest,
  decodeOk,
  isEofPacket,
} from './decode-server.ts';
export { decodeClientHandshake, decodeCommand } from './decode-client.ts';
export type * from './messages.ts';
