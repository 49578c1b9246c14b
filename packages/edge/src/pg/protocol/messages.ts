// Typed messages the parser emits; every one keeps its raw frame so a proxy can forward it as is.

// `frame` is the whole message on the wire (type byte, length, body). It is a view into
// the chunk that carried it or into a buffer the parser never writes to again, so it stays
// valid after later chunks; the caller must not mutate it.
type Message<K extends string, Fields = unknown> = { kind: K; frame: Buffer } & Fields;

export type TransactionStatus = 'I' | 'T' | 'E';
export type DescribeTarget = 'S' | 'P';

// Startup phase (frontend, untyped).
export type StartupMessage = Message<
  'startupMessage',
  { protocolVersion: number; parameters: Map<string, string> }
>;
export type SSLRequestMessage = Message<'sslRequest'>;
export type GSSENCRequestMessage = Message<'gssEncRequest'>;
export type CancelRequestMessage = Message<
  'cancelRequest',
  { processId: number; secretKey: number }
>;

// Frontend, typed.
export type QueryMessage = Message<'query', { sql: string }>;
export type ParseMessage = Message<'parse', { name: string; sql: string; paramTypes: number[] }>;
export type BindMessage = Message<
  'bind',
  {
    portal: string;
    statement: string;
    paramFormats: number[];
    params: (Buffer | null)[];
    resultFormats: number[];
  }
>;
export type DescribeMessage = Message<'describe', { target: DescribeTarget; name: string }>;
export type ExecuteMessage = Message<'execute', { portal: string; maxRows: number }>;
export type CloseMessage = Message<'close', { target: DescribeTarget; name: string }>;
export type SyncMessage = Message<'sync'>;
export type FlushMessage = Message<'flush'>;
export type TerminateMessage = Message<'terminate'>;
// PasswordMessage, GSSResponse, SASLInitialResponse and SASLResponse share the code 'p';
// only the session knows which one it asked for, so the body stays raw (see decode helpers).
export type AuthenticationResponseMessage = Message<'authenticationResponse', { body: Buffer }>;
export type CopyDataMessage = Message<'copyData', { data: Buffer }>;
export type CopyDoneMessage = Message<'copyDone'>;
export type CopyFailMessage = Message<'copyFail', { message: string }>;
export type FunctionCallMessage = Message<
  'functionCall',
  { functionOid: number; argFormats: number[]; args: (Buffer | null)[]; resultFormat: number }
>;
export type UnknownMessage = Message<'unknown', { code: number }>;

export type FrontendMessage =
  | StartupMessage
  | SSLRequestMessage
  | GSSENCRequestMessage
  | CancelRequestMessage
  | QueryMessage
  | ParseMessage
  | BindMessage
  | DescribeMessage
  | ExecuteMessage
  | CloseMessage
  | SyncMessage
  | FlushMessage
  | TerminateMessage
  | AuthenticationResponseMessage
  | CopyDataMessage
  | CopyDoneMessage
  | CopyFailMessage
  | FunctionCallMessage
  | UnknownMessage;

// Backend.
export type AuthenticationOkMessage = Message<'authenticationOk'>;
export type AuthenticationCleartextPasswordMessage = Message<'authenticationCleartextPassword'>;
export type AuthenticationMD5PasswordMessage = Message<
  'authenticationMD5Password',
  { salt: Buffer }
>;
export type AuthenticationSASLMessage = Message<'authenticationSASL', { mechanisms: string[] }>;
export type AuthenticationSASLContinueMessage = Message<
  'authenticationSASLContinue',
  { data: Buffer }
>;
export type AuthenticationSASLFinalMessage = Message<'authenticationSASLFinal', { data: Buffer }>;
// Kerberos, GSS and SSPI: the edge relays none of them, but they are valid protocol.
export type AuthenticationOtherMessage = Message<
  'authenticationOther',
  { subtype: number; data: Buffer }
>;
export type ParameterStatusMessage = Message<'parameterStatus', { name: string; value: string }>;
export type BackendKeyDataMessage = Message<
  'backendKeyData',
  { processId: number; secretKey: number }
>;
export type ReadyForQueryMessage = Message<'readyForQuery', { status: TransactionStatus }>;
export interface FieldDescription {
  name: string;
  tableOid: number;
  columnId: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: number;
}
export type RowDescriptionMessage = Message<'rowDescription', { fields: FieldDescription[] }>;
// Columns are checked but not sliced: most rows are forwarded or cached as raw frames.
// `dataRowValues` decodes them when needed.
export type DataRowMessage = Message<'dataRow', { columnCount: number }>;
export type CommandCompleteMessage = Message<'commandComplete', { tag: string }>;
export type EmptyQueryResponseMessage = Message<'emptyQueryResponse'>;
// Keyed by the one-letter field codes: S, V, C, M, D, H, P, p, q, W, s, t, c, d, n, F, L, R.
export type NoticeFields = Record<string, string>;
export type ErrorResponseMessage = Message<'errorResponse', { fields: NoticeFields }>;
export type NoticeResponseMessage = Message<'noticeResponse', { fields: NoticeFields }>;
export type ParseCompleteMessage = Message<'parseComplete'>;
export type BindCompleteMessage = Message<'bindComplete'>;
export type CloseCompleteMessage = Message<'closeComplete'>;
export type NoDataMessage = Message<'noData'>;
export type PortalSuspendedMessage = Message<'portalSuspended'>;
export type ParameterDescriptionMessage = Message<'parameterDescription', { typeOids: number[] }>;
export type NotificationResponseMessage = Message<
  'notificationResponse',
  { processId: number; channel: string; payload: string }
>;
type CopyResponseFields = { format: number; columnFormats: number[] };
export type CopyInResponseMessage = Message<'copyInResponse', CopyResponseFields>;
export type CopyOutResponseMessage = Message<'copyOutResponse', CopyResponseFields>;
export type CopyBothResponseMessage = Message<'copyBothResponse', CopyResponseFields>;
export type FunctionCallResponseMessage = Message<'functionCallResponse', { value: Buffer | null }>;
export type NegotiateProtocolVersionMessage = Message<
  'negotiateProtocolVersion',
  { newestMinorVersion: number; unrecognizedOptions: string[] }
>;

export type BackendMessage =
  | AuthenticationOkMessage
  | AuthenticationCleartextPasswordMessage
  | AuthenticationMD5PasswordMessage
  | AuthenticationSASLMessage
  | AuthenticationSASLContinueMessage
  | AuthenticationSASLFinalMessage
  | AuthenticationOtherMessage
  | ParameterStatusMessage
  | BackendKeyDataMessage
  | ReadyForQueryMessage
  | RowDescriptionMessage
  | DataRowMessage
  | CommandCompleteMessage
  | EmptyQueryResponseMessage
  | ErrorResponseMessage
  | NoticeResponseMessage
  | ParseCompleteMessage
  | BindCompleteMessage
  | CloseCompleteMessage
  | NoDataMessage
  | PortalSuspendedMessage
  | ParameterDescriptionMessage
  | NotificationResponseMessage
  | CopyInResponseMessage
  | CopyOutResponseMessage
  | CopyBothResponseMessage
  | CopyDataMessage
  | CopyDoneMessage
  | FunctionCallResponseMessage
  | NegotiateProtocolVersionMessage
  | UnknownMessage;
