// Byte codes of the MySQL/MariaDB client/server protocol, named as the MySQL and MariaDB docs name them.

// Every packet starts with a 3-byte little-endian payload length and a 1-byte sequence id.
export const PACKET_HEADER_BYTES = 4;
// A payload of this length says the logical packet continues in the next piece.
export const MAX_PACKET_PIECE_BYTES = 0xffffff;

// Command bytes: the first byte of the client's packet that starts each exchange.
export const COM_SLEEP = 0x00;
export const COM_QUIT = 0x01;
export const COM_INIT_DB = 0x02;
export const COM_QUERY = 0x03;
export const COM_FIELD_LIST = 0x04;
export const COM_CREATE_DB = 0x05;
export const COM_DROP_DB = 0x06;
export const COM_REFRESH = 0x07;
export const COM_SHUTDOWN = 0x08;
export const COM_STATISTICS = 0x09;
export const COM_PROCESS_INFO = 0x0a;
export const COM_CONNECT = 0x0b;
export const COM_PROCESS_KILL = 0x0c;
export const COM_DEBUG = 0x0d;
export const COM_PING = 0x0e;
export const COM_TIME = 0x0f;
export const COM_DELAYED_INSERT = 0x10;
export const COM_CHANGE_USER = 0x11;
export const COM_BINLOG_DUMP = 0x12;
export const COM_TABLE_DUMP = 0x13;
export const COM_CONNECT_OUT = 0x14;
export const COM_REGISTER_SLAVE = 0x15;
export const COM_STMT_PREPARE = 0x16;
export const COM_STMT_EXECUTE = 0x17;
export const COM_STMT_SEND_LONG_DATA = 0x18;
export const COM_STMT_CLOSE = 0x19;
export const COM_STMT_RESET = 0x1a;
export const COM_SET_OPTION = 0x1b;
export const COM_STMT_FETCH = 0x1c;
export const COM_DAEMON = 0x1d;
export const COM_BINLOG_DUMP_GTID = 0x1e;
export const COM_RESET_CONNECTION = 0x1f;
// MariaDB only.
export const COM_STMT_BULK_EXECUTE = 0xfa;

// COM_SET_OPTION's argument.
export const MYSQL_OPTION_MULTI_STATEMENTS_ON = 0;
export const MYSQL_OPTION_MULTI_STATEMENTS_OFF = 1;

// First byte of a server response packet. 0xfe and 0x00 also start other things (a row whose first
// column is 8 bytes long, an AuthSwitchRequest): which one it is depends on the exchange and length.
export const OK_HEADER = 0x00;
export const AUTH_MORE_DATA_HEADER = 0x01;
export const LOCAL_INFILE_HEADER = 0xfb;
export const EOF_HEADER = 0xfe;
export const AUTH_SWITCH_REQUEST_HEADER = 0xfe;
export const ERR_HEADER = 0xff;
// An EOF packet is shorter than this; a longer 0xfe packet is a row or an OK that replaces EOF.
export const EOF_MAX_PAYLOAD_BYTES = 9;
// The ERR packet's error code that MariaDB uses for progress reports (MARIADB_CLIENT_PROGRESS).
export const PROGRESS_REPORT_ERROR_CODE = 0xffff;
// The marker before the 5-character SQLSTATE of an ERR packet.
export const SQL_STATE_MARKER = 0x23; // #

// Length-encoded integer prefixes. 0xfb is NULL in a text row; 0xff never starts one.
export const LENENC_NULL = 0xfb;
export const LENENC_2_BYTES = 0xfc;
export const LENENC_3_BYTES = 0xfd;
export const LENENC_8_BYTES = 0xfe;

// The handshake v10 protocol version byte.
export const PROTOCOL_VERSION_10 = 10;
// Bytes of the scramble a server sends (8 in part 1, 12 in part 2 plus a NUL terminator).
export const SCRAMBLE_PART_1_BYTES = 8;
export const SCRAMBLE_BYTES = 20;
// HandshakeResponse41's fixed prefix (capabilities, max packet, charset, filler); an SSLRequest is exactly it.
export const HANDSHAKE_RESPONSE_FIXED_BYTES = 32;

// Capability flags (the lower 32 bits). JavaScript's `1 << 31` is negative, so the top bits are
// written as powers of two and flag sets are kept unsigned with `>>> 0`.
export const CLIENT_LONG_PASSWORD = 1 << 0;
// MariaDB's name for bit 0: a server or client without it speaks MariaDB's extended capabilities.
export const CLIENT_MYSQL = CLIENT_LONG_PASSWORD;
export const CLIENT_FOUND_ROWS = 1 << 1;
export const CLIENT_LONG_FLAG = 1 << 2;
export const CLIENT_CONNECT_WITH_DB = 1 << 3;
export const CLIENT_NO_SCHEMA = 1 << 4;
export const CLIENT_COMPRESS = 1 << 5;
export const CLIENT_ODBC = 1 << 6;
export const CLIENT_LOCAL_FILES = 1 << 7;
export const CLIENT_IGNORE_SPACE = 1 << 8;
export const CLIENT_PROTOCOL_41 = 1 << 9;
export const CLIENT_INTERACTIVE = 1 << 10;
export const CLIENT_SSL = 1 << 11;
export const CLIENT_IGNORE_SIGPIPE = 1 << 12;
export const CLIENT_TRANSACTIONS = 1 << 13;
export const CLIENT_RESERVED = 1 << 14;
export const CLIENT_SECURE_CONNECTION = 1 << 15;
export const CLIENT_MULTI_STATEMENTS = 1 << 16;
export const CLIENT_MULTI_RESULTS = 1 << 17;
export const CLIENT_PS_MULTI_RESULTS = 1 << 18;
export const CLIENT_PLUGIN_AUTH = 1 << 19;
export const CLIENT_CONNECT_ATTRS = 1 << 20;
export const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21;
export const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22;
export const CLIENT_SESSION_TRACK = 1 << 23;
export const CLIENT_DEPRECATE_EOF = 1 << 24;
export const CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25;
export const CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26;
export const CLIENT_QUERY_ATTRIBUTES = 1 << 27;
export const CLIENT_MULTI_FACTOR_AUTHENTICATION = 1 << 28;
export const CLIENT_CAPABILITY_EXTENSION = 1 << 29;
export const CLIENT_SSL_VERIFY_SERVER_CERT = 2 ** 30;
export const CLIENT_REMEMBER_OPTIONS = 2 ** 31;

// MariaDB's extended capabilities: bits 32–63, carried in the handshake's reserved bytes when
// CLIENT_MYSQL is off. Stored shifted down by 32, so bit 32 is `1 << 0` here.
export const MARIADB_CLIENT_PROGRESS = 1 << 0;
export const MARIADB_CLIENT_COM_MULTI = 1 << 1;
export const MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 2;
export const MARIADB_CLIENT_EXTENDED_TYPE_INFO = 1 << 3;
export const MARIADB_CLIENT_CACHE_METADATA = 1 << 4;
export const MARIADB_CLIENT_BULK_UNIT_RESULTS = 1 << 5;

// Server status flags of OK and EOF packets.
export const SERVER_STATUS_IN_TRANS = 1 << 0;
export const SERVER_STATUS_AUTOCOMMIT = 1 << 1;
export const SERVER_MORE_RESULTS_EXISTS = 1 << 3;
export const SERVER_STATUS_NO_GOOD_INDEX_USED = 1 << 4;
export const SERVER_STATUS_NO_INDEX_USED = 1 << 5;
export const SERVER_STATUS_CURSOR_EXISTS = 1 << 6;
export const SERVER_STATUS_LAST_ROW_SENT = 1 << 7;
export const SERVER_STATUS_DB_DROPPED = 1 << 8;
export const SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9;
export const SERVER_STATUS_METADATA_CHANGED = 1 << 10;
export const SERVER_QUERY_WAS_SLOW = 1 << 11;
export const SERVER_PS_OUT_PARAMS = 1 << 12;
export const SERVER_STATUS_IN_TRANS_READONLY = 1 << 13;
export const SERVER_SESSION_STATE_CHANGED = 1 << 14;
// MariaDB only.
export const SERVER_STATUS_ANSI_QUOTES = 1 << 15;

// Session state change types in an OK packet (CLIENT_SESSION_TRACK).
export const SESSION_TRACK_SYSTEM_VARIABLES = 0x00;
export const SESSION_TRACK_SCHEMA = 0x01;
export const SESSION_TRACK_STATE_CHANGE = 0x02;
export const SESSION_TRACK_GTIDS = 0x03;
export const SESSION_TRACK_TRANSACTION_CHARACTERISTICS = 0x04;
export const SESSION_TRACK_TRANSACTION_STATE = 0x05;

// Column (and binary parameter) types.
export const MYSQL_TYPE_DECIMAL = 0x00;
export const MYSQL_TYPE_TINY = 0x01;
export const MYSQL_TYPE_SHORT = 0x02;
export const MYSQL_TYPE_LONG = 0x03;
export const MYSQL_TYPE_FLOAT = 0x04;
export const MYSQL_TYPE_DOUBLE = 0x05;
export const MYSQL_TYPE_NULL = 0x06;
export const MYSQL_TYPE_TIMESTAMP = 0x07;
export const MYSQL_TYPE_LONGLONG = 0x08;
export const MYSQL_TYPE_INT24 = 0x09;
export const MYSQL_TYPE_DATE = 0x0a;
export const MYSQL_TYPE_TIME = 0x0b;
export const MYSQL_TYPE_DATETIME = 0x0c;
export const MYSQL_TYPE_YEAR = 0x0d;
export const MYSQL_TYPE_NEWDATE = 0x0e;
export const MYSQL_TYPE_VARCHAR = 0x0f;
export const MYSQL_TYPE_BIT = 0x10;
export const MYSQL_TYPE_TIMESTAMP2 = 0x11;
export const MYSQL_TYPE_DATETIME2 = 0x12;
export const MYSQL_TYPE_TIME2 = 0x13;
export const MYSQL_TYPE_VECTOR = 0xf2;
export const MYSQL_TYPE_JSON = 0xf5;
export const MYSQL_TYPE_NEWDECIMAL = 0xf6;
export const MYSQL_TYPE_ENUM = 0xf7;
export const MYSQL_TYPE_SET = 0xf8;
export const MYSQL_TYPE_TINY_BLOB = 0xf9;
export const MYSQL_TYPE_MEDIUM_BLOB = 0xfa;
export const MYSQL_TYPE_LONG_BLOB = 0xfb;
export const MYSQL_TYPE_BLOB = 0xfc;
export const MYSQL_TYPE_VAR_STRING = 0xfd;
export const MYSQL_TYPE_STRING = 0xfe;
export const MYSQL_TYPE_GEOMETRY = 0xff;
// The high bit of a binary parameter's 2-byte type says the integer is unsigned.
export const PARAMETER_UNSIGNED_FLAG = 0x80;

// Character set ids (collation ids) used in handshakes.
export const UTF8MB4_GENERAL_CI = 45;
export const BINARY_CHARSET = 63;

// Auth plugin names.
export const MYSQL_NATIVE_PASSWORD = 'mysql_native_password';
export const CACHING_SHA2_PASSWORD = 'caching_sha2_password';
export const MYSQL_CLEAR_PASSWORD = 'mysql_clear_password';
export const CLIENT_ED25519 = 'client_ed25519';

// Server error codes the edge itself may send, with their SQLSTATE.
/** Incorrect arguments to mysqld_stmt_execute (an EXECUTE without the types it needs). */
export const ER_WRONG_ARGUMENTS = 1210;
export const ER_HANDSHAKE_ERROR = 1043; // 08S01 Bad handshake
export const ER_ACCESS_DENIED_ERROR = 1045; // 28000
export const ER_UNKNOWN_COM_ERROR = 1047; // 08S01
export const ER_BAD_DB_ERROR = 1049; // 42000
export const ER_NET_PACKET_TOO_LARGE = 1153; // 08S01
export const ER_NET_READ_ERROR = 1158; // 08S01
export const ER_NET_PACKETS_OUT_OF_ORDER = 1156; // 08S01
export const ER_NOT_SUPPORTED_AUTH_MODE = 1251; // 08004
export const ER_MALFORMED_PACKET = 1835; // HY000
export const SQLSTATE_COMMUNICATION_ERROR = '08S01';
export const SQLSTATE_GENERAL_ERROR = 'HY000';
