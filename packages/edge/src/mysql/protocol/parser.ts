// Incremental framing of a MySQL byte stream into logical packets; it never touches a socket.
import {
  ER_NET_PACKET_TOO_LARGE,
  ER_NET_PACKETS_OUT_OF_ORDER,
  MAX_PACKET_PIECE_BYTES,
  PACKET_HEADER_BYTES,
  SQLSTATE_COMMUNICATION_ERROR,
} from './codes.ts';
import { ProtocolError } from './protocol-error.ts';

/** One logical packet: a payload of 16 MiB or more arrives as several pieces, joined here. */
export interface Packet {
  /** Sequence id of the first piece. */
  sequenceId: number;
  /** Sequence id of the last piece: the next packet of the exchange carries this plus one. */
  lastSequenceId: number;
  /** Wire pieces it took (1 below 16 MiB); the wire size is `payload.length + 4 * pieces`. */
  pieces: number;
  /**
   * A view into the chunk that carried it, or a buffer the parser never writes to again; the
   * caller must not mutate it.
   */
  payload: Buffer;
  /**
   * Where its header starts in the chunk given to the `parse` call that emitted it, when the whole
   * packet (header and payload, one piece) is in that chunk; -1 when it is not.
   */
  chunkOffset: number;
}

export interface PacketParserOptions {
  /** Largest logical payload accepted, like the server's max_allowed_packet. */
  maxPacketBytes?: number;
}

// MariaDB's and MySQL's ceiling for max_allowed_packet.
export const DEFAULT_MAX_PACKET_BYTES = 1024 * 1024 * 1024;

/**
 * What a packet callback may return: 'pause' stops parsing right after that packet and keeps the
 * rest of the chunk (`takeHeld`), as after an SSLRequest, where the next bytes are a TLS handshake.
 */
export type PacketCallback = (packet: Packet) => void | 'pause';

// Sequence ids are checked only inside one split packet: which id the next packet must carry
// depends on the exchange (each command restarts at 0), so the session checks that.
export class PacketParser {
  readonly #maxPacketBytes: number;
  // A piece being assembled across chunks: its header, then slices of the chunks that carried it.
  readonly #header = Buffer.alloc(PACKET_HEADER_BYTES);
  #headerFilled = 0;
  #pieceLength = -1;
  #pieceSequence = 0;
  #slices: Buffer[] = [];
  #sliceBytes = 0;
  // Full 16 MiB pieces of a logical packet whose last piece has not arrived yet.
  #pieces: Buffer[] = [];
  #piecesBytes = 0;
  #firstSequence = 0;
  #lastSequence = 0;
  #held: Buffer | null = null;
  #failure: ProtocolError | null = null;

  constructor(options: PacketParserOptions = {}) {
    this.#maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  }

  /** Bytes received but not yet emitted, held bytes included. */
  get bufferedBytes(): number {
    return (
      (this.#held?.length ?? 0) +
      this.#headerFilled +
      this.#sliceBytes +
      this.#piecesBytes +
      this.#pieces.length * PACKET_HEADER_BYTES
    );
  }

  /** Bytes kept after a 'pause' (empty when none); the next `parse` would otherwise read them first. */
  takeHeld(): Buffer {
    const held = this.#held ?? Buffer.alloc(0);
    this.#held = null;
    return held;
  }

  /**
   * Emits every complete logical packet in `chunk` (plus what earlier chunks left over), in order.
   * After a ProtocolError the stream cannot be resynchronised, so every later call throws it again.
   */
  parse(chunk: Buffer, onPacket: PacketCallback): void {
    if (this.#failure !== null) throw this.#failure;
    try {
      let buffer = chunk;
      if (this.#held !== null) {
        buffer = Buffer.concat([this.#held, chunk]);
        this.#held = null;
      }
      this.#parse(buffer, onPacket, buffer === chunk);
    } catch (error) {
      if (error instanceof ProtocolError) this.#failure = error;
      throw error;
    }
  }

  // `direct`: `buffer` is the caller's chunk itself (nothing was held from before).
  #parse(buffer: Buffer, onPacket: PacketCallback, direct: boolean): void {
    let offset = 0;
    const end = buffer.length;
    if (this.#headerFilled > 0) {
      offset = this.#fillPartial(buffer);
      if (this.#headerFilled > 0) return;
      if (this.#emitPiece(this.#pieceSequence, this.#takeSlices(), onPacket, -1)) {
        return this.#hold(buffer, offset);
      }
    }
    while (end - offset >= PACKET_HEADER_BYTES) {
      const length = buffer.readUIntLE(offset, 3);
      this.#checkLength(length);
      const start = offset + PACKET_HEADER_BYTES;
      if (end - start < length) break;
      const sequence = buffer[offset + 3] as number;
      const header = direct ? offset : -1;
      offset = start + length;
      if (this.#emitPiece(sequence, buffer.subarray(start, offset), onPacket, header)) {
        return this.#hold(buffer, offset);
      }
    }
    if (offset < end) {
      this.#headerFilled = 0;
      this.#pieceLength = -1;
      this.#fillPartial(buffer.subarray(offset));
    }
  }

  // Takes what the pending piece still needs from `buffer`; returns the bytes consumed.
  // `#headerFilled` stays above 0 until the piece is complete.
  #fillPartial(buffer: Buffer): number {
    let offset = 0;
    if (this.#pieceLength < 0) {
      offset = Math.min(PACKET_HEADER_BYTES - this.#headerFilled, buffer.length);
      buffer.copy(this.#header, this.#headerFilled, 0, offset);
      this.#headerFilled += offset;
      if (this.#headerFilled < PACKET_HEADER_BYTES) return offset;
      this.#pieceLength = this.#header.readUIntLE(0, 3);
      this.#pieceSequence = this.#header[3] as number;
      this.#checkLength(this.#pieceLength);
    }
    const take = Math.min(this.#pieceLength - this.#sliceBytes, buffer.length - offset);
    if (take > 0) {
      this.#slices.push(buffer.subarray(offset, offset + take));
      this.#sliceBytes += take;
      offset += take;
    }
    if (this.#sliceBytes === this.#pieceLength) this.#headerFilled = 0;
    return offset;
  }

  #takeSlices(): Buffer {
    const payload =
      this.#slices.length === 1
        ? (this.#slices[0] as Buffer)
        : Buffer.concat(this.#slices, this.#sliceBytes);
    this.#slices = [];
    this.#sliceBytes = 0;
    this.#pieceLength = -1;
    return payload;
  }

  // Returns true when the callback asked to pause.
  #emitPiece(
    sequence: number,
    payload: Buffer,
    onPacket: PacketCallback,
    chunkOffset: number,
  ): boolean {
    if (this.#pieces.length > 0 && sequence !== ((this.#lastSequence + 1) & 0xff)) {
      throw new ProtocolError(
        `packets out of order: piece ${sequence} after ${this.#lastSequence}`,
        ER_NET_PACKETS_OUT_OF_ORDER,
        SQLSTATE_COMMUNICATION_ERROR,
      );
    }
    if (this.#pieces.length === 0) this.#firstSequence = sequence;
    this.#lastSequence = sequence;
    if (payload.length === MAX_PACKET_PIECE_BYTES) {
      this.#pieces.push(payload);
      this.#piecesBytes += payload.length;
      return false;
    }
    let packet: Packet;
    if (this.#pieces.length === 0) {
      packet = { sequenceId: sequence, lastSequenceId: sequence, pieces: 1, payload, chunkOffset };
    } else {
      this.#pieces.push(payload);
      packet = {
        sequenceId: this.#firstSequence,
        lastSequenceId: sequence,
        pieces: this.#pieces.length,
        payload: Buffer.concat(this.#pieces, this.#piecesBytes + payload.length),
        chunkOffset: -1,
      };
      this.#pieces = [];
      this.#piecesBytes = 0;
    }
    return onPacket(packet) === 'pause';
  }

  // Checked from the header, before waiting for (or keeping) that many bytes.
  #checkLength(pieceLength: number): void {
    if (this.#piecesBytes + pieceLength > this.#maxPacketBytes) {
      throw new ProtocolError(
        `packet of ${this.#piecesBytes + pieceLength}+ bytes is above the limit of ${this.#maxPacketBytes}`,
        ER_NET_PACKET_TOO_LARGE,
        SQLSTATE_COMMUNICATION_ERROR,
      );
    }
  }

  #hold(buffer: Buffer, offset: number): void {
    if (offset < buffer.length) this.#held = buffer.subarray(offset);
  }
}
