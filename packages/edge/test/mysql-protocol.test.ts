// The MySQL codec's decoders and serializers against byte fixtures from MariaDB, MySQL and mysql2.
import { describe, expect, it } from 'vitest';
import {
  ProtocolError,
  codes,
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeClientHandshake,
  decodeCommand,
  decodeEof,
  decodeErr,
  decodeHandshakeV10,
  decodeLocalInfileRequest,
  decodeOk,
  isEofPacket,
  serialize,
} from '../src/mysql/protocol/index.ts';
import {
  AGREED,
  changeUser,
  errAccessDenied,
  hex,
  loginOk,
  mariadbHandshake,
  mariadbScramble,
  mysql2Login,
  mysql8Handshake,
  queryWithAttributes,
} from './mysql-protocol-fixtures.ts';

describe('length-encoded integers and strings', () => {
  it.each([
    [0, '00'],
    [250, 'fa'],
    [251, 'fcfb00'],
    [0xffff, 'fcffff'],
    [0x10000, 'fd000001'],
    [0xffffff, 'fdffffff'],
    [0x1000000, 'fe0000000100000000'],
    [2n ** 64n - 1n, 'feffffffffffffffff'],
  ])('%s is %s', (value, bytes) => {
    expect(serialize.lenencInt(value).toString('hex')).toBe(bytes);
    expect(decodeOk(hex(`00 ${bytes} 00`), 0).affectedRows).toBe(BigInt(value));
  });

  it('refuses NULL and 0xff where a number must be, and negative or 65-bit values', () => {
    expect(() => decodeOk(hex('00 fb 00'), 0)).toThrow(ProtocolError);
    expect(() => decodeOk(hex('00 ff 00'), 0)).toThrow(ProtocolError);
    expect(() => serialize.lenencInt(-1)).toThrow(RangeError);
    expect(() => serialize.lenencInt(2n ** 64n)).toThrow(RangeError);
  });

  it('a string carries its byte length, not its character count', () => {
    expect(serialize.lenencString('é').toString('hex')).toBe('02c3a9');
  });
});

describe('server handshake v10', () => {
  it("decodes MariaDB 10.11's greeting with its extended capabilities and scramble", () => {
    const handshake = decodeHandshakeV10(mariadbHandshake);
    expect(handshake).toMatchObject({
      serverVersion: '5.5.5-10.11.19-MariaDB-0+deb12u1',
      connectionId: 9,
      characterSet: codes.UTF8MB4_GENERAL_CI,
      statusFlags: codes.SERVER_STATUS_AUTOCOMMIT,
      authPluginName: codes.MYSQL_NATIVE_PASSWORD,
      mariadbCapabilities:
        codes.MARIADB_CLIENT_PROGRESS |
        codes.MARIADB_CLIENT_STMT_BULK_OPERATIONS |
        codes.MARIADB_CLIENT_EXTENDED_TYPE_INFO |
        codes.MARIADB_CLIENT_CACHE_METADATA,
    });
    expect(handshake.authPluginData).toEqual(mariadbScramble);
    expect(handshake.capabilities & codes.CLIENT_MYSQL).toBe(0);
    expect(handshake.capabilities & codes.CLIENT_DEPRECATE_EOF).not.toBe(0);
    expect(handshake.capabilities & codes.CLIENT_SSL).toBe(0);
  });

  it('decodes a MySQL 8 greeting: CLIENT_MYSQL on, so the reserved bytes are not capabilities', () => {
    const handshake = decodeHandshakeV10(mysql8Handshake);
    expect(handshake).toMatchObject({
      serverVersion: '8.0.36',
      connectionId: 11,
      authPluginName: codes.CACHING_SHA2_PASSWORD,
      mariadbCapabilities: 0,
    });
    expect(handshake.capabilities >>> 0).toBe(0xdfffffff);
    expect(handshake.authPluginData).toEqual(hex('0102030405060708090a0b0c0d0e0f1011121314'));
  });

  it('re-encodes both greetings byte for byte', () => {
    expect(serialize.handshakeV10(decodeHandshakeV10(mariadbHandshake))).toEqual(mariadbHandshake);
    expect(serialize.handshakeV10(decodeHandshakeV10(mysql8Handshake))).toEqual(mysql8Handshake);
  });

  it('refuses another protocol version and a truncated greeting', () => {
    const v9 = Buffer.from(mariadbHandshake);
    v9[0] = 9;
    expect(() => decodeHandshakeV10(v9)).toThrow(/protocol version 9/);
    for (const end of [1, 5, 40, 45]) {
      expect(() => decodeHandshakeV10(mariadbHandshake.subarray(0, end))).toThrow(ProtocolError);
    }
  });
});

describe('client handshake', () => {
  it("decodes mysql2's HandshakeResponse41 with plugin name and connect attributes", () => {
    const login = decodeClientHandshake(mysql2Login);
    expect(login).toMatchObject({
      kind: 'handshakeResponse',
      maxPacketSize: 0,
      characterSet: 224,
      username: 'root',
      database: 'test',
      authPluginName: codes.MYSQL_NATIVE_PASSWORD,
      connectAttributes: [
        ['_client_name', 'Node-MySQL-2'],
        ['_client_version', '3.26.1'],
      ],
      mariadbCapabilities: codes.MARIADB_CLIENT_EXTENDED_TYPE_INFO,
      zstdCompressionLevel: null,
    });
    expect(login.kind === 'handshakeResponse' && login.authResponse.length).toBe(0);
  });

  it('round-trips a login with every optional part, lenenc auth data included', () => {
    const input = {
      capabilities:
        (AGREED |
          codes.CLIENT_MYSQL |
          codes.CLIENT_CONNECT_WITH_DB |
          codes.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA |
          codes.CLIENT_ZSTD_COMPRESSION_ALGORITHM |
          codes.CLIENT_REMEMBER_OPTIONS) >>>
        0,
      mariadbCapabilities: 0,
      maxPacketSize: 16 * 1024 * 1024,
      characterSet: codes.UTF8MB4_GENERAL_CI,
      username: 'c0ffee-app',
      authResponse: Buffer.alloc(300, 7),
      database: 'shop',
      authPluginName: codes.CACHING_SHA2_PASSWORD,
      connectAttributes: [['program_name', 'mysql']] as [string, string][],
      zstdCompressionLevel: 3,
    };
    const bytes = serialize.handshakeResponse41(input);
    expect(decodeClientHandshake(bytes)).toEqual({ kind: 'handshakeResponse', ...input });
  });

  it('an SSLRequest is the 32-byte prefix alone, with CLIENT_SSL', () => {
    const request = serialize.sslRequest({
      capabilities: AGREED | codes.CLIENT_SSL,
      mariadbCapabilities: codes.MARIADB_CLIENT_PROGRESS,
      maxPacketSize: 1 << 24,
      characterSet: 45,
    });
    expect(request).toHaveLength(32);
    expect(decodeClientHandshake(request)).toEqual({
      kind: 'sslRequest',
      capabilities: AGREED | codes.CLIENT_SSL,
      mariadbCapabilities: codes.MARIADB_CLIENT_PROGRESS,
      maxPacketSize: 1 << 24,
      characterSet: 45,
    });
  });

  it('refuses a 32-byte prefix without CLIENT_SSL, pre-4.1 logins and truncated ones', () => {
    const prefix = serialize.sslRequest({
      capabilities: AGREED,
      maxPacketSize: 0,
      characterSet: 45,
    });
    expect(() => decodeClientHandshake(prefix)).toThrow(/without a username/);
    const old = Buffer.from(mysql2Login);
    old.writeUInt32LE(codes.CLIENT_LONG_PASSWORD, 0);
    expect(() => decodeClientHandshake(old)).toThrow(/HandshakeResponse320/);
    // Cut inside the username and inside the attributes block.
    expect(() => decodeClientHandshake(mysql2Login.subarray(0, 34))).toThrow(ProtocolError);
    expect(() => decodeClientHandshake(mysql2Login.subarray(0, mysql2Login.length - 3))).toThrow(
      ProtocolError,
    );
  });
});

describe('auth rounds', () => {
  it('AuthSwitchRequest: plugin name and data; a lone 0xfe is the old-password switch', () => {
    const data = Buffer.concat([mariadbScramble, hex('00')]);
    expect(
      decodeAuthSwitchRequest(serialize.authSwitchRequest('mysql_native_password', data)),
    ).toEqual({
      pluginName: 'mysql_native_password',
      pluginData: data,
    });
    expect(decodeAuthSwitchRequest(hex('fe'))).toEqual({
      pluginName: 'mysql_old_password',
      pluginData: Buffer.alloc(0),
    });
    expect(() => decodeAuthSwitchRequest(hex('fe 6162'))).toThrow(/terminator/);
  });

  it("AuthMoreData: caching_sha2_password's fast-auth answer", () => {
    expect(decodeAuthMoreData(serialize.authMoreData(hex('03')))).toEqual(hex('03'));
    expect(() => decodeAuthMoreData(hex('02 03'))).toThrow(ProtocolError);
  });
});

describe('OK, ERR and EOF', () => {
  it("decodes MariaDB's OK after login: status flags and the schema in the session state", () => {
    expect(decodeOk(loginOk, AGREED)).toEqual({
      header: codes.OK_HEADER,
      affectedRows: 0n,
      lastInsertId: 0n,
      statusFlags: codes.SERVER_STATUS_AUTOCOMMIT | codes.SERVER_SESSION_STATE_CHANGED,
      warnings: 0,
      info: '',
      sessionStateChanges: [{ type: 'schema', name: 'test' }],
    });
  });

  it('decodes tracked system variables and the state-change flag', () => {
    const state = Buffer.concat([
      hex('00'),
      serialize.lenencString(
        Buffer.concat([serialize.lenencString('time_zone'), serialize.lenencString('+02:00')]),
      ),
      hex('02 02 01 31'),
      hex('05 09 08 5f5f5f5f5f5f5f53'),
    ]);
    const ok = Buffer.concat([
      hex('00 03 fc e803 2340 0100'),
      serialize.lenencString('Rows matched: 3'),
      serialize.lenencString(state),
    ]);
    expect(decodeOk(ok, AGREED)).toMatchObject({
      affectedRows: 3n,
      lastInsertId: 1000n,
      statusFlags: 0x4023,
      warnings: 1,
      info: 'Rows matched: 3',
      sessionStateChanges: [
        { type: 'systemVariable', name: 'time_zone', value: '+02:00' },
        { type: 'stateChange', changed: true },
        {
          type: 'other',
          code: codes.SESSION_TRACK_TRANSACTION_STATE,
          data: hex('085f5f5f5f5f5f5f53'),
        },
      ],
    });
  });

  it('without CLIENT_SESSION_TRACK the info is the rest of the packet', () => {
    const ok = serialize.okPacket(
      { affectedRows: 2, lastInsertId: 2n ** 60n, statusFlags: 3, warnings: 4, info: 'Records: 2' },
      codes.CLIENT_PROTOCOL_41,
    );
    expect(decodeOk(ok, codes.CLIENT_PROTOCOL_41)).toMatchObject({
      affectedRows: 2n,
      lastInsertId: 2n ** 60n,
      statusFlags: 3,
      warnings: 4,
      info: 'Records: 2',
    });
  });

  it('an OK with 0xfe ends a result set under CLIENT_DEPRECATE_EOF; an EOF is shorter than 9 bytes', () => {
    const endOfRows = serialize.okPacket({ header: codes.EOF_HEADER, statusFlags: 0x22 }, AGREED);
    expect(isEofPacket(endOfRows)).toBe(true);
    expect(decodeOk(endOfRows, AGREED).statusFlags).toBe(0x22);
    const eof = serialize.eofPacket({ warnings: 1, statusFlags: codes.SERVER_MORE_RESULTS_EXISTS });
    expect(eof.toString('hex')).toBe('fe01000800');
    expect(decodeEof(eof, AGREED)).toEqual({ warnings: 1, statusFlags: 8 });
    // A text row whose first value is 8 bytes long starts with 0xfe too.
    const row = hex('fe 0800000000000000 3132333435363738');
    expect(isEofPacket(row)).toBe(false);
    expect(() => decodeEof(row, AGREED)).toThrow(ProtocolError);
  });

  it('ERR carries code, SQLSTATE and message; early errors may lack the SQLSTATE', () => {
    expect(errAccessDenied.subarray(0, 9).toString('hex')).toBe('ff1504233238303030');
    expect(decodeErr(errAccessDenied, AGREED)).toEqual({
      kind: 'error',
      code: 1045,
      sqlState: '28000',
      message: "Access denied for user 'app'@'localhost' (using password: YES)",
    });
    const early = serialize.errPacket(
      { code: 1040, sqlState: '08004', message: 'Too many connections' },
      false,
    );
    expect(decodeErr(early, 0)).toEqual({
      kind: 'error',
      code: 1040,
      sqlState: null,
      message: 'Too many connections',
    });
    expect(() => serialize.errPacket({ code: 1, sqlState: 'bad', message: '' })).toThrow(
      RangeError,
    );
  });

  it("decodes MariaDB's progress report, sent as ERR 0xffff", () => {
    expect(decodeErr(hex('ff ffff 01 03 a08601 0a 636f7079696e67207478'), AGREED)).toEqual({
      kind: 'progress',
      stage: 1,
      maxStage: 3,
      progress: 100000,
      info: 'copying tx',
    });
  });

  it('a LOCAL INFILE request names the file the server wants', () => {
    expect(decodeLocalInfileRequest(Buffer.from('\xfb/tmp/parts.csv', 'latin1'))).toBe(
      '/tmp/parts.csv',
    );
    expect(() => decodeLocalInfileRequest(hex('fb'))).toThrow(/without a file name/);
    expect(() => decodeLocalInfileRequest(hex('00'))).toThrow(ProtocolError);
  });

  it('refuses a packet that is not what the caller expected', () => {
    expect(() => decodeOk(errAccessDenied, AGREED)).toThrow(/does not start an OK/);
    expect(() => decodeErr(loginOk, AGREED)).toThrow(/does not start an ERR/);
    expect(() => decodeOk(loginOk.subarray(0, loginOk.length - 2), AGREED)).toThrow(ProtocolError);
  });
});

describe('commands', () => {
  it.each([
    [
      'COM_QUERY',
      serialize.command(codes.COM_QUERY, 'SELECT 1'),
      { kind: 'query', sql: 'SELECT 1', attributes: [] },
    ],
    [
      'COM_INIT_DB',
      serialize.command(codes.COM_INIT_DB, 'shop'),
      { kind: 'initDb', schema: 'shop' },
    ],
    [
      'COM_STMT_PREPARE',
      serialize.command(codes.COM_STMT_PREPARE, 'SELECT ?'),
      { kind: 'stmtPrepare', sql: 'SELECT ?' },
    ],
    [
      'COM_STMT_EXECUTE',
      hex('17 07000000 01 01000000 00 01 0300 2a000000'),
      {
        kind: 'stmtExecute',
        statementId: 7,
        flags: 1,
        iterationCount: 1,
        parameters: hex('00 01 0300 2a000000'),
      },
    ],
    [
      'COM_STMT_SEND_LONG_DATA',
      hex('18 07000000 0200 68656c6c6f'),
      { kind: 'stmtSendLongData', statementId: 7, parameterId: 2, data: Buffer.from('hello') },
    ],
    ['COM_STMT_CLOSE', hex('19 ffffffff'), { kind: 'stmtClose', statementId: 0xffffffff }],
    ['COM_STMT_RESET', hex('1a 07000000'), { kind: 'stmtReset', statementId: 7 }],
    [
      'COM_STMT_FETCH',
      hex('1c 07000000 0a000000'),
      { kind: 'stmtFetch', statementId: 7, rows: 10 },
    ],
    [
      'COM_STMT_BULK_EXECUTE',
      hex('fa 07000000 8000 0300'),
      { kind: 'stmtBulkExecute', statementId: 7, bulkFlags: 128, body: hex('0300') },
    ],
    [
      'COM_SET_OPTION',
      hex('1b 0100'),
      { kind: 'setOption', option: codes.MYSQL_OPTION_MULTI_STATEMENTS_OFF },
    ],
    ['COM_PROCESS_KILL', hex('0c 2a000000'), { kind: 'processKill', connectionId: 42 }],
    [
      'COM_FIELD_LIST',
      Buffer.from('\x04items\0%'),
      { kind: 'fieldList', table: 'items', wildcard: '%' },
    ],
    ['COM_PING', hex('0e'), { kind: 'ping' }],
    ['COM_QUIT', hex('01'), { kind: 'quit' }],
    ['COM_RESET_CONNECTION', hex('1f'), { kind: 'resetConnection' }],
    ['COM_STATISTICS', hex('09'), { kind: 'statistics' }],
    [
      'COM_BINLOG_DUMP',
      hex('12 04000000'),
      { kind: 'other', command: 0x12, body: hex('04000000') },
    ],
  ])('%s', (_name, payload, expected) => {
    expect(decodeCommand(payload, AGREED)).toMatchObject(expected);
  });

  it('COM_QUERY under CLIENT_QUERY_ATTRIBUTES: attributes first, then the text', () => {
    const agreed = AGREED | codes.CLIENT_QUERY_ATTRIBUTES;
    expect(decodeCommand(queryWithAttributes, agreed)).toEqual({
      kind: 'query',
      command: codes.COM_QUERY,
      sql: 'SELECT 1',
      attributes: [
        {
          name: 'trace_id',
          type: codes.MYSQL_TYPE_STRING,
          unsigned: false,
          value: Buffer.from('abc-123'),
        },
        { name: 'n', type: codes.MYSQL_TYPE_LONG, unsigned: true, value: null },
      ],
    });
    // Without attributes a client still sends both counts.
    expect(decodeCommand(hex('03 00 01 53454c454354 2031'), agreed)).toMatchObject({
      sql: 'SELECT 1',
      attributes: [],
    });
    // The same bytes without the capability are all query text.
    expect(decodeCommand(hex('03 00 01 2031'), AGREED)).toMatchObject({ sql: '\0\x01 1' });
  });

  it('COM_QUERY attributes of every fixed-width, temporal and string type: value bytes without their length prefix', () => {
    const types: [number, string, string][] = [
      [codes.MYSQL_TYPE_TINY, '01', '01'],
      [codes.MYSQL_TYPE_SHORT, '0200', '0200'],
      [codes.MYSQL_TYPE_LONGLONG, '0300000000000000', '0300000000000000'],
      [codes.MYSQL_TYPE_DOUBLE, '000000000000f03f', '000000000000f03f'],
      [codes.MYSQL_TYPE_FLOAT, '0000803f', '0000803f'],
      [codes.MYSQL_TYPE_DATETIME, '07 e80701020304 05', 'e8070102030405'],
      [codes.MYSQL_TYPE_TIME, '00', ''],
      [codes.MYSQL_TYPE_NEWDECIMAL, '04 312e3235', '312e3235'],
    ];
    const payload = Buffer.concat([
      hex('03'),
      serialize.lenencInt(types.length),
      hex('01 00 01'),
      ...types.map(([type], i) =>
        Buffer.concat([Buffer.from([type, 0]), serialize.lenencString(`a${i}`)]),
      ),
      ...types.map(([, value]) => hex(value)),
      Buffer.from('SELECT 2'),
    ]);
    const decoded = decodeCommand(payload, AGREED | codes.CLIENT_QUERY_ATTRIBUTES);
    expect(
      decoded.kind === 'query' && decoded.attributes.map((a) => a.value?.toString('hex')),
    ).toEqual(types.map(([, , value]) => value));
    expect(decoded).toMatchObject({ sql: 'SELECT 2' });
  });

  it('refuses malformed query attributes', () => {
    const agreed = AGREED | codes.CLIENT_QUERY_ATTRIBUTES;
    expect(() => decodeCommand(hex('03 01 02 00 01'), agreed)).toThrow(/set count 2/);
    expect(() => decodeCommand(hex('03 fc ffff 01 00 01'), agreed)).toThrow(/attribute count/);
    expect(() => decodeCommand(hex('03 01 01 00 00 fe00 01 61'), agreed)).toThrow(/without types/);
    expect(() => decodeCommand(hex('03 01 01 00 01 0300 01 61 2a00'), agreed)).toThrow(
      /ends early/,
    );
  });

  it('COM_CHANGE_USER with auth data, schema, charset, plugin and attributes', () => {
    expect(decodeCommand(changeUser, AGREED)).toEqual({
      kind: 'changeUser',
      command: codes.COM_CHANGE_USER,
      username: 'cacheid-app',
      authResponse: hex('0102030405060708090a0b0c0d0e0f1011121314'),
      database: 'shop',
      characterSet: 45,
      authPluginName: 'mysql_native_password',
      connectAttributes: [['_client_name', 'libmariadb']],
    });
    // An old client stops after the schema.
    expect(decodeCommand(Buffer.from('\x11app\0\0shop\0'), AGREED)).toMatchObject({
      username: 'app',
      authResponse: Buffer.alloc(0),
      database: 'shop',
      characterSet: null,
      authPluginName: null,
      connectAttributes: null,
    });
    expect(() => decodeCommand(changeUser.subarray(0, 20), AGREED)).toThrow(ProtocolError);
  });

  it('truncated fixed-size commands are refused', () => {
    for (const payload of [
      hex('19 0700'),
      hex('17 07000000'),
      hex('1c 07000000'),
      hex('0c'),
      hex('1b 00'),
    ]) {
      expect(() => decodeCommand(payload, AGREED)).toThrow(ProtocolError);
    }
    expect(() => decodeCommand(Buffer.alloc(0), AGREED)).toThrow(ProtocolError);
  });
});
