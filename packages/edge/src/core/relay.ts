// The bytes of one edge session in flight, for either protocol: what goes to the origin is batched
// and written once per turn of client input; what goes to the client is kept as runs (consecutive
// bytes of one buffer, most often the packets of one origin chunk) and written once per turn.
// Back-pressure goes both ways, and a writer's answer can be held until other edge nodes can know
// of its write (holdFor). The parsers, the protocol and the cache stay with the session.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

// More pieces than this are written with cork()/uncork() (writev) instead of copied into one.
const MAX_CONCATENATED = 32;

export interface RelayOptions {
  /** Counts what went to the client (the session's log line and `info()`). */
  onWritten: (bytes: number) => void;
  /** Every hold is over and the held output is out: a draining session may end now. */
  onReleased: () => void;
}

export class Relay {
  /** Replaced when the client's connection turns to TLS. */
  client: net.Socket;
  origin: net.Socket | null = null;
  /** The session handles no more client input until unblock(): the client socket is paused. */
  blocked = false;
  #closed = false;
  readonly #options: RelayOptions;
  readonly #out: Buffer[] = [];
  readonly #toOrigin: Buffer[] = [];
  #runSource: Buffer | null = null;
  #runStart = 0;
  #runEnd = 0;
  #holding = 0;

  constructor(client: net.Socket, options: RelayOptions) {
    this.client = client;
    this.#options = options;
  }

  /** Nothing held back, nothing waiting to go to the origin. */
  get idle(): boolean {
    return this.#holding === 0 && this.#toOrigin.length === 0;
  }

  /** How many pieces wait for the client (a long list is worth writing before more arrive). */
  get waitingPieces(): number {
    return this.#out.length + (this.#runSource === null ? 0 : 1);
  }

  /** The client socket is read from, and answers are written to it (after its TLS upgrade too). */
  attachClient(socket: net.Socket): void {
    this.client = socket;
    socket.setNoDelay(true);
    // The client caught up: the origin may send again (unless a writer's answer is held), and the
    // client may be read again (unless the origin is behind too).
    socket.on('drain', () => {
      if (this.#holding === 0) this.origin?.resume();
      this.#resumeClient();
    });
  }

  /**
   * The client's connection turns to TLS: the plain socket's listeners go, and the TLS layer reads
   * it, or what `transport` makes of it (the plain socket behind bytes already taken off it; made
   * after the listeners went, so its own stay). The session attaches the returned socket.
   */
  startClientTls(
    context: tls.SecureContext,
    transport: (plain: net.Socket) => Duplex = (plain) => plain,
  ): tls.TLSSocket {
    const plain = this.client;
    for (const event of ['data', 'close', 'error', 'drain']) plain.removeAllListeners(event);
    return new tls.TLSSocket(transport(plain) as net.Socket, {
      isServer: true,
      secureContext: context,
    });
  }

  attachOrigin(socket: net.Socket): void {
    this.origin = socket;
    socket.setNoDelay(true);
    socket.on('drain', () => this.#resumeClient());
  }

  block(): void {
    this.blocked = true;
    this.client.pause();
  }

  unblock(): void {
    this.blocked = false;
    this.#resumeClient();
  }

  // The client is read while the session takes input and neither link is behind; whichever of
  // unblock() and the two 'drain' events comes last resumes it.
  #resumeClient(): void {
    if (this.blocked || this.origin?.writableNeedDrain === true) return;
    if (this.client.writableNeedDrain) return;
    this.client.resume();
  }

  /** Queued for the origin; written at the next flush. */
  toOrigin(bytes: Buffer): void {
    this.#toOrigin.push(bytes);
  }

  /** Bytes `start..end` of `source` go to the client next (extending the current run if they follow it). */
  forward(source: Buffer, start: number, end: number): void {
    if (this.#runSource === source && this.#runEnd === start) {
      this.#runEnd = end;
      return;
    }
    this.#closeRun();
    this.#runSource = source;
    this.#runStart = start;
    this.#runEnd = end;
  }

  /** `bytes` go to the client next. */
  push(bytes: Buffer): void {
    this.forward(bytes, 0, bytes.length);
  }

  #closeRun(): void {
    const source = this.#runSource;
    if (source === null) return;
    const whole = this.#runStart === 0 && this.#runEnd === source.length;
    this.#out.push(whole ? source : source.subarray(this.#runStart, this.#runEnd));
    this.#runSource = null;
  }

  /**
   * With other edge nodes, a writer's answer waits until they can know of its write: reading from
   * the origin pauses, and what is ready for the client stays here until then.
   */
  holdFor(published: Promise<void> | null): void {
    if (published === null) return;
    this.#holding += 1;
    this.origin?.pause();
    void published.then(() => {
      this.#holding -= 1;
      if (this.#holding > 0 || this.#closed) return;
      this.origin?.resume();
      this.flush();
      this.#options.onReleased();
    });
  }

  /** Writes what waits for the origin. */
  flushOrigin(): void {
    const origin = this.origin;
    if (this.#toOrigin.length === 0 || origin === null) return;
    // A slow origin: stop reading the client until the origin drains.
    if (!writeAll(origin, this.#toOrigin)) this.client.pause();
  }

  /** Writes what waits for the origin, then (unless held) what waits for the client. */
  flush(): void {
    this.flushOrigin();
    this.#closeRun();
    if (this.#out.length === 0 || this.#closed || this.#holding > 0) return;
    const client = this.client;
    let bytes = 0;
    for (const piece of this.#out) bytes += piece.length;
    this.#options.onWritten(bytes);
    // A slow client: stop reading from the origin (and from the client) until it catches up.
    if (!writeAll(client, this.#out)) {
      this.origin?.pause();
      client.pause();
    }
  }

  /** The session is over: nothing is written any more (the sockets are the session's to end). */
  close(): void {
    this.#closed = true;
  }

  /**
   * Closes an ended session's origin connection: at once, or, with `settled`, once the commands it
   * sent have run. Those may still commit: the origin runs them to their end before it reads
   * `goodbye` (Terminate, COM_QUIT) and closes the connection; `settled` runs then, or after
   * ORIGIN_SETTLE_MS (the connection is destroyed). What the origin still sends is read and dropped,
   * so that it never blocks on a full socket.
   */
  closeOrigin(goodbye: Buffer, settled: (() => void) | null): void {
    const origin = this.origin;
    if (settled === null) return void origin?.destroy();
    if (origin === null || origin.destroyed) return settled();
    origin.removeAllListeners('data');
    origin.on('data', () => undefined);
    origin.resume();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      origin.destroy();
      settled();
    };
    const timer = setTimeout(finish, ORIGIN_SETTLE_MS);
    timer.unref();
    origin.once('close', finish);
    origin.end(goodbye);
  }
}

// How long an ended session's origin connection may run what was in flight (closeOrigin).
export const ORIGIN_SETTLE_MS = 30_000;

// Writes the pieces (and empties the list, which is kept for the next turn); false when the socket's
// buffer is past its high-water mark.
function writeAll(socket: net.Socket, pieces: Buffer[]): boolean {
  let ok: boolean;
  if (pieces.length === 1) ok = socket.write(pieces[0] as Buffer);
  else if (pieces.length <= MAX_CONCATENATED) ok = socket.write(Buffer.concat(pieces));
  else {
    socket.cork();
    for (const piece of pieces) socket.write(piece);
    socket.uncork();
    ok = socket.writableLength < socket.writableHighWaterMark;
  }
  pieces.length = 0;
  return ok;
}
