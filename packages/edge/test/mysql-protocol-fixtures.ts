// Byte fixtures for the MySQL protocol tests: payloads captured from MariaDB 10.11 and mysql2 3.26
// on this machine, and hand-built packets of every kind the decoders read.
import { codes, serialize } from '../src/mysql/protocol/index.ts';

export const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

// MariaDB 10.11.19's greeting: MariaDB capabilities (CLIENT_MYSQL off), scramble, native password.
export const mariadbHandshake = hex(`
  0a 352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531 00
  09000000 5d352e256d77312b 00 fef7 2d 0200 ff81 15 000000000000 1d000000
  22665e27446037323246497c00 6d7973716c5f6e61746976655f70617373776f726400`);
export const mariadbScramble = hex('5d352e256d77312b22665e27446037323246497c');

// mysql2 3.26.1 logging in as root to `test`, with its connect attributes.
export const mysql2Login = hex(`
  cef3ba00 00000000 e0 00000000000000000000000000000000000000 08000000
  726f6f7400 00 7465737400 6d7973716c5f6e61746976655f70617373776f726400
  31 0c 5f636c69656e745f6e616d65 0c 4e6f64652d4d7953514c2d32
     0f 5f636c69656e745f76657273696f6e 06 332e32362e31`);

// The OK that ended that login: autocommit, session state changed, schema now `test`.
export const loginOk = hex('00 00 00 0240 0000 00 07 01 05 04 74657374');

// A MySQL 8 greeting (CLIENT_MYSQL on, caching_sha2_password, 10 reserved bytes).
export const mysql8Handshake = Buffer.concat([
  hex('0a'),
  Buffer.from('8.0.36\0'),
  hex('0b000000 0102030405060708 00 ffff ff 0200 ffdf 15 00000000000000000000'),
  hex('090a0b0c0d0e0f1011121314 00'),
  Buffer.from('caching_sha2_password\0'),
]);

export const errAccessDenied = serialize.errPacket({
  code: codes.ER_ACCESS_DENIED_ERROR,
  sqlState: '28000',
  message: "Access denied for user 'app'@'localhost' (using password: YES)",
});

// COM_QUERY with two query attributes (CLIENT_QUERY_ATTRIBUTES): a string and a NULL long.
export const queryWithAttributes = Buffer.concat([
  hex('03 02 01'),
  hex('02'), // NULL bitmap: the second attribute is NULL
  hex('01'), // new_params_bind_flag
  hex('fe00'),
  serialize.lenencString('trace_id'),
  hex('0380'), // LONG, unsigned
  serialize.lenencString('n'),
  serialize.lenencString('abc-123'),
  Buffer.from('SELECT 1'),
]);

// COM_CHANGE_USER as MariaDB Connector/C sends it (secure connection, charset, plugin, attributes).
export const changeUser = Buffer.concat([
  hex('11'),
  Buffer.from('cacheid-app\0'),
  hex('14'),
  hex('0102030405060708090a0b0c0d0e0f1011121314'),
  Buffer.from('shop\0'),
  hex('2d00'),
  Buffer.from('mysql_native_password\0'),
  serialize.lenencString(
    Buffer.concat([serialize.lenencString('_client_name'), serialize.lenencString('libmariadb')]),
  ),
]);

export const AGREED =
  codes.CLIENT_PROTOCOL_41 |
  codes.CLIENT_SECURE_CONNECTION |
  codes.CLIENT_PLUGIN_AUTH |
  codes.CLIENT_TRANSACTIONS |
  codes.CLIENT_SESSION_TRACK |
  codes.CLIENT_CONNECT_ATTRS |
  codes.CLIENT_DEPRECATE_EOF;

// One payload of each kind the client sends after login, for the framing and fuzz tests.
export const clientPayloads: Buffer[] = [
  serialize.command(codes.COM_QUERY, 'SELECT id, name FROM items WHERE id = 1'),
  serialize.command(codes.COM_INIT_DB, 'shop'),
  serialize.command(codes.COM_PING),
  serialize.command(codes.COM_STMT_PREPARE, 'SELECT * FROM items WHERE id = ?'),
  hex('17 07000000 00 01000000 00 01 0300 2a000000'),
  hex('18 07000000 0000 68656c6c6f'),
  hex('19 07000000'),
  hex('1a 07000000'),
  hex('1c 07000000 0a000000'),
  hex('1b 0000'),
  hex('0c 2a000000'),
  Buffer.concat([hex('04'), Buffer.from('items\0%')]),
  changeUser,
  serialize.command(codes.COM_QUIT),
];

// One payload of each kind the server sends, for the framing and fuzz tests.
export const serverPayloads: Buffer[] = [
  mariadbHandshake,
  mysql8Handshake,
  loginOk,
  errAccessDenied,
  serialize.eofPacket({ statusFlags: codes.SERVER_STATUS_AUTOCOMMIT }),
  serialize.authSwitchRequest('client_ed25519', hex('00'.repeat(32))),
  serialize.authMoreData(hex('03')),
  hex('01'),
  hex('03646566000000017800000c3f0001000000038100000000'),
  hex('0131'),
  hex('ff ffff 01 03 a08601 0a 636f7079696e67207478'),
];
