// Broken frames are refused with a ProtocolError (SQLSTATE 08P01), never read past their end.
import { describe, expect, it } from 'vitest';
import { BackendParser, FrontendParser, ProtocolError, codes } from '../src/pg/protocol/index.ts';
import type { ParserOptions } from '../src/pg/protocol/index.ts';
import { cstr, int16, int32, rawFrame, typedFrontendParser } from './protocol-fixtures.ts';

function backendError(bytes: Buffer, options?: ParserOptions): ProtocolError {
  return caught(() => new BackendParser(options).parse(bytes, () => {}));
}

function frontendError(bytes: Buffer): ProtocolError {
  return caught(() => typedFrontendParser().parse(bytes, () => {}));
}

function startupError(bytes: Buffer): ProtocolError {
  return caught(() => new FrontendParser().parse(bytes, () => {}));
}

function caught(run: () => void): ProtocolError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe('08P01');
    return error as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

const header = (code: number, length: number) =>
  Buffer.concat([Buffer.from([code]), int32(length)]);

describe('frame lengths', () => {
  it('refuses a length shorter than the length field itself', () => {
    expect(backendError(header(codes.ReadyForQuery, 3)).message).toMatch(/length 3/);
    expect(backendError(header(codes.ReadyForQuery, -1)).message).toMatch(/length -1/);
    expect(frontendError(header(codes.Query, 0)).message).toMatch(/length 0/);
  });

  it('refuses an oversized frame from its header, before waiting for the body', () => {
    const error = backendError(header(codes.DataRow, 1025), { maxMessageBytes: 1024 });
    expect(error.message).toMatch(/length 1025/);
    expect(() =>
      new BackendParser({ maxMessageBytes: 1024 }).parse(header(codes.DataRow, 1024), () => {}),
    ).not.toThrow();
  });

  it('refuses startup packets that are too short or too long', () => {
    expect(startupError(int32(7)).message).toMatch(/startup packet length 7/);
    expect(startupError(int32(10001)).message).toMatch(/startup packet length 10001/);
  });

  it('keeps failing once the stream is out of sync', () => {
    const parser = new BackendParser();
    const first = caught(() => parser.parse(header(codes.ReadyForQuery, 2), () => {}));
    expect(caught(() => parser.parse(Buffer.from('Z\0\0\0\x05I'), () => {}))).toBe(first);
  });
});

describe('truncated or malformed bodies', () => {
  it('refuses fixed fields that run past the frame', () => {
    backendError(rawFrame(codes.ReadyForQuery));
    backendError(rawFrame(codes.BackendKeyData, int32(1)));
    backendError(rawFrame(codes.Authentication, int32(codes.AuthenticationMD5Password), [1, 2]));
    backendError(rawFrame(codes.Authentication, [0, 0]));
    frontendError(rawFrame(codes.Execute, cstr(''), [0, 0]));
  });

  it('refuses strings without a NUL terminator', () => {
    backendError(rawFrame(codes.CommandComplete, 'SELECT 1'));
    backendError(rawFrame(codes.ParameterStatus, cstr('TimeZone'), 'UTC'));
    backendError(rawFrame(codes.ErrorResponse, 'SERROR\0MNo terminator\0'));
    backendError(
      rawFrame(codes.Authentication, int32(codes.AuthenticationSASL), cstr('SCRAM-SHA-256')),
    );
    frontendError(rawFrame(codes.Query, 'select 1'));
    frontendError(rawFrame(codes.Parse, cstr(''), 'select 1'));
  });

  it('refuses counts that promise more than the frame holds', () => {
    backendError(rawFrame(codes.DataRow, int16(3), int32(1), '1', int32(1), '2'));
    backendError(rawFrame(codes.DataRow, int16(1), int32(100), 'short'));
    backendError(rawFrame(codes.DataRow, int16(-1)));
    backendError(rawFrame(codes.RowDescription, int16(1), cstr('id'), int32(0)));
    backendError(rawFrame(codes.ParameterDescription, int16(5), int32(23)));
    backendError(rawFrame(codes.NegotiateProtocolVersion, int32(0), int32(1000000)));
    frontendError(rawFrame(codes.Parse, cstr(''), cstr('select $1'), int16(5), int32(23)));
  });

  it('refuses Bind values with an impossible length or format count', () => {
    const bind = (...parts: Buffer[]) => rawFrame(codes.Bind, cstr(''), cstr(''), ...parts);
    frontendError(bind(int16(0), int16(1), int32(-2), int16(0)));
    frontendError(
      bind(int16(2), int16(0), int16(0), int16(3), int32(-1), int32(-1), int32(-1), int16(0)),
    );
    frontendError(bind(int16(0), int16(1), int32(1)));
  });

  it('refuses trailing bytes after a complete body', () => {
    backendError(rawFrame(codes.ReadyForQuery, 'II'));
    backendError(rawFrame(codes.ParseComplete, [0]));
    backendError(rawFrame(codes.DataRow, int16(0), [0]));
    frontendError(rawFrame(codes.Sync, [0]));
    frontendError(rawFrame(codes.Query, cstr('select 1'), 'x'));
  });

  it('refuses values outside their domain', () => {
    expect(backendError(rawFrame(codes.ReadyForQuery, 'X')).message).toMatch(/transaction status/);
    expect(frontendError(rawFrame(codes.Describe, 'X', cstr(''))).message).toMatch(/S or P/);
  });

  it('refuses malformed startup packets', () => {
    const startup = (...parts: Buffer[]) => {
      const body = Buffer.concat([int32(codes.ProtocolVersion3), ...parts]);
      return Buffer.concat([int32(4 + body.length), body]);
    };
    expect(startupError(startup(cstr('user'))).message).toMatch(/terminator/);
    expect(startupError(startup(cstr('user'), cstr('alice'))).message).toMatch(/terminator/);
    startupError(startup(cstr('user'), cstr('alice'), Buffer.from([0, 0])));
    startupError(Buffer.concat([int32(12), int32(codes.CancelRequest), int32(1)]));
    startupError(Buffer.concat([int32(12), int32(codes.SSLRequest), int32(0)]));
  });
});
