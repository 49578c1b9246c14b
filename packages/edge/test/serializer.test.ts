// The serializer writes the exact bytes the Postgres protocol documentation specifies.
import { describe, expect, it } from 'vitest';
import { serialize } from '../src/pg/protocol/index.ts';

const hex = (buffer: Buffer) => buffer.toString('hex');
const ascii = (text: string) => Buffer.from(text).toString('hex');

describe('serializer byte fixtures', () => {
  it('writes fixed frontend messages', () => {
    expect(hex(serialize.sync())).toBe('5300000004');
    expect(hex(serialize.flush())).toBe('4800000004');
    expect(hex(serialize.terminate())).toBe('5800000004');
  });

  it('writes startup-phase requests without a type byte', () => {
    expect(hex(serialize.sslRequest())).toBe('0000000804d2162f');
    expect(hex(serialize.gssEncRequest())).toBe('0000000804d21630');
    expect(hex(serialize.cancelRequest(7, 9))).toBe('0000001004d2162e0000000700000009');
    expect(hex(serialize.startupMessage({ user: 'postgres' }))).toBe(
      '0000001700030000' + ascii('user\0postgres\0') + '00',
    );
  });

  it('writes a simple query', () => {
    expect(hex(serialize.query('select 1'))).toBe('510000000d' + ascii('select 1\0'));
  });

  it('writes an extended-protocol round', () => {
    expect(hex(serialize.parse({ sql: 'select $1', paramTypes: [23] }))).toBe(
      '5000000015' + ascii('\0select $1\0') + '0001' + '00000017',
    );
    expect(hex(serialize.bind({ params: ['7', null] }))).toBe(
      '4200000015' + '00' + '00' + '0000' + '0002' + '0000000137' + 'ffffffff' + '0000',
    );
    expect(hex(serialize.describe('P'))).toBe('440000000650' + '00');
    expect(hex(serialize.execute())).toBe('450000000900' + '00000000');
  });

  it('writes backend status messages', () => {
    expect(hex(serialize.readyForQuery('I'))).toBe('5a0000000549');
    expect(hex(serialize.readyForQuery('T'))).toBe('5a0000000554');
    expect(hex(serialize.authenticationOk())).toBe('520000000800000000');
    expect(hex(serialize.authenticationCleartext())).toBe('520000000800000003');
    expect(hex(serialize.authenticationMD5(Buffer.from([1, 2, 3, 4])))).toBe(
      '520000000c0000000501020304',
    );
    expect(hex(serialize.backendKeyData(1, 2))).toBe('4b0000000c0000000100000002');
    expect(hex(serialize.commandComplete('SELECT 1'))).toBe('430000000d' + ascii('SELECT 1\0'));
    expect(hex(serialize.parseComplete())).toBe('3100000004');
    expect(hex(serialize.bindComplete())).toBe('3200000004');
    expect(hex(serialize.noData())).toBe('6e00000004');
  });

  it('writes SASL negotiation', () => {
    expect(hex(serialize.authenticationSASL(['SCRAM-SHA-256']))).toBe(
      '5200000017' + '0000000a' + ascii('SCRAM-SHA-256\0') + '00',
    );
    expect(hex(serialize.saslInitialResponse('SCRAM-SHA-256', null))).toBe(
      '7000000016' + ascii('SCRAM-SHA-256\0') + 'ffffffff',
    );
  });

  it('writes an error with both severities and the SQLSTATE', () => {
    const bytes = serialize.errorResponse({ severity: 'FATAL', code: '08P01', message: 'bad' });
    expect(hex(bytes)).toBe('450000001f' + ascii('SFATAL\0VFATAL\0C08P01\0Mbad\0') + '00');
  });

  it('writes rows and their description', () => {
    expect(hex(serialize.dataRow(['1', null]))).toBe(
      '440000000f' + '0002' + '0000000131' + 'ffffffff',
    );
    expect(hex(serialize.rowDescription([{ name: 'x', typeOid: 23, typeSize: 4 }]))).toBe(
      '540000001a' +
        '0001' +
        ascii('x\0') +
        '00000000' +
        '0000' +
        '00000017' +
        '0004' +
        'ffffffff' +
        '0000',
    );
  });

  it('answers SSLRequest with one byte', () => {
    expect(hex(serialize.sslResponse(true))).toBe('53');
    expect(hex(serialize.sslResponse(false))).toBe('4e');
  });

  it('refuses strings that a C string cannot carry', () => {
    expect(() => serialize.query('select 1\0drop table x')).toThrow(RangeError);
  });
});
