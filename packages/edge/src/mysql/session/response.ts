// Where the origin's answer to one command ends, packet by packet, without decoding rows: the
// session relays answers as bytes and needs only their boundaries, the status flags that end them
// (transaction state), and where those flags sit (a cached answer replayed inside a transaction
// gets the session's own). Pure: packets in, verdicts out.
import * as codes from '../protocol/codes.ts';
import { ProtocolError } from '../protocol/protocol-error.ts';

/**
 * The shape of a command's answer:
 * - 'result': OK, ERR, a LOCAL INFILE request, or result sets (COM_QUERY, COM_STMT_EXECUTE…);
 * - 'prepare': COM_STMT_PREPARE's OK with parameter and column definitions, or ERR;
 * - 'rows': rows until EOF (COM_STMT_FETCH);
 * - 'fields': column definitions until EOF (COM_FIELD_LIST);
 * - 'single': one packet, whatever it holds (COM_STATISTICS);
 * - 'status': one OK, EOF or ERR (COM_PING, COM_INIT_DB…);
 * - 'auth': authentication rounds until OK or ERR (COM_CHANGE_USER).
 */
export type ResponseShape = 'result' | 'prepare' | 'rows' | 'fields' | 'single' | 'status' | 'auth';

/** What one packet meant: the answer goes on, is over, or waits for the client's file. */
export type ResponseStep = 'more' | 'done' | 'infile';

type State =
  | { kind: 'first' }
  | { kind: 'columns'; left: number }
  | { kind: 'columnsEof' }
  | { kind: 'rows' }
  | { kind: 'infile' }
  | { kind: 'prepareFirst' }
  | { kind: 'definitions'; left: number; then: 'params' | 'columns' }
  | { kind: 'definitionsEof'; then: 'params' | 'columns' }
  | { kind: 'fields' }
  | { kind: 'once' }
  | { kind: 'auth' }
  | { kind: 'done' };

/** COM_STMT_PREPARE's answer, as the session must remember it. */
export interface PreparedAnswer {
  statementId: number;
  columns: number;
  params: number;
}

export class ResponseReader {
  readonly shape: ResponseShape;
  readonly #deprecateEof: boolean;
  #state: State;
  #prepared: PreparedAnswer | null = null;
  #failed = false;
  /** Status flags of the last OK or EOF seen; -1 before one. */
  statusFlags = -1;
  /**
   * Where, in each packet's payload so far, status flags sat (packet index, payload offset), so a
   * stored copy can be given the current transaction status.
   */
  readonly statusAt: { packet: number; offset: number }[] = [];
  #packets = 0;
  #firstColumns = 0;

  constructor(shape: ResponseShape, deprecateEof: boolean) {
    this.shape = shape;
    this.#deprecateEof = deprecateEof;
    this.#state = initialState(shape);
  }

  /** The origin answered with ERR (the answer, or one of its statements, failed). */
  get failed(): boolean {
    return this.#failed;
  }

  /** COM_STMT_PREPARE's statement, once its first packet has arrived. */
  get prepared(): PreparedAnswer | null {
    return this.#prepared;
  }

  /** The answer holds a result set (a read's answer) rather than only OK packets. */
  get hasResultSet(): boolean {
    return this.#firstColumns > 0;
  }

  /** The client sent the file a LOCAL INFILE request asked for: the OK or ERR comes next. */
  fileSent(): void {
    if (this.#state.kind !== 'infile') throw new Error('no LOCAL INFILE request is open');
    this.#state = { kind: 'first' };
  }

  next(payload: Buffer): ResponseStep {
    const index = this.#packets;
    this.#packets += 1;
    const state = this.#state;
    const header = payload.length === 0 ? -1 : (payload[0] as number);
    switch (state.kind) {
      case 'done':
      case 'infile':
        throw new ProtocolError('the origin sent a packet no command asked for');
      case 'once':
        return this.#end();
      case 'auth':
        if (header === codes.OK_HEADER) {
          this.#status(payload, index, okStatusOffset(payload));
          return this.#end();
        }
        if (header === codes.ERR_HEADER) return this.#error();
        return 'more';
      case 'first':
        if (header === codes.ERR_HEADER) return this.#error();
        if (header === codes.OK_HEADER || isTerminator(payload)) {
          const offset = header === codes.OK_HEADER ? okStatusOffset(payload) : eofOffset(payload);
          return this.#afterResult(payload, index, offset);
        }
        if (header === codes.LOCAL_INFILE_HEADER && this.shape === 'result') {
          this.#state = { kind: 'infile' };
          return 'infile';
        }
        if (this.shape === 'status') {
          throw new ProtocolError('the origin answered a status command with a result set');
        }
        return this.#columnCount(payload);
      case 'columns':
        if (state.left === 1) {
          this.#state = this.#deprecateEof ? { kind: 'rows' } : { kind: 'columnsEof' };
        } else state.left -= 1;
        return 'more';
      case 'columnsEof': {
        if (!isTerminator(payload))
          throw new ProtocolError('expected EOF after column definitions');
        const flags = this.#status(payload, index, eofOffset(payload));
        // A cursor was opened: the rows come with COM_STMT_FETCH.
        if ((flags & codes.SERVER_STATUS_CURSOR_EXISTS) !== 0) return this.#end();
        this.#state = { kind: 'rows' };
        return 'more';
      }
      case 'rows':
        if (header === codes.ERR_HEADER) return this.#error();
        if (isTerminator(payload)) {
          const offset = this.#deprecateEof ? okStatusOffset(payload) : eofOffset(payload);
          return this.#afterResult(payload, index, offset);
        }
        return 'more';
      case 'prepareFirst':
        return this.#prepareOk(payload);
      case 'definitions':
        if (state.left === 1) {
          this.#state = this.#deprecateEof
            ? this.#afterDefinitions(state.then)
            : { kind: 'definitionsEof', then: state.then };
        } else state.left -= 1;
        return this.#state.kind === 'done' ? 'done' : 'more';
      case 'definitionsEof':
        if (!isTerminator(payload)) throw new ProtocolError('expected EOF after definitions');
        this.#status(payload, index, eofOffset(payload));
        this.#state = this.#afterDefinitions(state.then);
        return this.#state.kind === 'done' ? 'done' : 'more';
      case 'fields':
        if (header === codes.ERR_HEADER) return this.#error();
        if (isTerminator(payload)) {
          this.#status(
            payload,
            index,
            this.#deprecateEof ? okStatusOffset(payload) : eofOffset(payload),
          );
          return this.#end();
        }
        return 'more';
    }
  }

  #columnCount(payload: Buffer): ResponseStep {
    const count = lenencAt(payload, 0);
    if (count.value < 1 || count.end !== payload.length) {
      throw new ProtocolError('malformed column count');
    }
    if (this.#firstColumns === 0) this.#firstColumns = count.value;
    this.#state = { kind: 'columns', left: count.value };
    return 'more';
  }

  #afterResult(payload: Buffer, index: number, offset: number): ResponseStep {
    const flags = this.#status(payload, index, offset);
    if ((flags & codes.SERVER_MORE_RESULTS_EXISTS) !== 0) {
      this.#state = { kind: 'first' };
      return 'more';
    }
    return this.#end();
  }

  #prepareOk(payload: Buffer): ResponseStep {
    if (payload[0] === codes.ERR_HEADER) return this.#error();
    if (payload[0] !== codes.OK_HEADER || payload.length < 12) {
      throw new ProtocolError('malformed COM_STMT_PREPARE answer');
    }
    const prepared = {
      statementId: payload.readUInt32LE(1),
      columns: payload.readUInt16LE(5),
      params: payload.readUInt16LE(7),
    };
    this.#prepared = prepared;
    this.#state =
      prepared.params > 0
        ? { kind: 'definitions', left: prepared.params, then: 'params' }
        : this.#afterDefinitions('params');
    return this.#state.kind === 'done' ? 'done' : 'more';
  }

  #afterDefinitions(finished: 'params' | 'columns'): State {
    const columns = this.#prepared?.columns ?? 0;
    if (finished === 'params' && columns > 0) {
      return { kind: 'definitions', left: columns, then: 'columns' };
    }
    return { kind: 'done' };
  }

  #status(payload: Buffer, index: number, offset: number): number {
    if (offset < 0 || offset + 2 > payload.length) {
      throw new ProtocolError('malformed OK or EOF packet');
    }
    this.statusFlags = payload.readUInt16LE(offset);
    this.statusAt.push({ packet: index, offset });
    return this.statusFlags;
  }

  #error(): ResponseStep {
    this.#failed = true;
    return this.#end();
  }

  #end(): ResponseStep {
    this.#state = { kind: 'done' };
    return 'done';
  }
}

function initialState(shape: ResponseShape): State {
  switch (shape) {
    case 'result':
    case 'status':
      return { kind: 'first' };
    case 'prepare':
      return { kind: 'prepareFirst' };
    case 'rows':
      return { kind: 'rows' };
    case 'fields':
      return { kind: 'fields' };
    case 'single':
      return { kind: 'once' };
    case 'auth':
      return { kind: 'auth' };
  }
}

// An EOF packet, or the OK that replaces it under CLIENT_DEPRECATE_EOF (header 0xfe): a row can
// start with 0xfe only as the 8-byte length of a value of 16 MiB or more.
function isTerminator(payload: Buffer): boolean {
  return payload[0] === codes.EOF_HEADER && payload.length < codes.MAX_PACKET_PIECE_BYTES;
}

// EOF: header, warnings (2), status (2). A 0xfe packet of more than 5 bytes is an OK (see okStatusOffset).
function eofOffset(payload: Buffer): number {
  return payload.length <= codes.EOF_MAX_PAYLOAD_BYTES && payload.length >= 5
    ? 3
    : okStatusOffset(payload);
}

// OK: header, affected rows and last insert id (length-encoded), then status (2).
function okStatusOffset(payload: Buffer): number {
  const affected = lenencAt(payload, 1);
  const insertId = lenencAt(payload, affected.end);
  return insertId.end;
}

function lenencAt(payload: Buffer, offset: number): { value: number; end: number } {
  const first = payload[offset];
  if (first === undefined) throw new ProtocolError('truncated length-encoded integer');
  if (first < codes.LENENC_NULL) return { value: first, end: offset + 1 };
  const width =
    first === codes.LENENC_2_BYTES
      ? 2
      : first === codes.LENENC_3_BYTES
        ? 3
        : first === codes.LENENC_8_BYTES
          ? 8
          : -1;
  if (width < 0 || offset + 1 + width > payload.length) {
    throw new ProtocolError('malformed length-encoded integer');
  }
  const value =
    width === 8
      ? Number(payload.readBigUInt64LE(offset + 1))
      : payload.readUIntLE(offset + 1, width);
  return { value, end: offset + 1 + width };
}
