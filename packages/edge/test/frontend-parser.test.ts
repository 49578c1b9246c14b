// The frontend parser reads what clients send: the startup phase, then typed messages.
import { describe, expect, it } from 'vitest';
import {
  FrontendParser,
  codes,
  decodePasswordMessage,
  decodeSASLInitialResponse,
  decodeSASLResponse,
  serialize,
} from '../src/pg/protocol/index.ts';
import type { FrontendMessage } from '../src/pg/protocol/index.ts';
import { int16, int32, parseFrontend, rawFrame, typedFrontendParser } from './protocol-fixtures.ts';

function parseOne(bytes: Buffer): FrontendMessage {
  const messages = parseFrontend(typedFrontendParser(), bytes);
  expect(messages).toHaveLength(1);
  const [message] = messages as [FrontendMessage];
  expect(message.frame).toEqual(bytes);
  return message;
}

describe('frontend startup phase', () => {
  it('reads the startup parameters a proxy routes on', () => {
    const bytes = serialize.startupMessage({
      user: 'alice',
      database: 'shop',
      application_name: 'cache_123',
    });
    const parser = new FrontendParser();
    const [message] = parseFrontend(parser, bytes);
    expect(message).toMatchObject({ kind: 'startupMessage', protocolVersion: 196608 });
    if (message?.kind !== 'startupMessage') throw new Error('unreachable');
    expect(Object.fromEntries(message.parameters)).toEqual({
      user: 'alice',
      database: 'shop',
      application_name: 'cache_123',
    });
    expect(parser.inStartupPhase).toBe(false);
  });

  it('reads a cancel request with the key to look up', () => {
    const [message] = parseFrontend(new FrontendParser(), serialize.cancelRequest(1234, -5));
    expect(message).toMatchObject({ kind: 'cancelRequest', processId: 1234, secretKey: -5 });
  });

  it('pauses after an SSLRequest so bytes sent before TLS are never taken as plaintext', () => {
    const parser = new FrontendParser();
    const early = serialize.startupMessage({ user: 'mallory' });
    const first = parseFrontend(parser, Buffer.concat([serialize.sslRequest(), early]));
    expect(first.map((message) => message.kind)).toEqual(['sslRequest']);
    expect(parser.bufferedBytes).toBe(early.length);
    expect(parser.inStartupPhase).toBe(true);
    expect(parseFrontend(parser, Buffer.alloc(0)).map((m) => m.kind)).toEqual(['startupMessage']);
  });

  it('accepts a StartupMessage after an SSLRequest was refused', () => {
    const parser = new FrontendParser();
    expect(parseFrontend(parser, serialize.sslRequest())[0]?.kind).toBe('sslRequest');
    expect(parser.bufferedBytes).toBe(0);
    expect(parseFrontend(parser, serialize.gssEncRequest())[0]?.kind).toBe('gssEncRequest');
    const messages = parseFrontend(
      parser,
      serialize.startupMessage({ user: 'a' }),
      serialize.sync(),
    );
    expect(messages.map((message) => message.kind)).toEqual(['startupMessage', 'sync']);
  });

  it('reads a Terminate sent before the startup packet, even split across chunks', () => {
    const terminate = serialize.terminate();
    const messages = parseFrontend(
      new FrontendParser(),
      terminate.subarray(0, 2),
      Buffer.concat([terminate.subarray(2), serialize.startupMessage({ user: 'a' })]),
    );
    expect(messages.map((message) => message.kind)).toEqual(['terminate', 'startupMessage']);
    expect(() =>
      parseFrontend(new FrontendParser(), Buffer.from([codes.Terminate, 0, 0, 0, 5, 0])),
    ).toThrow(/invalid startup packet length/);
  });

  it('passes an unknown protocol version on as unknown', () => {
    const bytes = serialize.startupMessage({ user: 'a' }, 2 << 16);
    const parser = new FrontendParser();
    expect(parseFrontend(parser, bytes)[0]).toMatchObject({ kind: 'unknown', code: 2 << 16 });
    expect(parser.inStartupPhase).toBe(true);
  });
});

describe('frontend typed messages', () => {
  it('reads a simple query', () => {
    expect(parseOne(serialize.query('select 1'))).toMatchObject({ kind: 'query', sql: 'select 1' });
  });

  it('reads Parse with its parameter types', () => {
    const bytes = serialize.parse({ name: 's1', sql: 'select $1', paramTypes: [23, 4294967295] });
    expect(parseOne(bytes)).toMatchObject({
      kind: 'parse',
      name: 's1',
      sql: 'select $1',
      paramTypes: [23, 4294967295],
    });
  });

  it('reads Bind values as views of the frame, with NULL as null', () => {
    const bytes = serialize.bind({
      portal: 'p1',
      statement: 's1',
      paramFormats: [0, 1, 0],
      params: ['42', Buffer.from([0, 1]), null],
      resultFormats: [1],
    });
    const message = parseOne(bytes);
    expect(message).toMatchObject({
      kind: 'bind',
      portal: 'p1',
      statement: 's1',
      paramFormats: [0, 1, 0],
      params: [Buffer.from('42'), Buffer.from([0, 1]), null],
      resultFormats: [1],
    });
    if (message.kind !== 'bind') throw new Error('unreachable');
    expect(message.params[0]?.buffer).toBe(message.frame.buffer);
  });

  it('reads Describe, Execute and Close', () => {
    expect(parseOne(serialize.describe('S', 's1'))).toMatchObject({
      kind: 'describe',
      target: 'S',
      name: 's1',
    });
    expect(parseOne(serialize.execute('p1', 100))).toMatchObject({
      kind: 'execute',
      portal: 'p1',
      maxRows: 100,
    });
    expect(parseOne(serialize.close('P', 'p1'))).toMatchObject({
      kind: 'close',
      target: 'P',
      name: 'p1',
    });
  });

  it('reads the body-less messages', () => {
    expect(parseOne(serialize.sync()).kind).toBe('sync');
    expect(parseOne(serialize.flush()).kind).toBe('flush');
    expect(parseOne(serialize.terminate()).kind).toBe('terminate');
    expect(parseOne(serialize.copyDone()).kind).toBe('copyDone');
  });

  it('keeps auth replies raw and decodes them on request', () => {
    const password = parseOne(serialize.passwordMessage('hunter2'));
    if (password.kind !== 'authenticationResponse') throw new Error('unexpected kind');
    expect(decodePasswordMessage(password)).toBe('hunter2');

    const initial = parseOne(serialize.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc'));
    if (initial.kind !== 'authenticationResponse') throw new Error('unexpected kind');
    expect(decodeSASLInitialResponse(initial)).toEqual({
      mechanism: 'SCRAM-SHA-256',
      data: Buffer.from('n,,n=,r=abc'),
    });

    const empty = parseOne(serialize.saslInitialResponse('SCRAM-SHA-256', null));
    if (empty.kind !== 'authenticationResponse') throw new Error('unexpected kind');
    expect(decodeSASLInitialResponse(empty)).toEqual({ mechanism: 'SCRAM-SHA-256', data: null });

    const response = parseOne(serialize.saslResponse('c=biws,r=abc,p=xyz'));
    if (response.kind !== 'authenticationResponse') throw new Error('unexpected kind');
    expect(decodeSASLResponse(response).toString()).toBe('c=biws,r=abc,p=xyz');
  });

  it('reads COPY from the client', () => {
    expect(parseOne(serialize.copyData(Buffer.from('1\tone\n')))).toMatchObject({
      kind: 'copyData',
      data: Buffer.from('1\tone\n'),
    });
    expect(parseOne(serialize.copyFail('gave up'))).toMatchObject({
      kind: 'copyFail',
      message: 'gave up',
    });
  });

  it('reads a FunctionCall', () => {
    const bytes = rawFrame(
      codes.FunctionCall,
      int32(1598),
      int16(1),
      int16(0),
      int16(2),
      int32(2),
      'ab',
      int32(-1),
      int16(1),
    );
    expect(parseOne(bytes)).toMatchObject({
      kind: 'functionCall',
      functionOid: 1598,
      argFormats: [0],
      args: [Buffer.from('ab'), null],
      resultFormat: 1,
    });
  });

  it('passes unknown message types through instead of failing', () => {
    const bytes = rawFrame(0x7a, 'from a newer client');
    expect(parseOne(bytes)).toEqual({ kind: 'unknown', code: 0x7a, frame: bytes });
  });
});
