// Turns one complete server→client frame into a typed message; framing is the parser's job.
import { BodyReader, malformed } from './body-reader.ts';
import * as codes from './codes.ts';
import type {
  BackendMessage,
  DataRowMessage,
  FieldDescription,
  NoticeFields,
  TransactionStatus,
} from './messages.ts';

const body = new BodyReader();

export function decodeBackendFrame(code: number, frame: Buffer): BackendMessage {
  body.reset(frame, 5);
  switch (code) {
    case codes.DataRow:
      return { kind: 'dataRow', frame, columnCount: checkDataRow() };
    case codes.CommandComplete: {
      const tag = body.cstring();
      body.end();
      return { kind: 'commandComplete', frame, tag };
    }
    case codes.ReadyForQuery: {
      const status = transactionStatus(body.uint8());
      body.end();
      return { kind: 'readyForQuery', frame, status };
    }
    case codes.RowDescription:
      return { kind: 'rowDescription', frame, fields: readFields() };
    case codes.ParseComplete:
      return empty('parseComplete', frame);
    case codes.BindComplete:
      return empty('bindComplete', frame);
    case codes.CloseComplete:
      return empty('closeComplete', frame);
    case codes.NoData:
      return empty('noData', frame);
    case codes.PortalSuspended:
      return empty('portalSuspended', frame);
    case codes.EmptyQueryResponse:
      return empty('emptyQueryResponse', frame);
    case codes.CopyDone:
      return empty('copyDone', frame);
    case codes.CopyData:
      return { kind: 'copyData', frame, data: body.rest() };
    case codes.ErrorResponse:
      return { kind: 'errorResponse', frame, fields: readNoticeFields() };
    case codes.NoticeResponse:
      return { kind: 'noticeResponse', frame, fields: readNoticeFields() };
    case codes.Authentication:
      return decodeAuthentication(frame);
    case codes.ParameterStatus: {
      const name = body.cstring();
      const value = body.cstring();
      body.end();
      return { kind: 'parameterStatus', frame, name, value };
    }
    case codes.BackendKeyData: {
      const processId = body.int32();
      const secretKey = body.int32();
      body.end();
      return { kind: 'backendKeyData', frame, processId, secretKey };
    }
    case codes.ParameterDescription: {
      const typeOids = new Array<number>(body.count16(4));
      for (let i = 0; i < typeOids.length; i++) typeOids[i] = body.uint32();
      body.end();
      return { kind: 'parameterDescription', frame, typeOids };
    }
    case codes.NotificationResponse: {
      const processId = body.int32();
      const channel = body.cstring();
      const payload = body.cstring();
      body.end();
      return { kind: 'notificationResponse', frame, processId, channel, payload };
    }
    case codes.CopyInResponse:
      return { kind: 'copyInResponse', frame, ...readCopyResponse() };
    case codes.CopyOutResponse:
      return { kind: 'copyOutResponse', frame, ...readCopyResponse() };
    case codes.CopyBothResponse:
      return { kind: 'copyBothResponse', frame, ...readCopyResponse() };
    case codes.FunctionCallResponse: {
      const value = body.nullableBytes();
      body.end();
      return { kind: 'functionCallResponse', frame, value };
    }
    case codes.NegotiateProtocolVersion: {
      const newestMinorVersion = body.int32();
      const unrecognizedOptions = new Array<string>(body.count32(1));
      for (let i = 0; i < unrecognizedOptions.length; i++) {
        unrecognizedOptions[i] = body.cstring();
      }
      body.end();
      return { kind: 'negotiateProtocolVersion', frame, newestMinorVersion, unrecognizedOptions };
    }
    default:
      return { kind: 'unknown', code, frame };
  }
}

function empty<K extends BackendMessage['kind']>(kind: K, frame: Buffer) {
  body.end();
  return { kind, frame } as Extract<BackendMessage, { kind: K }>;
}

function decodeAuthentication(frame: Buffer): BackendMessage {
  const subtype = body.int32();
  switch (subtype) {
    case codes.AuthenticationOk:
      body.end();
      return { kind: 'authenticationOk', frame };
    case codes.AuthenticationCleartextPassword:
      body.end();
      return { kind: 'authenticationCleartextPassword', frame };
    case codes.AuthenticationMD5Password: {
      const salt = body.bytes(4);
      body.end();
      return { kind: 'authenticationMD5Password', frame, salt };
    }
    case codes.AuthenticationSASL: {
      const mechanisms: string[] = [];
      for (let name = body.cstring(); name !== ''; name = body.cstring()) mechanisms.push(name);
      body.end();
      return { kind: 'authenticationSASL', frame, mechanisms };
    }
    case codes.AuthenticationSASLContinue:
      return { kind: 'authenticationSASLContinue', frame, data: body.rest() };
    case codes.AuthenticationSASLFinal:
      return { kind: 'authenticationSASLFinal', frame, data: body.rest() };
    default:
      return { kind: 'authenticationOther', frame, subtype, data: body.rest() };
  }
}

// Walks the column lengths without slicing so a malformed row is caught here, while the
// values themselves are only cut out if someone asks (dataRowValues).
function checkDataRow(): number {
  const columnCount = body.count16(4);
  for (let i = 0; i < columnCount; i++) body.nullableBytes();
  body.end();
  return columnCount;
}

export function dataRowValues(message: DataRowMessage): (Buffer | null)[] {
  body.reset(message.frame, 5);
  const values = new Array<Buffer | null>(body.count16(4));
  for (let i = 0; i < values.length; i++) values[i] = body.nullableBytes();
  body.end();
  return values;
}

// Text-format values as strings; binary columns come out as their raw bytes read as UTF-8.
export function dataRowText(message: DataRowMessage): (string | null)[] {
  return dataRowValues(message).map((value) => (value === null ? null : value.toString('utf8')));
}

function readFields(): FieldDescription[] {
  const fields = new Array<FieldDescription>(body.count16(19));
  for (let i = 0; i < fields.length; i++) {
    fields[i] = {
      name: body.cstring(),
      tableOid: body.uint32(),
      columnId: body.int16(),
      typeOid: body.uint32(),
      typeSize: body.int16(),
      typeModifier: body.int32(),
      format: body.int16(),
    };
  }
  body.end();
  return fields;
}

function readNoticeFields(): NoticeFields {
  const fields: NoticeFields = {};
  for (let type = body.uint8(); type !== 0; type = body.uint8()) {
    fields[String.fromCharCode(type)] = body.cstring();
  }
  body.end();
  return fields;
}

function readCopyResponse(): { format: number; columnFormats: number[] } {
  const format = body.uint8();
  const columnFormats = new Array<number>(body.count16(2));
  for (let i = 0; i < columnFormats.length; i++) columnFormats[i] = body.int16();
  body.end();
  return { format, columnFormats };
}

function transactionStatus(byte: number): TransactionStatus {
  if (byte === codes.TransactionIdle) return 'I';
  if (byte === codes.TransactionInBlock) return 'T';
  if (byte === codes.TransactionFailed) return 'E';
  throw malformed('unknown transaction status');
}
