// Turns one complete client→server frame into a typed message; framing is the parser's job.
import { BodyReader, malformed } from './body-reader.ts';
import * as codes from './codes.ts';
import { ProtocolError } from './protocol-error.ts';
import type {
  BindMessage,
  AuthenticationResponseMessage,
  DescribeTarget,
  FrontendMessage,
  FunctionCallMessage,
  ParseMessage,
} from './messages.ts';

const body = new BodyReader();

// Startup-phase frames have no type byte: int32 length, int32 request code, body.
export function decodeStartupFrame(frame: Buffer): FrontendMessage {
  if (frame[0] === codes.Terminate) {
    const length = frame.readInt32BE(1);
    if (length !== 4)
      throw new ProtocolError(`invalid startup packet length ${frame.readInt32BE(0)}`);
    return { kind: 'terminate', frame };
  }
  const code = frame.readInt32BE(4);
  switch (code) {
    case codes.SSLRequest:
      body.reset(frame, 8).end();
      return { kind: 'sslRequest', frame };
    case codes.GSSENCRequest:
      body.reset(frame, 8).end();
      return { kind: 'gssEncRequest', frame };
    case codes.CancelRequest: {
      body.reset(frame, 8);
      const processId = body.int32();
      const secretKey = body.int32();
      body.end();
      return { kind: 'cancelRequest', frame, processId, secretKey };
    }
  }
  // Any 3.x minor is a startup message; the server answers unknown minors with
  // NegotiateProtocolVersion rather than refusing them.
  if (code >>> 16 !== 3) return { kind: 'unknown', code, frame };
  body.reset(frame, 8);
  const parameters = new Map<string, string>();
  for (;;) {
    const name = body.cstring();
    if (name === '') break;
    parameters.set(name, body.cstring());
  }
  body.end();
  return { kind: 'startupMessage', frame, protocolVersion: code, parameters };
}

export function decodeFrontendFrame(code: number, frame: Buffer): FrontendMessage {
  body.reset(frame, 5);
  switch (code) {
    case codes.Query: {
      const sql = body.cstring();
      body.end();
      return { kind: 'query', frame, sql };
    }
    case codes.Parse:
      return decodeParse(frame);
    case codes.Bind:
      return decodeBind(frame);
    case codes.Describe:
    case codes.Close: {
      const target = describeTarget(body.uint8());
      const name = body.cstring();
      body.end();
      return { kind: code === codes.Describe ? 'describe' : 'close', frame, target, name };
    }
    case codes.Execute: {
      const portal = body.cstring();
      const maxRows = body.int32();
      body.end();
      return { kind: 'execute', frame, portal, maxRows };
    }
    case codes.Sync:
      body.end();
      return { kind: 'sync', frame };
    case codes.Flush:
      body.end();
      return { kind: 'flush', frame };
    case codes.Terminate:
      body.end();
      return { kind: 'terminate', frame };
    case codes.PasswordMessage:
      return { kind: 'authenticationResponse', frame, body: body.rest() };
    case codes.CopyData:
      return { kind: 'copyData', frame, data: body.rest() };
    case codes.CopyDone:
      body.end();
      return { kind: 'copyDone', frame };
    case codes.CopyFail: {
      const message = body.cstring();
      body.end();
      return { kind: 'copyFail', frame, message };
    }
    case codes.FunctionCall:
      return decodeFunctionCall(frame);
    default:
      return { kind: 'unknown', code, frame };
  }
}

function decodeParse(frame: Buffer): ParseMessage {
  const name = body.cstring();
  const sql = body.cstring();
  const paramTypes = new Array<number>(body.count16(4));
  for (let i = 0; i < paramTypes.length; i++) paramTypes[i] = body.uint32();
  body.end();
  return { kind: 'parse', frame, name, sql, paramTypes };
}

function decodeBind(frame: Buffer): BindMessage {
  const portal = body.cstring();
  const statement = body.cstring();
  const paramFormats = readInt16s();
  const params = new Array<Buffer | null>(body.count16(4));
  for (let i = 0; i < params.length; i++) params[i] = body.nullableBytes();
  checkFormatCount(paramFormats.length, params.length);
  const resultFormats = readInt16s();
  body.end();
  return { kind: 'bind', frame, portal, statement, paramFormats, params, resultFormats };
}

function decodeFunctionCall(frame: Buffer): FunctionCallMessage {
  const functionOid = body.uint32();
  const argFormats = readInt16s();
  const args = new Array<Buffer | null>(body.count16(4));
  for (let i = 0; i < args.length; i++) args[i] = body.nullableBytes();
  checkFormatCount(argFormats.length, args.length);
  const resultFormat = body.int16();
  body.end();
  return { kind: 'functionCall', frame, functionOid, argFormats, args, resultFormat };
}

function readInt16s(): number[] {
  const values = new Array<number>(body.count16(2));
  for (let i = 0; i < values.length; i++) values[i] = body.int16();
  return values;
}

// Zero formats means all text, one applies to every value, otherwise one per value.
function checkFormatCount(formats: number, values: number): void {
  if (formats > 1 && formats !== values) {
    throw malformed(`${formats} format codes for ${values} values`);
  }
}

function describeTarget(byte: number): DescribeTarget {
  if (byte === codes.TargetStatement) return 'S';
  if (byte === codes.TargetPortal) return 'P';
  throw malformed('target must be S or P');
}

// The body of a 'p' message read as a PasswordMessage (cleartext or MD5 hash).
export function decodePasswordMessage(message: AuthenticationResponseMessage): string {
  body.reset(message.frame, 5);
  const password = body.cstring();
  body.end();
  return password;
}

// The body of a 'p' message read as a SASLInitialResponse; data is null when the client
// sent length -1 (no initial response).
export function decodeSASLInitialResponse(message: AuthenticationResponseMessage): {
  mechanism: string;
  data: Buffer | null;
} {
  body.reset(message.frame, 5);
  const mechanism = body.cstring();
  const data = body.nullableBytes();
  body.end();
  return { mechanism, data };
}

// A SASLResponse is the raw mechanism data with no framing of its own.
export function decodeSASLResponse(message: AuthenticationResponseMessage): Buffer {
  return message.body;
}
