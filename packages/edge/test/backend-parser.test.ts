// The backend parser reads what the origin server sends back.
import { describe, expect, it } from 'vitest';
import {
  BackendParser,
  codes,
  dataRowText,
  dataRowValues,
  serialize,
} from '../src/pg/protocol/index.ts';
import type { BackendMessage } from '../src/pg/protocol/index.ts';
import { cstr, int16, int32, parseBackend, rawFrame } from './protocol-fixtures.ts';

function parseOne(bytes: Buffer): BackendMessage {
  const messages = parseBackend(new BackendParser(), bytes);
  expect(messages).toHaveLength(1);
  const [message] = messages as [BackendMessage];
  expect(message.frame).toEqual(bytes);
  return message;
}

describe('backend authentication', () => {
  it('reads every authentication request the edge relays', () => {
    expect(parseOne(serialize.authenticationOk()).kind).toBe('authenticationOk');
    expect(parseOne(serialize.authenticationCleartext()).kind).toBe(
      'authenticationCleartextPassword',
    );
    expect(parseOne(serialize.authenticationMD5(Buffer.from([9, 8, 7, 6])))).toMatchObject({
      kind: 'authenticationMD5Password',
      salt: Buffer.from([9, 8, 7, 6]),
    });
    expect(
      parseOne(serialize.authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'])),
    ).toMatchObject({
      kind: 'authenticationSASL',
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    });
    expect(parseOne(serialize.authenticationSASLContinue('r=abc,s=c2FsdA==,i=4096'))).toMatchObject(
      { kind: 'authenticationSASLContinue', data: Buffer.from('r=abc,s=c2FsdA==,i=4096') },
    );
    expect(parseOne(serialize.authenticationSASLFinal('v=c2ln'))).toMatchObject({
      kind: 'authenticationSASLFinal',
      data: Buffer.from('v=c2ln'),
    });
  });

  it('reports methods the edge does not relay with their subtype', () => {
    const bytes = rawFrame(codes.Authentication, int32(codes.AuthenticationGSS));
    expect(parseOne(bytes)).toMatchObject({ kind: 'authenticationOther', subtype: 7 });
  });
});

describe('backend session messages', () => {
  it('reads ParameterStatus, BackendKeyData and ReadyForQuery', () => {
    expect(parseOne(serialize.parameterStatus('TimeZone', 'UTC'))).toMatchObject({
      kind: 'parameterStatus',
      name: 'TimeZone',
      value: 'UTC',
    });
    expect(parseOne(serialize.backendKeyData(4242, -17))).toMatchObject({
      kind: 'backendKeyData',
      processId: 4242,
      secretKey: -17,
    });
    for (const status of ['I', 'T', 'E'] as const) {
      expect(parseOne(serialize.readyForQuery(status))).toMatchObject({
        kind: 'readyForQuery',
        status,
      });
    }
  });

  it('reads errors and notices as a field map', () => {
    const error = serialize.errorResponse({
      severity: 'ERROR',
      code: '42P01',
      message: 'relation "nope" does not exist',
      detail: 'd',
      hint: 'h',
    });
    expect(parseOne(error)).toMatchObject({
      kind: 'errorResponse',
      fields: {
        S: 'ERROR',
        V: 'ERROR',
        C: '42P01',
        M: 'relation "nope" does not exist',
        D: 'd',
        H: 'h',
      },
    });
    const notice = serialize.noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hi' });
    expect(parseOne(notice)).toMatchObject({ kind: 'noticeResponse', fields: { M: 'hi' } });
  });

  it('reads a notification', () => {
    const bytes = rawFrame(codes.NotificationResponse, int32(7), cstr('jobs'), cstr('{"id":1}'));
    expect(parseOne(bytes)).toMatchObject({
      kind: 'notificationResponse',
      processId: 7,
      channel: 'jobs',
      payload: '{"id":1}',
    });
  });

  it('reads NegotiateProtocolVersion', () => {
    const bytes = rawFrame(codes.NegotiateProtocolVersion, int32(0), int32(1), cstr('_pq_.x'));
    expect(parseOne(bytes)).toMatchObject({
      kind: 'negotiateProtocolVersion',
      newestMinorVersion: 0,
      unrecognizedOptions: ['_pq_.x'],
    });
  });

  it('passes unknown message types through instead of failing', () => {
    const bytes = rawFrame(0x7a, 'from a newer server');
    expect(parseOne(bytes)).toEqual({ kind: 'unknown', code: 0x7a, frame: bytes });
  });
});

describe('backend results', () => {
  it('reads a RowDescription', () => {
    const bytes = serialize.rowDescription([
      { name: 'id', tableOid: 16384, columnId: 1, typeOid: 23, typeSize: 4 },
      { name: 'naïve', typeModifier: 14, format: 1 },
    ]);
    expect(parseOne(bytes)).toMatchObject({
      kind: 'rowDescription',
      fields: [
        {
          name: 'id',
          tableOid: 16384,
          columnId: 1,
          typeOid: 23,
          typeSize: 4,
          typeModifier: -1,
          format: 0,
        },
        {
          name: 'naïve',
          tableOid: 0,
          columnId: 0,
          typeOid: 25,
          typeSize: -1,
          typeModifier: 14,
          format: 1,
        },
      ],
    });
  });

  it('checks a DataRow but slices its columns only on request', () => {
    const message = parseOne(serialize.dataRow(['1', null, '', Buffer.from([0xff])]));
    expect(message).toMatchObject({ kind: 'dataRow', columnCount: 4 });
    if (message.kind !== 'dataRow') throw new Error('unreachable');
    expect(dataRowValues(message)).toEqual([
      Buffer.from('1'),
      null,
      Buffer.alloc(0),
      Buffer.from([0xff]),
    ]);
    expect(dataRowText(message).slice(0, 3)).toEqual(['1', null, '']);
  });

  it('reads the completion messages of a query', () => {
    expect(parseOne(serialize.commandComplete('INSERT 0 3'))).toMatchObject({
      kind: 'commandComplete',
      tag: 'INSERT 0 3',
    });
    expect(parseOne(serialize.emptyQueryResponse()).kind).toBe('emptyQueryResponse');
    expect(parseOne(serialize.parseComplete()).kind).toBe('parseComplete');
    expect(parseOne(serialize.bindComplete()).kind).toBe('bindComplete');
    expect(parseOne(serialize.closeComplete()).kind).toBe('closeComplete');
    expect(parseOne(serialize.noData()).kind).toBe('noData');
    expect(parseOne(serialize.portalSuspended()).kind).toBe('portalSuspended');
    const description = rawFrame(codes.ParameterDescription, int16(2), int32(23), int32(25));
    expect(parseOne(description)).toMatchObject({
      kind: 'parameterDescription',
      typeOids: [23, 25],
    });
  });

  it('reads the COPY responses and data', () => {
    const layout = [Buffer.from([1]), int16(2), int16(1), int16(1)];
    expect(parseOne(rawFrame(codes.CopyInResponse, ...layout))).toMatchObject({
      kind: 'copyInResponse',
      format: 1,
      columnFormats: [1, 1],
    });
    expect(parseOne(rawFrame(codes.CopyOutResponse, ...layout)).kind).toBe('copyOutResponse');
    expect(parseOne(rawFrame(codes.CopyBothResponse, ...layout)).kind).toBe('copyBothResponse');
    expect(parseOne(serialize.copyData(Buffer.from('row\n')))).toMatchObject({
      kind: 'copyData',
      data: Buffer.from('row\n'),
    });
    expect(parseOne(serialize.copyDone()).kind).toBe('copyDone');
  });

  it('reads a FunctionCallResponse', () => {
    const bytes = rawFrame(codes.FunctionCallResponse, int32(2), 'ok');
    expect(parseOne(bytes)).toMatchObject({
      kind: 'functionCallResponse',
      value: Buffer.from('ok'),
    });
    const nullResult = rawFrame(codes.FunctionCallResponse, int32(-1));
    expect(parseOne(nullResult)).toMatchObject({ kind: 'functionCallResponse', value: null });
  });
});
