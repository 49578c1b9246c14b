// Incremental framing of a Postgres byte stream into typed messages; it never touches a socket.
import { decodeBackendFrame } from './decode-backend.ts';
import { decodeFrontendFrame, decodeStartupFrame } from './decode-frontend.ts';
import type { BackendMessage, FrontendMessage } from './messages.ts';
import * as codes from './codes.ts';
import { ProtocolError } from './protocol-error.ts';

export interface ParserOptions {
  // Largest frame accepted, counted like the length field (itself plus the body).
  maxMessageBytes?: number;
}

// Postgres' own limit for the body of any message (MaxAllocSize).
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;
// Postgres refuses startup packets above MAX_STARTUP_PACKET_LENGTH; so do we, before
// a client has even said who it is.
const MAX_STARTUP_BYTES = 10000;
// Type byte and length of a Terminate, the one typed frame accepted in the startup phase.
const TERMINATE_BYTES = 5;
// A partial frame buffer starts at most this big and doubles, so a header that merely
// claims a huge frame does not make us reserve it up front.
const EAGER_ALLOCATION_BYTES = 1024 * 1024;

type Decoder<M> = {
  typed(code: number, frame: Buffer): M;
  // Null when the stream has no startup phase (server→client).
  startup: ((frame: Buffer) => M) | null;
};

class Parser<M extends { kind: string }> {
  readonly #decoder: Decoder<M>;
  readonly #maxMessageBytes: number;
  #startupPhase: boolean;
  // Bytes held back after an SSLRequest or GSSENCRequest (see `bufferedBytes`).
  #held: Buffer | null = null;
  // The frame being assembled across chunks; a fresh buffer each time, because earlier
  // frames handed to the caller may still be queued for writing.
  #partial: Buffer | null = null;
  #partialFilled = 0;
  #partialSize = -1;
  #failure: ProtocolError | null = null;

  constructor(decoder: Decoder<M>, options: ParserOptions) {
    this.#decoder = decoder;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#startupPhase = decoder.startup !== null;
  }

  // Bytes received but not yet emitted. After an SSLRequest or GSSENCRequest this must be
  // 0: anything else arrived before encryption was negotiated and could be injected
  // (CVE-2021-23222), so a proxy should close instead of upgrading the connection.
  get bufferedBytes(): number {
    return (this.#held?.length ?? 0) + this.#partialFilled;
  }

  // True until a StartupMessage has been parsed (frontend only).
  get inStartupPhase(): boolean {
    return this.#startupPhase;
  }

  // Emits every complete message in `chunk` (plus what earlier chunks left over) in order.
  // Frames that fit in one chunk are zero-copy views of it. After a ProtocolError the
  // stream cannot be resynchronised, so every later call throws the same error.
  parse(chunk: Buffer, onMessage: (message: M) => void): void {
    if (this.#failure !== null) throw this.#failure;
    try {
      this.#parse(chunk, onMessage);
    } catch (error) {
      if (error instanceof ProtocolError) this.#failure = error;
      throw error;
    }
  }

  #parse(chunk: Buffer, onMessage: (message: M) => void): void {
    let buffer = chunk;
    if (this.#held !== null) {
      buffer = Buffer.concat([this.#held, chunk]);
      this.#held = null;
    }
    let offset = 0;
    if (this.#partial !== null) {
      offset = this.#fillPartial(buffer);
      if (this.#partialSize < 0 || this.#partialFilled < this.#partialSize) return;
      const frame = this.#partial.subarray(0, this.#partialSize);
      this.#partial = null;
      this.#partialFilled = 0;
      this.#partialSize = -1;
      if (this.#emit(frame, onMessage)) return this.#hold(buffer, offset);
    }
    const end = buffer.length;
    while (offset < end) {
      const available = end - offset;
      if (available < this.#headerBytes()) break;
      const size = this.#frameSize(buffer, offset);
      if (available < size) break;
      const frame = buffer.subarray(offset, offset + size);
      offset += size;
      if (this.#emit(frame, onMessage)) return this.#hold(buffer, offset);
    }
    if (offset < end) this.#startPartial(buffer, offset);
  }

  // Returns true when parsing must pause: the client asked for encryption and must wait
  // for our one-byte answer before sending anything else.
  #emit(frame: Buffer, onMessage: (message: M) => void): boolean {
    const startup = this.#decoder.startup;
    if (!this.#startupPhase || startup === null) {
      onMessage(this.#decoder.typed(frame[0] as number, frame));
      return false;
    }
    const message = startup(frame);
    if (message.kind === 'startupMessage') this.#startupPhase = false;
    onMessage(message);
    return message.kind === 'sslRequest' || message.kind === 'gssEncRequest';
  }

  #hold(buffer: Buffer, offset: number): void {
    if (offset < buffer.length) this.#held = buffer.subarray(offset);
  }

  #headerBytes(): number {
    return this.#startupPhase ? 4 : 5;
  }

  // Total bytes of the frame whose header starts at `offset`, validated before we wait
  // for or allocate that many bytes.
  #frameSize(buffer: Buffer, offset: number): number {
    if (this.#startupPhase) {
      // A Terminate queued before the startup packet (node-postgres' `end()` right after
      // `connect()`): a typed frame, whose type byte no valid startup length can begin with.
      if (buffer[offset] === codes.Terminate) return TERMINATE_BYTES;
      const length = buffer.readInt32BE(offset);
      if (length < 8 || length > MAX_STARTUP_BYTES) {
        throw new ProtocolError(`invalid startup packet length ${length}`);
      }
      return length;
    }
    const length = buffer.readInt32BE(offset + 1);
    if (length < 4 || length > this.#maxMessageBytes) {
      throw new ProtocolError(`invalid message length ${length}`);
    }
    return length + 1;
  }

  #startPartial(buffer: Buffer, offset: number): void {
    const available = buffer.length - offset;
    const header = this.#headerBytes();
    if (available < header) {
      this.#partial = Buffer.allocUnsafe(header);
      this.#partialSize = -1;
    } else {
      this.#partialSize = this.#frameSize(buffer, offset);
      this.#partial = Buffer.allocUnsafe(initialCapacity(this.#partialSize, available));
    }
    buffer.copy(this.#partial, 0, offset);
    this.#partialFilled = available;
  }

  // Copies as much of `buffer` as the pending frame still needs; returns bytes consumed.
  #fillPartial(buffer: Buffer): number {
    let partial = this.#partial as Buffer;
    let consumed = 0;
    if (this.#partialSize < 0) {
      const header = partial.length;
      consumed = Math.min(header - this.#partialFilled, buffer.length);
      buffer.copy(partial, this.#partialFilled, 0, consumed);
      this.#partialFilled += consumed;
      if (this.#partialFilled < header) return consumed;
      this.#partialSize = this.#frameSize(partial, 0);
      const incoming = buffer.length - consumed;
      partial = this.#grow(partial, initialCapacity(this.#partialSize, header + incoming));
    }
    const take = Math.min(this.#partialSize - this.#partialFilled, buffer.length - consumed);
    if (this.#partialFilled + take > partial.length) {
      partial = this.#grow(
        partial,
        Math.min(this.#partialSize, Math.max(partial.length * 2, this.#partialFilled + take)),
      );
    }
    buffer.copy(partial, this.#partialFilled, consumed, consumed + take);
    this.#partialFilled += take;
    return consumed + take;
  }

  #grow(partial: Buffer, capacity: number): Buffer {
    if (capacity <= partial.length) return partial;
    const grown = Buffer.allocUnsafe(capacity);
    partial.copy(grown, 0, 0, this.#partialFilled);
    this.#partial = grown;
    return grown;
  }
}

function initialCapacity(frameSize: number, available: number): number {
  return Math.min(frameSize, Math.max(available, EAGER_ALLOCATION_BYTES));
}

// Client→server: an untyped startup phase (StartupMessage, SSLRequest, GSSENCRequest,
// CancelRequest), then typed messages.
export class FrontendParser extends Parser<FrontendMessage> {
  constructor(options: ParserOptions = {}) {
    super({ typed: decodeFrontendFrame, startup: decodeStartupFrame }, options);
  }
}

// Server→client: typed messages only. The single 'S'/'N' answer to an SSLRequest has no
// length, so a caller that sent one reads that byte before feeding the parser.
export class BackendParser extends Parser<BackendMessage> {
  constructor(options: ParserOptions = {}) {
    super({ typed: decodeBackendFrame, startup: null }, options);
  }
}
