// Bounds-checked little-endian reads over one payload, so a lying length becomes a ProtocolError.
import { LENENC_2_BYTES, LENENC_3_BYTES, LENENC_8_BYTES, LENENC_NULL } from './codes.ts';
import { ProtocolError } from './protocol-error.ts';

export class PacketReader {
  readonly #payload: Buffer;
  #pos: number;

  constructor(payload: Buffer, pos = 0) {
    this.#payload = payload;
    this.#pos = pos;
  }

  get remaining(): number {
    return this.#payload.length - this.#pos;
  }

  get position(): number {
    return this.#pos;
  }

  peek(): number {
    this.#need(1);
    return this.#payload[this.#pos] as number;
  }

  uint8(): number {
    this.#need(1);
    return this.#payload[this.#pos++] as number;
  }

  uint16(): number {
    this.#need(2);
    const value = this.#payload.readUInt16LE(this.#pos);
    this.#pos += 2;
    return value;
  }

  uint24(): number {
    this.#need(3);
    const value = this.#payload.readUIntLE(this.#pos, 3);
    this.#pos += 3;
    return value;
  }

  uint32(): number {
    this.#need(4);
    const value = this.#payload.readUInt32LE(this.#pos);
    this.#pos += 4;
    return value;
  }

  uint64(): bigint {
    this.#need(8);
    const value = this.#payload.readBigUInt64LE(this.#pos);
    this.#pos += 8;
    return value;
  }

  // A length-encoded integer; NULL (0xfb) and 0xff are refused, as they never encode a number.
  lenencBigInt(): bigint {
    const first = this.uint8();
    if (first < LENENC_NULL) return BigInt(first);
    switch (first) {
      case LENENC_2_BYTES:
        return BigInt(this.uint16());
      case LENENC_3_BYTES:
        return BigInt(this.uint24());
      case LENENC_8_BYTES:
        return this.uint64();
      default:
        throw malformed(`0x${first.toString(16)} does not start a length-encoded integer`);
    }
  }

  // A length-encoded integer used as a count or a length: it must fit in a safe number.
  lenencInt(): number {
    const value = this.lenencBigInt();
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      throw malformed('length-encoded integer too large');
    return Number(value);
  }

  bytes(length: number): Buffer {
    this.#need(length);
    const start = this.#pos;
    this.#pos += length;
    return this.#payload.subarray(start, this.#pos);
  }

  lenencBytes(): Buffer {
    return this.bytes(this.lenencInt());
  }

  lenencString(): string {
    return this.lenencBytes().toString('utf8');
  }

  // A NUL-terminated string.
  cstring(): string {
    const start = this.#pos;
    const nul = this.#payload.indexOf(0, start);
    if (nul < 0) throw malformed('missing string terminator');
    this.#pos = nul + 1;
    return this.#payload.toString('utf8', start, nul);
  }

  // A NUL-terminated string whose terminator some peers omit at the very end of the packet.
  cstringOrRest(): string {
    const start = this.#pos;
    const nul = this.#payload.indexOf(0, start);
    const end = nul < 0 ? this.#payload.length : nul;
    this.#pos = nul < 0 ? end : nul + 1;
    return this.#payload.toString('utf8', start, end);
  }

  rest(): Buffer {
    const start = this.#pos;
    this.#pos = this.#payload.length;
    return this.#payload.subarray(start);
  }

  skip(length: number): void {
    this.#need(length);
    this.#pos += length;
  }

  #need(length: number): void {
    if (length < 0 || this.#pos + length > this.#payload.length) {
      throw malformed('packet ends early');
    }
  }
}

export function malformed(what: string): ProtocolError {
  return new ProtocolError(`malformed packet: ${what}`);
}
