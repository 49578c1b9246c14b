// Byte codes of the Postgres wire protocol 3.0, named after the messages in the Postgres docs.

// Frontend (client → server) message types.
export const Bind = 0x42; // B
export const Close = 0x43; // C
export const Describe = 0x44; // D
export const Execute = 0x45; // E
export const FunctionCall = 0x46; // F
export const Flush = 0x48; // H
export const Parse = 0x50; // P
export const Query = 0x51; // Q
export const Sync = 0x53; // S
export const Terminate = 0x58; // X
export const CopyFail = 0x66; // f
// One code for every auth reply; which one it is depends on what the server asked for.
export const PasswordMessage = 0x70; // p
export const GSSResponse = PasswordMessage; // p
export const SASLInitialResponse = PasswordMessage; // p
export const SASLResponse = PasswordMessage; // p

// Sent in both directions.
export const CopyDone = 0x63; // c
export const CopyData = 0x64; // d

// Backend (server → client) message types.
export const ParseComplete = 0x31; // 1
export const BindComplete = 0x32; // 2
export const CloseComplete = 0x33; // 3
export const NotificationResponse = 0x41; // A
export const CommandComplete = 0x43; // C
export const DataRow = 0x44; // D
export const ErrorResponse = 0x45; // E
export const CopyInResponse = 0x47; // G
export const CopyOutResponse = 0x48; // H
export const EmptyQueryResponse = 0x49; // I
export const BackendKeyData = 0x4b; // K
export const NoticeResponse = 0x4e; // N
export const Authentication = 0x52; // R
export const ParameterStatus = 0x53; // S
export const RowDescription = 0x54; // T
export const FunctionCallResponse = 0x56; // V
export const CopyBothResponse = 0x57; // W
export const ReadyForQuery = 0x5a; // Z
export const NoData = 0x6e; // n
export const PortalSuspended = 0x73; // s
export const ParameterDescription = 0x74; // t
export const NegotiateProtocolVersion = 0x76; // v

// Startup-phase request codes: the int32 after the length of an untyped first message.
export const ProtocolVersion3 = 196608; // 3.0, (3 << 16) | 0
export const CancelRequest = 80877102; // 1234.5678
export const SSLRequest = 80877103; // 1234.5679
export const GSSENCRequest = 80877104; // 1234.5680

// Single-byte answers to SSLRequest and GSSENCRequest; they carry no length.
export const SSLAccepted = 0x53; // S
export const SSLRefused = 0x4e; // N

// Authentication subtypes: the int32 that follows an 'R' header.
export const AuthenticationOk = 0;
export const AuthenticationKerberosV5 = 2;
export const AuthenticationCleartextPassword = 3;
export const AuthenticationMD5Password = 5;
export const AuthenticationGSS = 7;
export const AuthenticationGSSContinue = 8;
export const AuthenticationSSPI = 9;
export const AuthenticationSASL = 10;
export const AuthenticationSASLContinue = 11;
export const AuthenticationSASLFinal = 12;

// ReadyForQuery transaction status bytes.
export const TransactionIdle = 0x49; // I
export const TransactionInBlock = 0x54; // T
export const TransactionFailed = 0x45; // E

// Targets of Describe and Close.
export const TargetStatement = 0x53; // S
export const TargetPortal = 0x50; // P
