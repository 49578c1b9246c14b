// Framing of the origin's byte stream for the hot path: complete frames are handed out as ranges of
// the chunk that carried them (no copy, no decoding), and a frame too big to hold is streamed in
// pieces, so a huge DataRow never sits whole in memory. It never touches a socket.
import * as codes from '../protocol/codes.ts';
import { ProtocolError } from '../protocol/protocol-error.ts';

export interface BackendFrameSink {
  /** A whole frame: `buffer[start, end)` is type byte, length and body. */
  frame(code: number, buffer: Buffer, start: number, end: number): void;
  /** Part of a frame streamed because it is larger than `holdLimit`; `last` ends the frame. */
  piece(code: number, piece: Buffer, last: boolean): void;
}

// Frames the session reads the body of: always small, so always held whole.
const INSPECTED = new Set([
  codes.ReadyForQuery,
  codes.CommandComplete,
  codes.ParameterStatus,
  codes.BackendKeyData,
  codes.Authentication,
  codes.ParseComplete,
  codes.BindComplete,
]);
const MAX_INSPECTED_BYTES = 1024 * 1024;

export class BackendFrames {
  readonly #holdLimit: number;
  // A frame being assembled across chunks (held), or streamed (remaining > 0, no buffer).
  #held: Buffer | null = null;
  #heldFilled = 0;
  #streamCode = 0;
  #streamRemaining = 0;
  #header = Buffer.alloc(5);
  #headerFilled = 0;

  constructor(holdLimit = 64 * 1024) {
    this.#holdLimit = holdLimit;
  }

  push(chunk: Buffer, sink: BackendFrameSink): void {
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      if (this.#streamRemaining > 0) {
        const take = Math.min(this.#streamRemaining, end - offset);
        this.#streamRemaining -= take;
        sink.piece(
          this.#streamCode,
          chunk.subarray(offset, offset + take),
          this.#streamRemaining === 0,
        );
        offset += take;
        continue;
      }
      if (this.#held !== null) {
        const take = Math.min(this.#held.length - this.#heldFilled, end - offset);
        chunk.copy(this.#held, this.#heldFilled, offset, offset + take);
        this.#heldFilled += take;
        offset += take;
        if (this.#heldFilled === this.#held.length) {
          const frame = this.#held;
          this.#held = null;
          sink.frame(frame[0] as number, frame, 0, frame.length);
        }
        continue;
      }
      if (this.#headerFilled > 0) {
        const take = Math.min(5 - this.#headerFilled, end - offset);
        chunk.copy(this.#header, this.#headerFilled, offset, offset + take);
        this.#headerFilled += take;
        offset += take;
        if (this.#headerFilled < 5) return;
        this.#headerFilled = 0;
        this.#begin(this.#header, 0, sink);
        continue;
      }
      if (end - offset < 5) {
        chunk.copy(this.#header, 0, offset, end);
        this.#headerFilled = end - offset;
        return;
      }
      const size = frameSize(chunk, offset);
      if (end - offset >= size) {
        sink.frame(chunk[offset] as number, chunk, offset, offset + size);
        offset += size;
        continue;
      }
      this.#begin(chunk, offset, sink);
      offset += 5;
    }
  }

  // A frame whose 5-byte header is at `buffer[offset]` continues past this chunk.
  #begin(buffer: Buffer, offset: number, sink: BackendFrameSink): void {
    const code = buffer[offset] as number;
    const size = frameSize(buffer, offset);
    const header = Buffer.from(buffer.subarray(offset, offset + 5));
    if (INSPECTED.has(code) || size <= this.#holdLimit) {
      if (size > MAX_INSPECTED_BYTES && INSPECTED.has(code)) {
        throw new ProtocolError(
          `the origin sent a ${String.fromCharCode(code)} message of ${size} bytes`,
        );
      }
      this.#held = Buffer.allocUnsafe(size);
      header.copy(this.#held, 0);
      this.#heldFilled = 5;
      if (size === 5) {
        const frame = this.#held;
        this.#held = null;
        sink.frame(code, frame, 0, 5);
      }
      return;
    }
    this.#streamCode = code;
    this.#streamRemaining = size - 5;
    sink.piece(code, header, false);
  }
}

function frameSize(buffer: Buffer, offset: number): number {
  const length = buffer.readInt32BE(offset + 1);
  if (length < 4) throw new ProtocolError(`the origin sent a message with length ${length}`);
  return length + 1;
}
