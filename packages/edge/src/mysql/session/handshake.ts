// The login of one MySQL client through the edge, as a pure state machine (no sockets): it greets the
// client, maps `CACHE_ID-user` to the origin's `user`, agrees capabilities both links can honour, and
// relays the origin's auth rounds (AuthSwitchRequest, AuthMoreData) so no password is ever seen or kept.
//
// Two starts. Origin first (`HandshakeRelay.originFirst`): the origin's greeting is known, so the
// client gets the origin's own scramble and its reply is relayed unchanged. Client first
// (`HandshakeRelay.clientFirst`): the origin depends on the cache id in the username, which only the
// login carries, so the edge greets with its own scramble and a capability set every supported origin
// has; once the origin greets, the edge logs in claiming no plugin the origin knows, and the origin
// answers with an AuthSwitchRequest carrying its real plugin and scramble, which the client answers.
import { constants, publicEncrypt, randomBytes } from 'node:crypto';
import {
  ProtocolError,
  codes,
  decodeAuthSwitchRequest,
  decodeClientHandshake,
  decodeHandshakeV10,
  decodeOk,
  serialize,
} from '../protocol/index.ts';
import type { HandshakeResponse41, HandshakeV10, Packet } from '../protocol/index.ts';

export interface HandshakeOptions {
  /** The edge can upgrade client connections to TLS (EDGE_TLS_CERT is set). */
  tls: boolean;
}

export interface ClientFirstOptions extends HandshakeOptions {
  /** The edge's own scramble (20 bytes); random by default. */
  scramble?: Buffer;
  /** The version the edge greets with before it knows the origin. */
  serverVersion?: string;
  connectionId?: number;
}

/** What the login agreed, for the session that relays the connection afterwards. */
export interface AgreedLogin {
  cacheId: string;
  originUser: string;
  database: string | null;
  /** The same on both links, CLIENT_SSL aside: results are relayed and replayed as bytes. */
  capabilities: number;
  mariadbCapabilities: number;
  characterSet: number;
  /** Whether the client link is TLS. */
  clientTls: boolean;
  /** The OK packet's status flags (autocommit, …). */
  statusFlags: number;
  /** The origin is MariaDB (its greeting lacks CLIENT_MYSQL). */
  originMariadb: boolean;
  /** The origin's id for this connection (what CONNECTION_ID() returns, what KILL takes). */
  originConnectionId: number;
  /** The origin link is TLS. */
  originTls: boolean;
}

/** TLS to the origin, as the cache's `originTls` says (like sslmode: prefer or require). */
export type OriginTlsMode = 'disable' | 'prefer' | 'require';

export type HandshakeAction =
  | { kind: 'toClient'; bytes: Buffer }
  | { kind: 'toOrigin'; bytes: Buffer }
  /** Upgrade the client socket to TLS now; the client's next packet arrives over it. */
  | { kind: 'startClientTls' }
  /** Upgrade the origin socket to TLS now, before the actions that follow are carried out. */
  | { kind: 'startOriginTls' }
  /** Client first: look the cache up and connect to its origin, then pass its greeting on. */
  | { kind: 'openOrigin'; cacheId: string; originUser: string }
  | { kind: 'authenticated'; login: AgreedLogin }
  /** The login is over without success; an ERR (the origin's own, or ours) went to the client. */
  | { kind: 'failed'; reason: string };

// The plugin name the edge claims to the origin in the client-first start: no server has it, so
// the origin switches to the user's real plugin and sends its scramble for the client to answer.
export const RELAY_PLUGIN_NAME = 'edgegate_auth_relay';

// Capabilities the edge relays; everything else is refused. CLIENT_SSL is per link (added when the
// edge has TLS); CLIENT_COMPRESS and zstd would make the edge decompress; optional metadata and
// MariaDB's metadata cache make a result depend on what one connection has seen, which cached bytes
// replayed on another connection cannot honour.
const RELAYED_CAPABILITIES =
  codes.CLIENT_LONG_PASSWORD |
  codes.CLIENT_FOUND_ROWS |
  codes.CLIENT_LONG_FLAG |
  codes.CLIENT_CONNECT_WITH_DB |
  codes.CLIENT_NO_SCHEMA |
  codes.CLIENT_ODBC |
  codes.CLIENT_LOCAL_FILES |
  codes.CLIENT_IGNORE_SPACE |
  codes.CLIENT_PROTOCOL_41 |
  codes.CLIENT_INTERACTIVE |
  codes.CLIENT_IGNORE_SIGPIPE |
  codes.CLIENT_TRANSACTIONS |
  codes.CLIENT_RESERVED |
  codes.CLIENT_SECURE_CONNECTION |
  codes.CLIENT_MULTI_STATEMENTS |
  codes.CLIENT_MULTI_RESULTS |
  codes.CLIENT_PS_MULTI_RESULTS |
  codes.CLIENT_PLUGIN_AUTH |
  codes.CLIENT_CONNECT_ATTRS |
  codes.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA |
  codes.CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS |
  codes.CLIENT_SESSION_TRACK |
  codes.CLIENT_DEPRECATE_EOF |
  codes.CLIENT_QUERY_ATTRIBUTES;
const RELAYED_MARIADB_CAPABILITIES =
  codes.MARIADB_CLIENT_PROGRESS |
  codes.MARIADB_CLIENT_STMT_BULK_OPERATIONS |
  codes.MARIADB_CLIENT_EXTENDED_TYPE_INFO;
// Before the origin is known: what MariaDB ≥ 10.2 and MySQL ≥ 5.7 all offer. Query attributes
// (MySQL ≥ 8.0.23 only) and MariaDB's extensions wait for an origin-first start.
const PORTABLE_CAPABILITIES =
  RELAYED_CAPABILITIES &
  ~codes.CLIENT_QUERY_ATTRIBUTES &
  ~codes.CLIENT_NO_SCHEMA &
  ~codes.CLIENT_ODBC;
// Flags that shape the bytes after login: the origin must have every one the client agreed to.
const SHAPING_CAPABILITIES =
  codes.CLIENT_FOUND_ROWS |
  codes.CLIENT_LONG_FLAG |
  codes.CLIENT_LOCAL_FILES |
  codes.CLIENT_IGNORE_SPACE |
  codes.CLIENT_PROTOCOL_41 |
  codes.CLIENT_TRANSACTIONS |
  codes.CLIENT_MULTI_STATEMENTS |
  codes.CLIENT_MULTI_RESULTS |
  codes.CLIENT_PS_MULTI_RESULTS |
  codes.CLIENT_SESSION_TRACK |
  codes.CLIENT_DEPRECATE_EOF |
  codes.CLIENT_QUERY_ATTRIBUTES;
const DEFAULT_SERVER_VERSION = '5.7.99-edgegate';
// caching_sha2_password's AuthMoreData asking for the password itself (its cache has no entry),
// and the client's request for the server's public key.
const SHA2_PERFORM_FULL_AUTHENTICATION = 0x04;
const SHA2_REQUEST_PUBLIC_KEY = 0x02;

type Step =
  | { kind: 'awaitingLogin'; tls: boolean }
  | { kind: 'awaitingOrigin'; login: HandshakeResponse41; tls: boolean }
  | { kind: 'authenticating'; login: AgreedLogin }
  | { kind: 'done' }
  | { kind: 'failed' };

export class HandshakeRelay {
  readonly #options: HandshakeOptions;
  readonly #greeting: HandshakeV10;
  #origin: HandshakeV10 | null;
  #originTls: OriginTlsMode = 'disable';
  #guard: AuthRoundGuard | null = null;
  // The origin's current auth plugin and scramble (from its AuthSwitchRequest).
  #plugin = '';
  #nonce: Buffer = Buffer.alloc(0);
  #fullAuth: 'none' | 'awaitingPassword' | 'awaitingKey' = 'none';
  #password: Buffer | null = null;
  #step: Step = { kind: 'awaitingLogin', tls: false };
  // The sequence id each link expects next.
  #clientSequence = 1;
  #originSequence = 1;

  private constructor(
    greeting: HandshakeV10,
    origin: HandshakeV10 | null,
    options: HandshakeOptions,
  ) {
    this.#greeting = greeting;
    this.#origin = origin;
    this.#options = options;
  }

  /** The origin greeted first: the client is greeted with its scramble and version. */
  static originFirst(originGreeting: Buffer, options: HandshakeOptions): HandshakeRelay {
    const origin = decodeHandshakeV10(originGreeting);
    if ((origin.capabilities & codes.CLIENT_PROTOCOL_41) === 0) {
      throw new ProtocolError('the origin does not speak protocol 4.1');
    }
    const originIsMariadb = (origin.capabilities & codes.CLIENT_MYSQL) === 0;
    let capabilities = (origin.capabilities & RELAYED_CAPABILITIES) >>> 0;
    if (options.tls) capabilities |= codes.CLIENT_SSL;
    const greeting: HandshakeV10 = {
      ...origin,
      capabilities: capabilities >>> 0,
      mariadbCapabilities: originIsMariadb
        ? origin.mariadbCapabilities & RELAYED_MARIADB_CAPABILITIES
        : 0,
    };
    return new HandshakeRelay(greeting, origin, options);
  }

  /** The origin is not known until the client names its cache. */
  static clientFirst(options: ClientFirstOptions): HandshakeRelay {
    const scramble = options.scramble ?? scrambleBytes();
    if (scramble.length !== codes.SCRAMBLE_BYTES) throw new RangeError('a scramble is 20 bytes');
    const greeting: HandshakeV10 = {
      serverVersion: options.serverVersion ?? DEFAULT_SERVER_VERSION,
      connectionId: options.connectionId ?? 0,
      authPluginData: scramble,
      capabilities: (PORTABLE_CAPABILITIES | (options.tls ? codes.CLIENT_SSL : 0)) >>> 0,
      mariadbCapabilities: 0,
      characterSet: codes.UTF8MB4_GENERAL_CI,
      statusFlags: codes.SERVER_STATUS_AUTOCOMMIT,
      authPluginName: codes.MYSQL_NATIVE_PASSWORD,
    };
    return new HandshakeRelay(greeting, null, options);
  }

  /** The greeting the client is sent first, as it goes on the wire. */
  greet(): HandshakeAction[] {
    return [
      { kind: 'toClient', bytes: serialize.packet(0, serialize.handshakeV10(this.#greeting)) },
    ];
  }

  /** How the origin link is secured; set before the origin's greeting is passed in. */
  set originTls(mode: OriginTlsMode) {
    this.#originTls = mode;
  }

  get offeredCapabilities(): number {
    return this.#greeting.capabilities;
  }

  /** A packet from the client while logging in. */
  onClientPacket(packet: Packet): HandshakeAction[] {
    const step = this.#step;
    if (step.kind === 'done' || step.kind === 'failed') {
      throw new Error(`the login is ${step.kind}: the session relays what follows`);
    }
    if (packet.sequenceId !== this.#clientSequence) {
      return this.#fail(codes.ER_NET_PACKETS_OUT_OF_ORDER, '08S01', 'Got packets out of order');
    }
    this.#clientSequence = (packet.lastSequenceId + 1) & 0xff;
    switch (step.kind) {
      case 'awaitingLogin':
        return this.#onLogin(packet, step.tls);
      case 'authenticating':
        if (this.#fullAuth === 'awaitingPassword') return this.#encryptForOrigin(packet.payload);
        // An answer to an auth round the origin started: relayed as is.
        return [this.#toOrigin(packet.payload)];
      case 'awaitingOrigin':
        return this.#fail(
          codes.ER_NET_PACKETS_OUT_OF_ORDER,
          '08S01',
          'a packet before the login was answered',
        );
    }
  }

  /** A packet from the origin while logging in (its greeting first, in a client-first start). */
  onOriginPacket(packet: Packet): HandshakeAction[] {
    const step = this.#step;
    if (step.kind === 'done' || step.kind === 'failed') {
      throw new Error(`the login is ${step.kind}: the session relays what follows`);
    }
    // The greeting starts the origin's sequence; every later packet continues it.
    const expected = step.kind === 'awaitingOrigin' ? 0 : this.#originSequence;
    if (step.kind === 'awaitingLogin' || packet.sequenceId !== expected) {
      return this.#fail(
        codes.ER_NET_PACKETS_OUT_OF_ORDER,
        '08S01',
        'the origin sent a packet out of turn while logging in',
      );
    }
    this.#originSequence = (packet.lastSequenceId + 1) & 0xff;
    const header = packet.payload[0];
    if (step.kind === 'awaitingOrigin') {
      if (header === codes.ERR_HEADER) return this.#relayOriginError(packet.payload);
      this.#origin = decodeHandshakeV10(packet.payload);
      return this.#loginToOrigin(step.login, step.tls);
    }
    switch (header) {
      case codes.OK_HEADER: {
        this.#step = { kind: 'done' };
        const statusFlags = okStatus(packet.payload, step.login.capabilities);
        return [
          this.#toClient(packet.payload),
          { kind: 'authenticated', login: { ...step.login, statusFlags } },
        ];
      }
      case codes.ERR_HEADER:
        return this.#relayOriginError(packet.payload);
      case codes.AUTH_SWITCH_REQUEST_HEADER:
        this.#rememberSwitch(packet.payload);
        return this.#checkedRound(packet.payload);
      case codes.AUTH_MORE_DATA_HEADER:
        return this.#onAuthMoreData(packet.payload, step.login);
      default:
        return this.#fail(
          codes.ER_MALFORMED_PACKET,
          'HY000',
          'the origin sent an unexpected packet while logging in',
        );
    }
  }

  // caching_sha2_password's full authentication sends the password itself: in clear over TLS, or
  // RSA-encrypted with the server's key otherwise. A client on TLS to the edge sends it in clear;
  // when the edge's link to the origin is plain, the edge must not relay it as it is: it asks the
  // origin for its public key and sends the password encrypted, as a client without TLS would.
  // An AuthSwitchRequest the client may answer (mysql_clear_password only over TLS).
  #checkedRound(payload: Buffer): HandshakeAction[] {
    const refusal = (this.#guard as AuthRoundGuard).check(payload);
    if (refusal !== null) return this.#fail(codes.ER_ACCESS_DENIED_ERROR, '28000', refusal);
    return [this.#toClient(payload)];
  }

  #onAuthMoreData(payload: Buffer, login: AgreedLogin): HandshakeAction[] {
    if (this.#fullAuth === 'awaitingKey') {
      this.#fullAuth = 'none';
      const password = this.#password as Buffer;
      this.#password = null;
      let encrypted: Buffer;
      try {
        const nonce = this.#nonce;
        const mixed = Buffer.alloc(password.length);
        for (let i = 0; i < password.length; i += 1) {
          mixed[i] = (password[i] as number) ^ (nonce[i % nonce.length] as number);
        }
        encrypted = publicEncrypt(
          {
            key: payload.subarray(1).toString('latin1'),
            padding: constants.RSA_PKCS1_OAEP_PADDING,
          },
          mixed,
        );
      } catch {
        return this.#fail(
          codes.ER_ACCESS_DENIED_ERROR,
          '28000',
          'the origin sent an unusable public key for caching_sha2_password',
        );
      } finally {
        password.fill(0);
      }
      return [this.#toOrigin(encrypted)];
    }
    const performFullAuth = payload.length === 2 && payload[1] === SHA2_PERFORM_FULL_AUTHENTICATION;
    if (
      performFullAuth &&
      this.#plugin === codes.CACHING_SHA2_PASSWORD &&
      login.clientTls &&
      !login.originTls
    ) {
      this.#fullAuth = 'awaitingPassword';
    }
    return [this.#toClient(payload)];
  }

  // The client's clear password (NUL-terminated), sent because its link to the edge is TLS.
  #encryptForOrigin(password: Buffer): HandshakeAction[] {
    this.#fullAuth = 'awaitingKey';
    this.#password = Buffer.from(password);
    // The client's packet is answered by the origin's OK or ERR: its sequence continues there.
    return [this.#toOrigin(Buffer.from([SHA2_REQUEST_PUBLIC_KEY]))];
  }

  #rememberSwitch(payload: Buffer): void {
    const end = payload.indexOf(0, 1);
    if (end < 0) return;
    this.#plugin = payload.toString('latin1', 1, end);
    let data = payload.subarray(end + 1);
    if (data.length > 0 && data[data.length - 1] === 0) data = data.subarray(0, -1);
    this.#nonce = Buffer.from(data);
  }

  /** Ends the login with an ERR of the edge's own (an unknown cache, an unreachable origin…). */
  refuse(code: number, sqlState: string, message: string): HandshakeAction[] {
    return this.#fail(code, sqlState, message);
  }

  #onLogin(packet: Packet, tls: boolean): HandshakeAction[] {
    const login = decodeClientHandshake(packet.payload);
    if (login.kind === 'sslRequest') {
      if (!this.#options.tls || tls) {
        return this.#fail(codes.ER_HANDSHAKE_ERROR, '08S01', 'TLS is not available on this edge');
      }
      this.#step = { kind: 'awaitingLogin', tls: true };
      return [{ kind: 'startClientTls' }];
    }
    const separator = login.username.indexOf('-');
    if (separator <= 0 || separator === login.username.length - 1) {
      return this.#fail(
        codes.ER_ACCESS_DENIED_ERROR,
        '28000',
        `user "${login.username.slice(0, 64)}" has no cache id: connect as CACHE_ID-user, as in the connection string Edgegate gave you`,
      );
    }
    if (this.#origin === null) {
      if ((login.capabilities & codes.CLIENT_PLUGIN_AUTH) === 0) {
        return this.#fail(
          codes.ER_NOT_SUPPORTED_AUTH_MODE,
          '08004',
          'the client does not support authentication plugins (CLIENT_PLUGIN_AUTH), which the edge needs',
        );
      }
      this.#step = { kind: 'awaitingOrigin', login, tls };
      return [
        {
          kind: 'openOrigin',
          cacheId: login.username.slice(0, separator),
          originUser: login.username.slice(separator + 1),
        },
      ];
    }
    return this.#loginToOrigin(login, tls);
  }

  #loginToOrigin(login: HandshakeResponse41, tls: boolean): HandshakeAction[] {
    const origin = this.#origin as HandshakeV10;
    const separator = login.username.indexOf('-');
    const capabilities =
      (login.capabilities & this.#greeting.capabilities & ~codes.CLIENT_SSL) >>> 0;
    const mariadbCapabilities =
      (login.capabilities & codes.CLIENT_MYSQL) === 0
        ? login.mariadbCapabilities & this.#greeting.mariadbCapabilities
        : 0;
    const originMariadb =
      (origin.capabilities & codes.CLIENT_MYSQL) === 0 ? origin.mariadbCapabilities : 0;
    const missing =
      (capabilities & SHAPING_CAPABILITIES & ~origin.capabilities) >>> 0 ||
      (mariadbCapabilities & ~originMariadb) >>> 0;
    if (missing !== 0) {
      return this.#fail(
        codes.ER_HANDSHAKE_ERROR,
        '08S01',
        `the origin (${origin.serverVersion}) lacks capabilities the client agreed to (0x${missing.toString(16)})`,
      );
    }
    const originOffersTls = (origin.capabilities & codes.CLIENT_SSL) !== 0;
    if (this.#originTls === 'require' && !originOffersTls) {
      return this.#fail(
        codes.ER_HANDSHAKE_ERROR,
        '08S01',
        'the origin does not accept TLS, and this cache requires it (originTls: require)',
      );
    }
    const originTls = this.#originTls !== 'disable' && originOffersTls;
    const agreed: AgreedLogin = {
      cacheId: login.username.slice(0, separator),
      originUser: login.username.slice(separator + 1),
      database: login.database,
      capabilities,
      mariadbCapabilities,
      characterSet: login.characterSet,
      clientTls: tls,
      statusFlags: 0,
      originMariadb: (origin.capabilities & codes.CLIENT_MYSQL) === 0,
      originConnectionId: origin.connectionId,
      originTls,
    };
    // The client answered the origin's own scramble only in an origin-first start.
    const sameScramble = origin.authPluginData.equals(this.#greeting.authPluginData);
    const keepsMariadbWord =
      (login.capabilities & codes.CLIENT_MYSQL) === 0 &&
      (origin.capabilities & codes.CLIENT_MYSQL) === 0;
    const originCapabilities =
      (keepsMariadbWord ? capabilities & ~codes.CLIENT_MYSQL : capabilities | codes.CLIENT_MYSQL) |
      (originTls ? codes.CLIENT_SSL : 0);
    const actions: HandshakeAction[] = [];
    if (originTls) {
      actions.push(
        this.#toOrigin(
          serialize.sslRequest({
            capabilities: originCapabilities,
            mariadbCapabilities,
            maxPacketSize: login.maxPacketSize,
            characterSet: login.characterSet,
          }),
        ),
        { kind: 'startOriginTls' },
      );
    }
    const response = serialize.handshakeResponse41({
      capabilities: originCapabilities,
      mariadbCapabilities,
      maxPacketSize: login.maxPacketSize,
      characterSet: login.characterSet,
      username: agreed.originUser,
      authResponse: sameScramble ? login.authResponse : Buffer.alloc(0),
      database: login.database,
      authPluginName: sameScramble ? login.authPluginName : RELAY_PLUGIN_NAME,
      connectAttributes: login.connectAttributes,
    });
    this.#step = { kind: 'authenticating', login: agreed };
    this.#guard = new AuthRoundGuard(sameScramble ? login.authPluginName : null, {
      clientTls: tls,
      originTls,
    });
    if (sameScramble) {
      this.#plugin = login.authPluginName ?? '';
      this.#nonce = Buffer.from(origin.authPluginData);
    }
    actions.push(this.#toOrigin(response));
    return actions;
  }

  #relayOriginError(payload: Buffer): HandshakeAction[] {
    this.#step = { kind: 'failed' };
    const code = payload.length >= 3 ? payload.readUInt16LE(1) : 0;
    return [this.#toClient(payload), { kind: 'failed', reason: `origin error ${code}` }];
  }

  #fail(code: number, sqlState: string, message: string): HandshakeAction[] {
    this.#step = { kind: 'failed' };
    return [
      this.#toClient(serialize.errPacket({ code, sqlState, message })),
      { kind: 'failed', reason: message },
    ];
  }

  #toClient(payload: Buffer): HandshakeAction {
    const bytes = serialize.packet(this.#clientSequence, payload);
    this.#clientSequence = (this.#clientSequence + 1) & 0xff;
    return { kind: 'toClient', bytes };
  }

  #toOrigin(payload: Buffer): HandshakeAction {
    const bytes = serialize.packet(this.#originSequence, payload);
    this.#originSequence = (this.#originSequence + 1) & 0xff;
    return { kind: 'toOrigin', bytes };
  }
}

/**
 * Watches the auth rounds an origin starts, at login or for COM_CHANGE_USER, for one that would make
 * a password travel in clear: `check` gives the refusal's message, or null to relay the packet.
 */
export class AuthRoundGuard {
  #plugin: string | null;
  readonly #links: { clientTls: boolean; originTls: boolean };

  constructor(plugin: string | null, links: { clientTls: boolean; originTls: boolean }) {
    this.#plugin = plugin;
    this.#links = links;
  }

  check(payload: Buffer): string | null {
    if (payload[0] === codes.AUTH_SWITCH_REQUEST_HEADER) {
      this.#plugin = decodeAuthSwitchRequest(payload).pluginName;
      // The password itself would cross the client's link: only over TLS.
      if (this.#plugin === codes.MYSQL_CLEAR_PASSWORD && !this.#links.clientTls) {
        return 'the origin asks for the password in clear text (mysql_clear_password): connect to the edge with TLS';
      }
    } else if (
      payload[0] === codes.AUTH_MORE_DATA_HEADER &&
      this.#plugin === codes.CACHING_SHA2_PASSWORD &&
      payload.length === 2 &&
      payload[1] === SHA2_PERFORM_FULL_AUTHENTICATION &&
      this.#links.clientTls &&
      !this.#links.originTls
    ) {
      // A client on TLS answers with its password in clear: it must not cross an origin link
      // without TLS (where MySQL would refuse it anyway, expecting it RSA-encrypted).
      return "caching_sha2_password asks for the password itself, which a client on TLS sends in clear, and this cache reaches its origin without TLS: set the cache's originTls to require, or connect to the edge without TLS (the client then encrypts it with the origin's RSA key)";
    }
    return null;
  }
}

function scrambleBytes(): Buffer {
  // Printable, NUL-free bytes, as servers make them: some clients stop a scramble at a NUL.
  return Buffer.from(randomBytes(codes.SCRAMBLE_BYTES).map((b) => 0x21 + (b % 94)));
}

// The OK's layout follows the capabilities agreed with the origin; a malformed one is the
// session's to notice, so the login still succeeds here with no flags.
function okStatus(payload: Buffer, capabilities: number): number {
  try {
    return decodeOk(payload, capabilities).statusFlags;
  } catch (error) {
    if (error instanceof ProtocolError) return 0;
    throw error;
  }
}
