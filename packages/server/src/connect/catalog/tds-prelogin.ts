// TDS PRELOGIN (MS-TDS 2.2.6.5): the request a SQL Server client opens with, and its response parsed.
// Bytes in, values out: nothing here touches a socket.

/** Packet types (MS-TDS 2.2.3.1.1). A PRELOGIN request is answered by a tabular result packet. */
export const PRELOGIN = 0x12;
export const TABULAR_RESULT = 0x04;
const STATUS_END_OF_MESSAGE = 0x01;
const HEADER_LENGTH = 8;
/** Larger than any PRELOGIN response; anything claiming more is not one. */
const MAX_RESPONSE_LENGTH = 4096;

/** PRELOGIN option tokens. */
const OPTION_VERSION = 0x00;
const OPTION_ENCRYPTION = 0x01;
const OPTION_INSTOPT = 0x02;
const OPTION_THREADID = 0x03;
const OPTION_MARS = 0x04;
const OPTION_TERMINATOR = 0xff;
const OPTION_ENTRY_LENGTH = 5;

/** ENCRYPTION option values: what one side offers or demands. */
export const ENCRYPT_OFF = 0x00;
export const ENCRYPT_ON = 0x01;
export const ENCRYPT_NOT_SUP = 0x02;
export const ENCRYPT_REQ = 0x03;

export type PreloginResponse =
  | { kind: 'incomplete' }
  | { kind: 'prelogin'; version: string; encryption: number }
  | { kind: 'not_tds'; reason: string };

/** A PRELOGIN request offering `encryption` (ENCRYPT_*), for the default instance, without MARS. */
export function serializePrelogin(encryption: number): Buffer {
  const options: readonly [token: number, data: Buffer][] = [
    [OPTION_VERSION, Buffer.alloc(6)], // client version 0.0.0.0: servers ignore it
    [OPTION_ENCRYPTION, Buffer.from([encryption])],
    [OPTION_INSTOPT, Buffer.from([0x00])], // empty instance name: whichever listens on the port
    [OPTION_THREADID, Buffer.alloc(4)],
    [OPTION_MARS, Buffer.from([0x00])],
  ];
  const tableLength = options.length * OPTION_ENTRY_LENGTH + 1;
  const table = Buffer.alloc(tableLength);
  let dataOffset = tableLength;
  options.forEach(([token, data], index) => {
    const entry = index * OPTION_ENTRY_LENGTH;
    table.writeUInt8(token, entry);
    table.writeUInt16BE(dataOffset, entry + 1);
    table.writeUInt16BE(data.length, entry + 3);
    dataOffset += data.length;
  });
  table.writeUInt8(OPTION_TERMINATOR, tableLength - 1);
  const payload = Buffer.concat([table, ...options.map(([, data]) => data)]);

  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt8(PRELOGIN, 0);
  header.writeUInt8(STATUS_END_OF_MESSAGE, 1);
  header.writeUInt16BE(HEADER_LENGTH + payload.length, 2);
  // SPID and window stay 0; packet ids count from 1.
  header.writeUInt8(1, 6);
  return Buffer.concat([header, payload]);
}

/** Reads the server's answer so far: `incomplete` until a whole packet has arrived. */
export function parsePreloginResponse(buffer: Buffer): PreloginResponse {
  if (buffer.length >= 1 && buffer[0] !== TABULAR_RESULT) {
    return { kind: 'not_tds', reason: `packet type 0x${hex(buffer[0])} instead of 0x04` };
  }
  if (buffer.length < HEADER_LENGTH) return { kind: 'incomplete' };
  const length = buffer.readUInt16BE(2);
  if (length <= HEADER_LENGTH || length > MAX_RESPONSE_LENGTH) {
    return { kind: 'not_tds', reason: `impossible packet length ${length}` };
  }
  if (buffer.length < length) return { kind: 'incomplete' };
  return parseOptions(buffer.subarray(HEADER_LENGTH, length));
}

function parseOptions(payload: Buffer): PreloginResponse {
  let version: string | undefined;
  let encryption: number | undefined;
  for (let entry = 0; ; entry += OPTION_ENTRY_LENGTH) {
    const token = payload[entry];
    if (token === OPTION_TERMINATOR) break;
    if (token === undefined || entry + OPTION_ENTRY_LENGTH > payload.length) {
      return { kind: 'not_tds', reason: 'the option table has no terminator' };
    }
    const offset = payload.readUInt16BE(entry + 1);
    const length = payload.readUInt16BE(entry + 3);
    if (offset + length > payload.length) {
      return { kind: 'not_tds', reason: `option 0x${hex(token)} points past the packet` };
    }
    if (token === OPTION_VERSION && length >= 6) {
      // UL_VERSION is major, minor, then a big-endian build number; US_SUBBUILD follows.
      const major = payload.readUInt8(offset);
      const minor = payload.readUInt8(offset + 1);
      const build = payload.readUInt16BE(offset + 2);
      version = `${major}.${minor}.${build}`;
    }
    if (token === OPTION_ENCRYPTION && length >= 1) encryption = payload.readUInt8(offset);
  }
  if (version === undefined || encryption === undefined) {
    return { kind: 'not_tds', reason: 'the response lacks the VERSION or ENCRYPTION option' };
  }
  return { kind: 'prelogin', version, encryption };
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, '0');
}
