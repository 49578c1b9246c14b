// Shared fixtures for the protocol tests: raw frame builders and one of every message.
import { FrontendParser, codes, serialize } from '../src/pg/protocol/index.ts';
import type { BackendMessage, BackendParser, FrontendMessage } from '../src/pg/protocol/index.ts';

// Builds a typed frame by hand, for messages the serializer has no function for and for
// deliberately broken ones.
export function rawFrame(code: number, ...parts: (Buffer | string | number[])[]): Buffer {
  const body = Buffer.concat(parts.map(toBuffer));
  const header = Buffer.alloc(5);
  header[0] = code;
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

export function int16(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeInt16BE(value);
  return buffer;
}

export function int32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32BE(value);
  return buffer;
}

export function cstr(value: string): Buffer {
  return Buffer.from(`${value}\0`);
}

function toBuffer(part: Buffer | string | number[]): Buffer {
  if (typeof part === 'string') return Buffer.from(part);
  return Array.isArray(part) ? Buffer.from(part) : part;
}

export const startup = serialize.startupMessage({ user: 'alice', database: 'shop' });

// A frontend parser that has already seen the startup message.
export function typedFrontendParser(): FrontendParser {
  const parser = new FrontendParser();
  parser.parse(startup, () => {});
  return parser;
}

export function parseFrontend(parser: FrontendParser, ...chunks: Buffer[]): FrontendMessage[] {
  const messages: FrontendMessage[] = [];
  for (const chunk of chunks) parser.parse(chunk, (message) => messages.push(message));
  return messages;
}

export function parseBackend(parser: BackendParser, ...chunks: Buffer[]): BackendMessage[] {
  const messages: BackendMessage[] = [];
  for (const chunk of chunks) parser.parse(chunk, (message) => messages.push(message));
  return messages;
}

export const frontendFixtures: Buffer[] = [
  serialize.query('select * from orders where id = 1'),
  serialize.parse({ name: 'by_id', sql: 'select $1::int', paramTypes: [23] }),
  serialize.bind({ statement: 'by_id', params: ['42', null], resultFormats: [1] }),
  serialize.describe('P'),
  serialize.execute('', 0),
  serialize.sync(),
  serialize.flush(),
  serialize.close('S', 'by_id'),
  serialize.passwordMessage('hunter2'),
  serialize.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc'),
  serialize.saslResponse('c=biws,r=abc,p=xyz'),
  serialize.copyData(Buffer.from('1\tone\n')),
  serialize.copyDone(),
  serialize.copyFail('client gave up'),
  rawFrame(codes.FunctionCall, int32(1598), int16(0), int16(1), int32(2), 'ab', int16(0)),
  rawFrame(0x7a, 'whatever'),
  serialize.terminate(),
];

export const backendFixtures: Buffer[] = [
  serialize.authenticationSASL(['SCRAM-SHA-256']),
  serialize.authenticationSASLContinue('r=abc,s=c2FsdA==,i=4096'),
  serialize.authenticationSASLFinal('v=c2lnbmF0dXJl'),
  serialize.authenticationOk(),
  serialize.parameterStatus('server_version', '15.20'),
  serialize.backendKeyData(4242, -17),
  serialize.readyForQuery('I'),
  serialize.rowDescription([{ name: 'id', typeOid: 23, typeSize: 4 }, { name: 'name' }]),
  serialize.dataRow(['1', 'one']),
  serialize.dataRow(['2', null]),
  serialize.commandComplete('SELECT 2'),
  serialize.noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hello' }),
  serialize.parseComplete(),
  serialize.bindComplete(),
  serialize.noData(),
  serialize.emptyQueryResponse(),
  serialize.portalSuspended(),
  serialize.closeComplete(),
  rawFrame(codes.ParameterDescription, int16(1), int32(23)),
  rawFrame(codes.NotificationResponse, int32(7), cstr('jobs'), cstr('{"id":1}')),
  rawFrame(codes.CopyOutResponse, [0], int16(2), int16(0), int16(0)),
  serialize.copyData(Buffer.from('x')),
  serialize.copyDone(),
  rawFrame(codes.NegotiateProtocolVersion, int32(0), int32(1), cstr('_pq_.compression')),
  serialize.errorResponse({ severity: 'ERROR', code: '42P01', message: 'no such table' }),
  rawFrame(0x7a, 'from the future'),
  serialize.readyForQuery('E'),
];
