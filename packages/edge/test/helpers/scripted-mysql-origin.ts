// A scripted MySQL 8.0 origin for tests: no MySQL 8 server can be installed here, so this one logs
// users in with caching_sha2_password byte for byte as MySQL 8.0 does — fast auth from its hash
// cache, full auth over TLS or through its RSA key, AuthSwitchRequest for a client that starts with
// another plugin. After login a SELECT gets one fixed row, any other COM_QUERY an OK; COM_PING,
// COM_INIT_DB and COM_RESET_CONNECTION get an OK, COM_QUIT closes, other commands get ERR 1047.
// The exchanges follow MySQL's sql/auth/sha2_password.cc and its "caching_sha2_password
// information" page; the scramble is XOR(SHA256(password), SHA256(SHA256(SHA256(password)), nonce)).
import {
  constants,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  PacketParser,
  ProtocolError,
  codes,
  decodeClientHandshake,
  decodeCommand,
  serialize,
} from '../../src/mysql/protocol/index.ts';
import type { ClientCommand, Packet } from '../../src/mysql/protocol/index.ts';

// caching_sha2_password's one-byte messages (AuthMoreData from the server, 0x02 from the client).
const REQUEST_PUBLIC_KEY = 0x02;
const FAST_AUTH_SUCCESS = 0x03;
const PERFORM_FULL_AUTHENTICATION = 0x04;
const SHA256_BYTES = 32;
// The size of the key pair MySQL 8.0 generates at its first start.
const RSA_KEY_BITS = 2048;
// MySQL 8.0's default collation, which its greeting names.
const UTF8MB4_0900_AI_CI = 255;
// The capability flags MySQL 8.0.36 greets with (0xdfffffff), less compression — as a server with
// protocol_compression_algorithms=uncompressed — and less CLIENT_SSL unless TLS is configured.
const MYSQL_80_CAPABILITIES =
  0xdfffffff &
  ~codes.CLIENT_COMPRESS &
  ~codes.CLIENT_ZSTD_COMPRESSION_ALGORITHM &
  ~codes.CLIENT_SSL;
// MySQL 8.0's max_allowed_packet default.
const MAX_ALLOWED_PACKET = 64 * 1024 * 1024;
// Column definition bits for the fixed result column.
const NOT_NULL_FLAG = 1;
const COLUMN_DEFINITION_FIXED_BYTES = 0x0c;
// Decimals MySQL reports for a string expression ("not fixed").
const DECIMALS_NOT_FIXED = 0x1f;
// CLIENT_OPTIONAL_RESULTSET_METADATA's marker after the column count: full metadata follows.
const RESULTSET_METADATA_FULL = 1;
const ER_UNKNOWN_COM_MESSAGE = 'Unknown command';
const SQL_STATE_ACCESS_DENIED = '28000';
const SQL_STATE_AUTH_MODE = '08004';

export interface ScriptedMysqlUser {
  name: string;
  /** May be empty: such a user logs in with an empty auth response, as in MySQL. */
  password: string;
}

export interface ScriptedMysqlOriginOptions {
  users: ScriptedMysqlUser[];
  /** Start with every user's hash cached, so that their first login takes fast auth. */
  warmCache?: boolean;
  /** Offer CLIENT_SSL with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer } | null;
  serverVersion?: string;
  /** The one row (one column) every SELECT gets; `SELECT 1` shape by default. */
  result?: { column: string; value: string };
}

/** The way one login went, so tests can tell a fast login from a full one. */
export type LoginPath = 'fastAuth' | 'fullAuthTls' | 'fullAuthRsa' | 'emptyPassword' | 'denied';

export interface LoginRecord {
  user: string;
  /** The plugin the client named in its HandshakeResponse41. */
  clientPlugin: string | null;
  /** Whether the server had to send an AuthSwitchRequest. */
  switched: boolean;
  tls: boolean;
  path: LoginPath;
}

export interface ScriptedMysqlOrigin {
  host: '127.0.0.1';
  port: number;
  /** The RSA public key (SPKI PEM) the server sends a client that asks for it. */
  publicKeyPem: string;
  /** Every finished login, in order. */
  logins: LoginRecord[];
  /** The COM_QUERY texts received, in order. */
  queries: string[];
  /** Forgets every cached hash, as FLUSH PRIVILEGES does. */
  flushCache(): void;
  close(): Promise<void>;
}

interface Server {
  users: Map<string, string>;
  /** User → SHA256(SHA256(password)), filled by each successful full authentication. */
  cache: Map<string, Buffer>;
  privateKey: KeyObject;
  publicKeyPem: string;
  /** The RSA modulus length in bytes: the only ciphertext length accepted. */
  cipherBytes: number;
  tls: tls.SecureContextOptions | null;
  serverVersion: string;
  result: { column: string; value: string };
  logins: LoginRecord[];
  queries: string[];
}

export async function startScriptedMysqlOrigin(
  options: ScriptedMysqlOriginOptions,
): Promise<ScriptedMysqlOrigin> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: RSA_KEY_BITS });
  const users = new Map(options.users.map((user) => [user.name, user.password]));
  const server: Server = {
    users,
    cache: new Map(),
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    cipherBytes: RSA_KEY_BITS / 8,
    tls: options.tls ?? null,
    serverVersion: options.serverVersion ?? '8.0.36',
    result: options.result ?? { column: '1', value: '1' },
    logins: [],
    queries: [],
  };
  if (options.warmCache === true) {
    for (const [name, password] of users) server.cache.set(name, passwordHash(password));
  }

  let nextConnectionId = 8;
  const sockets = new Set<net.Socket>();
  const listener = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new ScriptedConnection(server, socket, nextConnectionId++);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    host: '127.0.0.1',
    port: (listener.address() as net.AddressInfo).port,
    publicKeyPem: server.publicKeyPem,
    logins: server.logins,
    queries: server.queries,
    flushCache: () => server.cache.clear(),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** What is known of a login once the client has sent its HandshakeResponse41. */
interface Login {
  user: string;
  capabilities: number;
  clientPlugin: string | null;
  /** The nonce the client's current answer was computed from. */
  scramble: Buffer;
  switched: boolean;
  /** Whether the client's auth response was non-empty (the "using password" of ERR 1045). */
  usedPassword: boolean;
}

type Step =
  /** The greeting is sent: an SSLRequest or a HandshakeResponse41 comes next. */
  | { kind: 'greeted' }
  /** An AuthSwitchRequest to caching_sha2_password is sent: the token for its scramble comes next. */
  | { kind: 'switching'; login: Login }
  /** perform_full_authentication is sent: the password (TLS), or a request for the key, comes next. */
  | { kind: 'fullAuth'; login: Login }
  /** The public key is sent: the RSA-encrypted password comes next. */
  | { kind: 'rsaPassword'; login: Login }
  | { kind: 'command'; capabilities: number }
  | { kind: 'closed' };

class ScriptedConnection {
  readonly #server: Server;
  readonly #raw: net.Socket;
  #socket: net.Socket;
  readonly #parser = new PacketParser({ maxPacketBytes: MAX_ALLOWED_PACKET });
  readonly #greetingScramble = scramble();
  readonly #onData = (chunk: Buffer) => this.#receive(chunk);
  #tls = false;
  // Set by an SSLRequest: the TLS handshake starts once the parser has held the bytes after it.
  #tlsRequested = false;
  #step: Step = { kind: 'greeted' };
  // The sequence id of the next packet, either way: each exchange counts up from the command's 0.
  #sequence = 0;

  constructor(server: Server, socket: net.Socket, connectionId: number) {
    this.#server = server;
    this.#raw = socket;
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('error', () => socket.destroy());
    this.#send([
      serialize.handshakeV10({
        serverVersion: server.serverVersion,
        connectionId,
        authPluginData: this.#greetingScramble,
        capabilities: this.#offered,
        mariadbCapabilities: 0,
        characterSet: UTF8MB4_0900_AI_CI,
        statusFlags: codes.SERVER_STATUS_AUTOCOMMIT,
        authPluginName: codes.CACHING_SHA2_PASSWORD,
      }),
    ]);
  }

  get #offered(): number {
    return (MYSQL_80_CAPABILITIES | (this.#server.tls ? codes.CLIENT_SSL : 0)) >>> 0;
  }

  #receive(chunk: Buffer): void {
    try {
      this.#parser.parse(chunk, (packet) => this.#onPacket(packet));
      if (this.#tlsRequested) {
        this.#tlsRequested = false;
        this.#startTls();
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#fail(error.errno, error.sqlState, error.message);
    }
  }

  #onPacket(packet: Packet): void | 'pause' {
    const step = this.#step;
    if (step.kind === 'closed') return;
    if (step.kind === 'command') this.#sequence = 0;
    if (packet.sequenceId !== this.#sequence) {
      return this.#fail(
        codes.ER_NET_PACKETS_OUT_OF_ORDER,
        codes.SQLSTATE_COMMUNICATION_ERROR,
        'Got packets out of order',
      );
    }
    this.#sequence = (packet.lastSequenceId + 1) & 0xff;
    switch (step.kind) {
      case 'greeted':
        return this.#onHandshakeResponse(packet.payload);
      case 'switching':
        return this.#onToken(step.login, packet.payload);
      case 'fullAuth':
        return this.#onFullAuth(step.login, packet.payload);
      case 'rsaPassword':
        return this.#onRsaPassword(step.login, packet.payload);
      case 'command':
        return this.#onCommand(decodeCommand(packet.payload, step.capabilities), step.capabilities);
    }
  }

  #onHandshakeResponse(payload: Buffer): void | 'pause' {
    const hello = decodeClientHandshake(payload);
    if (hello.kind === 'sslRequest') {
      if (this.#server.tls === null || this.#tls) {
        return this.#fail(
          codes.ER_HANDSHAKE_ERROR,
          codes.SQLSTATE_COMMUNICATION_ERROR,
          'Bad handshake',
        );
      }
      this.#tlsRequested = true;
      return 'pause';
    }
    const login: Login = {
      user: hello.username,
      capabilities: (hello.capabilities & this.#offered) >>> 0,
      clientPlugin: hello.authPluginName,
      scramble: this.#greetingScramble,
      switched: false,
      usedPassword: hello.authResponse.length > 0,
    };
    if ((hello.capabilities & codes.CLIENT_PLUGIN_AUTH) === 0) {
      return this.#fail(
        codes.ER_NOT_SUPPORTED_AUTH_MODE,
        SQL_STATE_AUTH_MODE,
        'Client does not support authentication protocol requested by server; consider upgrading MySQL client',
      );
    }
    if (hello.authPluginName !== codes.CACHING_SHA2_PASSWORD) {
      // A fresh nonce, sent with the terminating NUL as MySQL sends every 20-byte scramble.
      const nonce = scramble();
      this.#step = { kind: 'switching', login: { ...login, scramble: nonce, switched: true } };
      this.#send([
        serialize.authSwitchRequest(
          codes.CACHING_SHA2_PASSWORD,
          Buffer.concat([nonce, Buffer.from([0])]),
        ),
      ]);
      return;
    }
    this.#onToken(login, hello.authResponse);
  }

  // The client's first caching_sha2_password answer: empty (no password) or a 32-byte scramble.
  #onToken(login: Login, token: Buffer): void {
    // MySQL takes a lone NUL for an empty answer too.
    const empty = token.length === 0 || (token.length === 1 && token[0] === 0);
    const current = { ...login, usedPassword: !empty };
    const password = this.#server.users.get(login.user);
    if (empty) {
      if (password === '') return this.#loggedIn(current, 'emptyPassword', []);
      return this.#deny(current);
    }
    if (token.length !== SHA256_BYTES) return this.#deny(current);
    const cached = this.#server.cache.get(login.user);
    if (cached !== undefined && scrambleMatches(token, current.scramble, cached)) {
      return this.#loggedIn(current, 'fastAuth', [
        serialize.authMoreData(Buffer.from([FAST_AUTH_SUCCESS])),
      ]);
    }
    // A cache miss and a wrong scramble look the same to the client: MySQL asks for the password.
    this.#step = { kind: 'fullAuth', login: current };
    this.#send([serialize.authMoreData(Buffer.from([PERFORM_FULL_AUTHENTICATION]))]);
  }

  #onFullAuth(login: Login, payload: Buffer): void {
    // Over TLS the packet is the password and its NUL; MySQL drops the last byte unchecked.
    if (this.#tls) return this.#checkPassword(login, payload.subarray(0, -1), 'fullAuthTls');
    if (payload.length === 1 && payload[0] === REQUEST_PUBLIC_KEY) {
      this.#step = { kind: 'rsaPassword', login };
      this.#send([serialize.authMoreData(Buffer.from(this.#server.publicKeyPem, 'latin1'))]);
      return;
    }
    // A client that already holds the key sends the ciphertext straight away.
    this.#onRsaPassword(login, payload);
  }

  // The password + NUL, XORed with the nonce (repeated), encrypted with RSA-OAEP (SHA-1).
  #onRsaPassword(login: Login, payload: Buffer): void {
    if (payload.length !== this.#server.cipherBytes) return this.#deny(login);
    let plain: Buffer;
    try {
      plain = privateDecrypt(
        {
          key: this.#server.privateKey,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: 'sha1',
        },
        payload,
      );
    } catch {
      return this.#deny(login);
    }
    const unmasked = Buffer.from(
      plain.map((byte, i) => byte ^ (login.scramble[i % codes.SCRAMBLE_BYTES] as number)),
    );
    // MySQL reads the password up to the first NUL, and refuses an empty one.
    const nul = unmasked.indexOf(0);
    const password = nul < 0 ? unmasked : unmasked.subarray(0, nul);
    if (password.length === 0) return this.#deny(login);
    this.#checkPassword(login, password, 'fullAuthRsa');
  }

  #checkPassword(login: Login, sent: Buffer, path: LoginPath): void {
    const password = this.#server.users.get(login.user);
    if (password === undefined) return this.#deny(login);
    const stored = passwordHash(password);
    if (!timingSafeEqual(passwordHash(sent), stored)) return this.#deny(login);
    this.#server.cache.set(login.user, stored);
    this.#loggedIn(login, path, []);
  }

  #loggedIn(login: Login, path: LoginPath, before: Buffer[]): void {
    this.#record(login, path);
    this.#step = { kind: 'command', capabilities: login.capabilities };
    this.#send([
      ...before,
      serialize.okPacket({ statusFlags: codes.SERVER_STATUS_AUTOCOMMIT }, login.capabilities),
    ]);
  }

  #deny(login: Login): void {
    this.#record(login, 'denied');
    const host = (this.#raw.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    this.#fail(
      codes.ER_ACCESS_DENIED_ERROR,
      SQL_STATE_ACCESS_DENIED,
      `Access denied for user '${login.user}'@'${host}' (using password: ${login.usedPassword ? 'YES' : 'NO'})`,
    );
  }

  #record(login: Login, path: LoginPath): void {
    this.#server.logins.push({
      user: login.user,
      clientPlugin: login.clientPlugin,
      switched: login.switched,
      tls: this.#tls,
      path,
    });
  }

  #onCommand(command: ClientCommand, capabilities: number): void {
    const ok = () =>
      serialize.okPacket({ statusFlags: codes.SERVER_STATUS_AUTOCOMMIT }, capabilities);
    switch (command.kind) {
      case 'query':
        this.#server.queries.push(command.sql);
        this.#send(/^\s*select\b/i.test(command.sql) ? this.#resultSet(capabilities) : [ok()]);
        return;
      case 'ping':
      case 'initDb':
      case 'resetConnection':
        this.#send([ok()]);
        return;
      case 'quit':
        this.#step = { kind: 'closed' };
        this.#socket.end();
        return;
      default:
        this.#send([
          serialize.errPacket({
            code: codes.ER_UNKNOWN_COM_ERROR,
            sqlState: codes.SQLSTATE_COMMUNICATION_ERROR,
            message: ER_UNKNOWN_COM_MESSAGE,
          }),
        ]);
    }
  }

  // A text result set of one VARCHAR column and one row, ended by EOF or, under
  // CLIENT_DEPRECATE_EOF, by an OK packet with the 0xfe header.
  #resultSet(capabilities: number): Buffer[] {
    const { column, value } = this.#server.result;
    const status = codes.SERVER_STATUS_AUTOCOMMIT;
    const optionalMetadata = (capabilities & codes.CLIENT_OPTIONAL_RESULTSET_METADATA) !== 0;
    const deprecateEof = (capabilities & codes.CLIENT_DEPRECATE_EOF) !== 0;
    return [
      Buffer.concat([
        serialize.lenencInt(1),
        optionalMetadata ? Buffer.from([RESULTSET_METADATA_FULL]) : Buffer.alloc(0),
      ]),
      columnDefinition(column, [...value].length),
      ...(deprecateEof ? [] : [serialize.eofPacket({ statusFlags: status })]),
      serialize.lenencString(value),
      deprecateEof
        ? serialize.okPacket({ header: codes.EOF_HEADER, statusFlags: status }, capabilities)
        : serialize.eofPacket({ statusFlags: status }),
    ];
  }

  // Writes each payload as the next packet of the exchange, all in one write.
  #send(payloads: Buffer[]): void {
    const frames = payloads.map((payload) => {
      const frame = serialize.packet(this.#sequence, payload);
      this.#sequence = (this.#sequence + 1) & 0xff;
      return frame;
    });
    this.#socket.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
  }

  #fail(code: number, sqlState: string, message: string): void {
    this.#send([serialize.errPacket({ code, sqlState, message })]);
    this.#step = { kind: 'closed' };
    this.#socket.end();
  }

  // The client's next bytes are its TLS handshake; any that came with the SSLRequest are replayed
  // into the TLS socket, which then carries the rest of the connection.
  #startTls(): void {
    const raw = this.#raw;
    raw.off('data', this.#onData);
    const stream = new Duplex({
      read() {},
      write(chunk, _encoding, done) {
        raw.write(chunk, done);
      },
      final(done) {
        raw.end();
        done();
      },
    });
    stream.push(this.#parser.takeHeld());
    raw.on('data', (bytes: Buffer) => stream.push(bytes));
    raw.on('end', () => stream.push(null));
    const secure = new tls.TLSSocket(stream as unknown as net.Socket, {
      isServer: true,
      ...this.#server.tls,
    });
    secure.on('error', () => raw.destroy());
    secure.on('close', () => raw.destroy());
    secure.on('data', this.#onData);
    this.#socket = secure;
    this.#tls = true;
  }
}

// 20 nonce bytes as MySQL's generate_user_salt makes them: 7-bit, never NUL or '$'.
function scramble(): Buffer {
  return Buffer.from(
    randomBytes(codes.SCRAMBLE_BYTES).map((byte) => {
      const b = byte & 0x7f;
      return b === 0 || b === 0x24 ? b + 1 : b;
    }),
  );
}

function sha256(...parts: Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

// What the server caches per user: SHA256(SHA256(password)).
function passwordHash(password: string | Buffer): Buffer {
  return sha256(sha256(typeof password === 'string' ? Buffer.from(password, 'utf8') : password));
}

// MySQL's Validate_scramble: XOR the token with SHA256(cached, nonce) to get SHA256(password)
// back, then check that hashing it gives the cached hash.
function scrambleMatches(token: Buffer, nonce: Buffer, cached: Buffer): boolean {
  const mask = sha256(cached, nonce);
  const stage1 = Buffer.from(token.map((byte, i) => byte ^ (mask[i] as number)));
  return timingSafeEqual(sha256(stage1), cached);
}

// Protocol::ColumnDefinition41 of a VARCHAR expression column, as MySQL 8.0 describes `SELECT 'x'`.
function columnDefinition(name: string, valueCharacters: number): Buffer {
  const fixed = Buffer.alloc(COLUMN_DEFINITION_FIXED_BYTES + 1);
  fixed[0] = COLUMN_DEFINITION_FIXED_BYTES;
  fixed.writeUInt16LE(UTF8MB4_0900_AI_CI, 1);
  // utf8mb4: up to 4 bytes a character.
  fixed.writeUInt32LE(valueCharacters * 4, 3);
  fixed[7] = codes.MYSQL_TYPE_VAR_STRING;
  fixed.writeUInt16LE(NOT_NULL_FLAG, 8);
  fixed[10] = DECIMALS_NOT_FIXED;
  return Buffer.concat([
    serialize.lenencString('def'),
    serialize.lenencString(''),
    serialize.lenencString(''),
    serialize.lenencString(''),
    serialize.lenencString(name),
    serialize.lenencString(''),
    fixed,
  ]);
}
