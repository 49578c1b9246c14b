// Bounds-checked reads over one frame, so a lying length or count becomes a ProtocolError.
import { ProtocolError } from './protocol-error.ts';

const EMPTY = Buffer.alloc(0);

// Decoding is synchronous and never re-entered, so each decoder module reuses one reader
// instead of allocating one per message.
export class BodyReader {
  #frame: Buffer = EMPTY;
  #pos = 0;

  reset(frame: Buffer, pos: number): this {
    this.#frame = frame;
    this.#pos = pos;
    return this;
  }

  get remaining(): number {
    return this.#frame.length - this.#pos;
  }

  uint8(): number {
    this.#need(1);
    return this.#frame[this.#pos++] as number;
  }

  int16(): number {
    this.#need(2);
    const value = this.#frame.readInt16BE(this.#pos);
    this.#pos += 2;
    return value;
  }

  int32(): number {
    this.#need(4);
    const value = this.#frame.readInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  uint32(): number {
    this.#need(4);
    const value = this.#frame.readUInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  // A count prefix, checked against the bytes left so a forged count cannot make us
  // allocate a large array before the body runs out.
  count16(minBytesEach: number): number {
    const n = this.int16();
    if (n < 0 || n * minBytesEach > this.remaining) throw malformed('bad count');
    return n;
  }

  count32(minBytesEach: number): number {
    const n = this.int32();
    if (n < 0 || n * minBytesEach > this.remaining) throw malformed('bad count');
    return n;
  }

  cstring(): string {
    const start = this.#pos;
    const nul = this.#frame.indexOf(0, start);
    if (nul < 0) throw malformed('missing string terminator');
    this.#pos = nul + 1;
    return this.#frame.toString('utf8', start, nul);
  }

  bytes(length: number): Buffer {
    this.#need(length);
    const start = this.#pos;
    this.#pos += length;
    return this.#frame.subarray(start, this.#pos);
  }

  // A length-prefixed value where -1 means SQL NULL (Bind, DataRow, FunctionCall).
  nullableBytes(): Buffer | null {
    const length = this.int32();
    if (length === -1) return null;
    if (length < 0) throw malformed('negative value length');
    return this.bytes(length);
  }

  rest(): Buffer {
    const start = this.#pos;
    this.#pos = this.#frame.length;
    return this.#frame.subarray(start);
  }

  // Postgres rejects trailing bytes too; accepting them would let two peers disagree on
  // what a frame meant.
  end(): void {
    if (this.#pos !== this.#frame.length) throw malformed('unexpected trailing bytes');
  }

  #need(n: number): void {
    if (this.#pos + n > this.#frame.length) throw malformed('message body too short');
  }
}

export function malformed(reason: string): ProtocolError {
  return new ProtocolError(`invalid message format: ${reason}`);
}
