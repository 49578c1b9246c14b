// One client connection through the MySQL/MariaDB edge: greets the client, routes by the cache id in
// the username (`CACHE_ID-user`), relays the login to the origin (handshake.ts), then relays
// commands, answering cacheable reads (COM_QUERY and COM_STMT_EXECUTE of a plain SELECT) from the
// result store and invalidating on writes, through the same core as the Postgres edge
// (core/cache-access.ts, core/session-key.ts). Answers are relayed as bytes; response.ts finds where
// each ends. Commands may be pipelined: answers are matched to them in order.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { CacheEntry } from '../../cache/result-cache.ts';
import type { CacheAccess, Capture } from '../../core/cache-access.ts';
import { Relay } from '../../core/relay.ts';
import { routeTo } from '../../core/route.ts';
import { SessionLedger, type SessionIdentity } from '../../core/session-ledger.ts';
import { requestKey, SessionKey } from '../../core/session-key.ts';
import {
  MYSQL_END_ERRORS,
  type ControlledSession,
  type EndCause,
  type SessionInfo,
} from '../../core/session-control.ts';
import { endSocket } from '../../net/end-socket.ts';
import type { CacheState, EdgeRuntime } from '../../runtime.ts';
import {
  connectOriginTcp,
  OriginError,
  upgradeOriginTls,
  type OriginTarget,
} from '../../upstream/origin.ts';
import {
  PacketParser,
  ProtocolError,
  codes,
  decodeCommand,
  serialize,
  type ClientCommand,
  type Packet,
} from '../protocol/index.ts';
import type { MysqlAnalysis } from '../sql/analyze.ts';
import {
  AuthRoundGuard,
  HandshakeRelay,
  RELAY_PLUGIN_NAME,
  type AgreedLogin,
  type HandshakeAction,
} from './handshake.ts';
import { ResponseReader, type ResponseShape } from './response.ts';
import { readStateRows, stateProbeSql } from './state-probe.ts';

export interface MysqlSessionOptions {
  runtime: EdgeRuntime;
  tls: tls.SecureContext | null;
  /** The login must be over within this, or the client is refused and closed. */
  loginTimeoutMs: number;
  /** This session's id as the client sees it (the greeting's connection id; what KILL takes). */
  connectionId: number;
  onClose: (session: MysqlSession) => void;
}

// Errors the edge itself raises (MySQL's codes and SQLSTATEs for the same conditions).
const ER_CONNECTION_ERROR = 2002; // CR_CONNECTION_ERROR-like: the origin cannot be reached
const ER_NO_SUCH_THREAD = 1094;
const ER_UNKNOWN_COM_ERROR = codes.ER_UNKNOWN_COM_ERROR;
const ER_NET_READ_INTERRUPTED = 1159; // 08S01: the login timed out
const ER_SERVER_SHUTDOWN = 1053; // 08S01: the origin went away

// The statement id MariaDB reads as "the statement prepared last" (pipelined PREPARE + EXECUTE).
const LAST_PREPARED = 0xffffffff;
// Nothing is held for a read that grows past this while the edge waits for the state probe.
const KILL_STATEMENT = /^\s*KILL\s+(?:(QUERY|CONNECTION)\s+)?(\d{1,10})\s*;?\s*$/i;

type Step = 'login' | 'connecting' | 'ready' | 'closed';

interface Prepared {
  sql: string;
  /** Filled in by the origin's answer; -1 until then. */
  id: number;
  params: number;
  /** The parameter types the client sent last (a later EXECUTE may leave them out). */
  types: Buffer | null;
  /**
   * The types the origin was last sent for it: an EXECUTE that leaves them out is bound with these
   * there. One served from the cache never reached the origin, so a later EXECUTE without types is
   * sent with the client's last ones put in (else the origin would find none — error 1210 — or
   * older ones, and read the values as other types).
   */
  originTypes: Buffer | null;
  /** COM_STMT_SEND_LONG_DATA since the last execute: the values are not all in the EXECUTE. */
  longData: boolean;
  /** The current database at PREPARE, which its bare table names keep; null: not known then. */
  database: string | null;
  /** Its analysis, made once per sql_mode quoting (see #analyze), not at every EXECUTE. */
  analysis: { flags: number; analysis: MysqlAnalysis } | null;
  /** `types` as they start a key (see #parameterKey), made when they change, not per EXECUTE. */
  typesKey: string;
  /** The start of its EXECUTEs' keys, for the session key `keyPrefixFor` (see #executeKey). */
  keyPrefix: string;
  keyPrefixFor: string | null;
}

// One command in flight (or answered here), in the order the client sent it.
interface Pending {
  reader: ResponseReader | null;
  /** Answered here when it reaches the head: a cache hit, or an error of the edge's own. */
  local: { entry: CacheEntry } | { bytes: Buffer } | null;
  waiting: boolean;
  capture: Capture | null;
  /** Capture: where each packet starts in the stored answer. */
  packetStarts: number[];
  writes: string[] | 'all' | null;
  /** The epoch it was sent to the origin at (see CacheAccess.sending); null: not sent. */
  sentEpoch: bigint | null;
  /** The edge's own state probe: its answer is read, not relayed. */
  probe: { mark: number; rows: Buffer[] } | null;
  prepare: Prepared | null;
  /** COM_CHANGE_USER: the user the session becomes once the origin accepts. */
  changeUser: string | null;
  /** COM_RESET_CONNECTION or COM_CHANGE_USER: the origin drops statements and the transaction. */
  resets: boolean;
}

export class MysqlSession implements ControlledSession {
  readonly id: string;
  readonly #runtime: EdgeRuntime;
  readonly #tls: tls.SecureContext | null;
  readonly #onClose: (session: MysqlSession) => void;
  readonly #connectionId: number;
  #step: Step = 'login';
  #clientParser = new PacketParser();
  readonly #originParser = new PacketParser();
  readonly #handshake: HandshakeRelay;
  #login: AgreedLogin | null = null;
  #cache: CacheState | null = null;
  #access: CacheAccess | null = null;
  #target: OriginTarget | null = null;
  #key: SessionKey | null = null;
  #statusFlags = 0;
  #arrivedAt = 0;
  readonly #ledger: SessionLedger;
  readonly #relay: Relay;
  #askedCache: string | null = null;
  #askedUser: string | null = null;

  // Client packets not yet handled (held while a probe or a coalesced miss is awaited).
  #incoming: { packet: Packet; chunk: Buffer }[] = [];
  // Client packets that belong to the exchange in flight (a LOCAL INFILE upload, auth rounds).
  #clientFeeds: 'commands' | 'infile' | 'auth' = 'commands';
  // The client sent SSLRequest: its socket becomes TLS once the packet's chunk is parsed.
  #clientTlsDue = false;
  // COM_CHANGE_USER's auth rounds are watched as the login's are.
  #changeUserGuard: AuthRoundGuard | null = null;
  readonly #queue: Pending[] = [];
  readonly #statements = new Map<number, Prepared>();
  #lastPrepared: Prepared | null = null;
  #probing = false;
  // A probe failed: the state cannot be read, so this session neither serves nor stores.
  #unprobeable = false;
  // The session created a temporary table (no probe can see one): it shares no result.
  #private = false;

  constructor(socket: net.Socket, options: MysqlSessionOptions) {
    this.#runtime = options.runtime;
    this.#tls = options.tls;
    this.#onClose = options.onClose;
    this.#connectionId = options.connectionId;
    this.id = String(options.connectionId);
    this.#ledger = new SessionLedger('mysql', socket, options.loginTimeoutMs, (ms) =>
      this.#loginExpired(ms),
    );
    this.#relay = new Relay(socket, {
      onWritten: (bytes) => (this.#ledger.bytesOut += bytes),
      onReleased: () => this.#endIfDrained(),
    });
    this.#handshake = HandshakeRelay.clientFirst({
      tls: options.tls !== null,
      connectionId: options.connectionId,
    });
    this.#attachClient(socket);
    this.#act(this.#handshake.greet());
    this.#flush();
  }

  get cacheId(): string | null {
    return this.#cache?.id ?? null;
  }

  info(): SessionInfo {
    return this.#ledger.info(this.id, this.#who(), this.#phase());
  }

  #who(): SessionIdentity {
    return {
      cacheId: this.cacheId ?? this.#askedCache,
      user: this.#login?.originUser ?? this.#askedUser,
      database: this.#login === null ? null : this.#database() || null,
    };
  }

  #phase(): { loggingIn: boolean; quiet: boolean; inTransaction: boolean } {
    return {
      loggingIn: this.#step === 'login' || this.#step === 'connecting',
      quiet: this.#quiet(),
      inTransaction: this.#inTransaction,
    };
  }

  drain(): void {
    this.#ledger.draining = true;
    this.#endIfDrained();
  }

  end(cause: EndCause): void {
    if (this.#step === 'closed') return;
    this.#ledger.endFor(cause);
    const { code, sqlState, message } = MYSQL_END_ERRORS[cause];
    this.#refuse(code, sqlState, message);
  }

  // Nothing sent that is not answered, nothing received that is not handled.
  #quiet(): boolean {
    return (
      this.#queue.length === 0 &&
      this.#incoming.length === 0 &&
      this.#clientFeeds === 'commands' &&
      this.#clientParser.bufferedBytes === 0 &&
      this.#relay.idle &&
      !this.#probing
    );
  }

  // While draining: a session still logging in, or idle outside a transaction, ends now.
  #endIfDrained(): void {
    if (this.#step !== 'closed' && this.#ledger.drainsNow(this.#phase())) this.end('shutdown');
  }

  close(): void {
    if (this.#step === 'closed') return;
    this.#relay.client.destroy();
    this.#teardown();
  }

  #teardown(): void {
    this.#step = 'closed';
    this.#relay.close();
    this.#ledger.ended(this.#runtime.sessions, this.#who());
    this.#runtime.cancelKeys.forget(killKey(this.#connectionId));
    const access = this.#access;
    let inFlight = false;
    for (const pending of this.#queue) {
      if (pending.capture !== null) access?.abandonMiss(pending.capture);
      if (pending.local !== null) continue;
      inFlight = true;
      if (pending.writes !== null) access?.noteWrites(pending.writes);
    }
    this.#queue.length = 0;
    // A write sent and not answered may still commit (autocommit, a COMMIT, a text of several
    // statements): its tables are invalidated once the origin has run it and closed.
    this.#relay.closeOrigin(
      QUIT,
      access !== null && access.written && inFlight ? () => void access.commitWrites() : null,
    );
    this.#onClose(this);
  }

  #loginExpired(timeoutMs: number): void {
    if (this.#step === 'ready' || this.#step === 'closed') return;
    this.#refuse(
      ER_NET_READ_INTERRUPTED,
      '08S01',
      `login timeout: the handshake did not finish within ${timeoutMs / 1000} s`,
    );
  }

  #attachClient(socket: net.Socket): void {
    this.#relay.attachClient(socket);
    socket.on('data', (chunk: Buffer) => this.#onClientData(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => {
      this.#ledger.endWith('client closed');
      this.close();
    });
  }

  // ---- login ----

  #onClientData(chunk: Buffer): void {
    if (this.#step === 'closed') return;
    this.#arrivedAt = performance.now();
    this.#ledger.bytesIn += chunk.length;
    const parser = this.#clientParser;
    try {
      parser.parse(chunk, (packet) => {
        if (this.#step !== 'ready') {
          const actions = this.#handshake.onClientPacket(packet);
          this.#act(actions);
          // TLS starts right after SSLRequest: what follows in this chunk is not a packet.
          return this.#clientTlsDue ? 'pause' : undefined;
        }
        // Behind nothing, a command is handled as it is parsed; a blocked session keeps them.
        if (this.#incoming.length === 0 && !this.#relay.blocked && this.#step === 'ready') {
          if (this.#onClientPacket(packet, chunk) !== 'retry') return undefined;
        }
        this.#incoming.push({ packet, chunk });
        return undefined;
      });
      if (this.#clientTlsDue) {
        // Clients send their TLS ClientHello right behind the SSLRequest, without waiting for an
        // answer, often in the same read: those bytes start the TLS stream (never packets).
        this.#clientTlsDue = false;
        this.#startClientTls(parser.takeHeld());
        return;
      }
      this.#drainIncoming();
      this.#flush();
    } catch (error) {
      this.#fail(error);
    }
  }

  // Carries out what the login relay decided.
  #act(actions: HandshakeAction[]): void {
    for (let i = 0; i < actions.length; i += 1) {
      const action = actions[i] as HandshakeAction;
      switch (action.kind) {
        case 'toClient':
          this.#relay.push(action.bytes);
          break;
        case 'toOrigin':
          this.#relay.toOrigin(action.bytes);
          break;
        case 'startClientTls':
          this.#clientTlsDue = true;
          break;
        case 'startOriginTls': {
          // The rest waits for the origin's TLS handshake.
          const rest = actions.slice(i + 1);
          this.#relay.flushOrigin();
          this.#startOriginTls()
            .then(() => {
              if (this.#step === 'closed') return;
              this.#act(rest);
              this.#flush();
            })
            .catch((error: unknown) => this.#fail(error));
          return;
        }
        case 'openOrigin':
          this.#askedCache = action.cacheId.slice(0, 64);
          this.#askedUser = action.originUser.slice(0, 64);
          this.#step = 'connecting';
          this.#openOrigin(action.cacheId).catch((error: unknown) => this.#fail(error));
          break;
        case 'authenticated':
          this.#authenticated(action.login);
          break;
        case 'failed':
          this.#ledger.endWith(
            action.reason.startsWith('origin error')
              ? `authentication failed: ${action.reason.slice('origin error '.length)}`
              : `refused: ${action.reason}`,
          );
          this.#flush();
          endSocket(this.#relay.client);
          this.#teardown();
          return;
      }
    }
  }

  #startClientTls(held: Buffer): void {
    if (this.#tls === null) throw new ProtocolError('TLS is not available on this edge');
    this.#flush();
    this.#clientParser = new PacketParser();
    this.#attachClient(
      this.#relay.startClientTls(this.#tls, (plain) =>
        held.length === 0 ? plain : prepend(held, plain),
      ),
    );
  }

  async #startOriginTls(): Promise<void> {
    const origin = this.#relay.origin as net.Socket;
    origin.removeAllListeners('data');
    origin.removeAllListeners('close');
    origin.removeAllListeners('error');
    const secure = await upgradeOriginTls(origin, (this.#target as OriginTarget).hostname);
    if (this.#step === 'closed') {
      secure.destroy();
      return;
    }
    this.#attachOrigin(secure);
  }

  async #openOrigin(cacheId: string): Promise<void> {
    const route = await routeTo(
      this.#runtime,
      cacheId,
      ['mysql', 'mariadb'],
      (shown) =>
        `"${shown}" is not a cache id: connect as CACHE_ID-user (cch_…-user), as in the connection string Edgegate gave you`,
    );
    if (this.#step === 'closed') return;
    if (!route.ok) return this.#refuseLogin(route.message);
    ({ cache: this.#cache, access: this.#access, target: this.#target } = route);
    this.#handshake.originTls = route.target.originTls;
    let origin: net.Socket;
    try {
      origin = await connectOriginTcp(this.#target, this.#runtime.guard);
    } catch (error) {
      if (error instanceof OriginError) {
        return this.#act(this.#handshake.refuse(ER_CONNECTION_ERROR, 'HY000', error.message));
      }
      throw error;
    }
    if ((this.#step as Step) === 'closed') {
      origin.destroy();
      return;
    }
    this.#attachOrigin(origin);
  }

  #refuseLogin(message: string): void {
    this.#act(this.#handshake.refuse(codes.ER_ACCESS_DENIED_ERROR, '28000', message));
    this.#flush();
  }

  #attachOrigin(origin: net.Socket): void {
    this.#relay.attachOrigin(origin);
    origin.on('data', (chunk: Buffer) => this.#onOriginData(chunk));
    origin.on('error', () => this.#originGone());
    origin.on('close', () => this.#originGone());
  }

  #authenticated(login: AgreedLogin): void {
    this.#login = login;
    this.#statusFlags = login.statusFlags;
    this.#step = 'ready';
    this.#ledger.loggedIn();
    this.#key = new SessionKey({
      cacheId: login.cacheId,
      database: login.database ?? '',
      user: login.originUser,
      // What shapes the answer's bytes: results are replayed to clients that agreed the same.
      startupSettings: new Map([
        ['character_set', String(login.characterSet)],
        ['capabilities', String(login.capabilities)],
        ['mariadb_capabilities', String(login.mariadbCapabilities)],
      ]),
    });
    this.#runtime.cancelKeys.remember(killKey(this.#connectionId), {
      ...(this.#target as OriginTarget),
      cacheId: login.cacheId,
      connectionId: login.originConnectionId,
    });
  }

  // ---- commands ----

  #drainIncoming(): void {
    if (this.#incoming.length === 0) return;
    let index = 0;
    while (!this.#relay.blocked && index < this.#incoming.length && this.#step === 'ready') {
      const { packet, chunk } = this.#incoming[index] as { packet: Packet; chunk: Buffer };
      index += 1;
      if (this.#onClientPacket(packet, chunk) === 'retry') {
        index -= 1;
        break;
      }
    }
    this.#incoming.splice(0, index);
  }

  #onClientPacket(packet: Packet, chunk: Buffer): 'retry' | undefined {
    if (this.#clientFeeds !== 'commands') return this.#onClientFeed(packet, chunk);
    if (packet.sequenceId !== 0) {
      throw new ProtocolError(
        'Got packets out of order',
        codes.ER_NET_PACKETS_OUT_OF_ORDER,
        codes.SQLSTATE_COMMUNICATION_ERROR,
      );
    }
    const payload = packet.payload;
    if (payload.length === 0) throw new ProtocolError('an empty command packet');
    // The hot path: a repeated COM_QUERY or EXECUTE is answered before anything is decoded.
    if (
      (payload[0] === codes.COM_QUERY && this.#queryHit(payload)) ||
      (payload[0] === codes.COM_STMT_EXECUTE && this.#executeHit(payload))
    ) {
      this.#ledger.queries += 1;
      return undefined;
    }
    const login = this.#login as AgreedLogin;
    if ((this.#access as CacheAccess).cache.rules.neverCaches && this.#relayUncached(payload)) {
      this.#send(wireBytes(packet, chunk), this.#pending('result', { writes: 'all' }));
      return undefined;
    }
    const command = decodeCommand(payload, login.capabilities);
    return this.#onCommand(command, packet, wireBytes(packet, chunk));
  }

  // Caching off: a query (but a KILL, whose id the edge translates) or an EXECUTE goes to the
  // origin undecoded. Its effects are not followed, so the session caches nothing from then on, even
  // should caching be turned on; its writes are unknown, so they invalidate the whole cache (another
  // node may still have caching on). True when the caller is to relay it so.
  #relayUncached(payload: Buffer): boolean {
    const command = payload[0];
    if (command === codes.COM_QUERY) {
      const capabilities = (this.#login as AgreedLogin).capabilities;
      if ((capabilities & codes.CLIENT_QUERY_ATTRIBUTES) !== 0 || mayBeKill(payload)) return false;
    } else if (command === codes.COM_STMT_EXECUTE) {
      if (payload.length < 5) return false;
    } else {
      return false;
    }
    (this.#access as CacheAccess).countUncacheable();
    this.#unprobeable = true;
    this.#ledger.queries += 1;
    return true;
  }

  // A packet that is not a command: a LOCAL INFILE's file, or an authentication round's answer.
  #onClientFeed(packet: Packet, chunk: Buffer): undefined {
    const wire = wireBytes(packet, chunk);
    if (this.#clientFeeds === 'infile') {
      // The file, then an empty packet that ends it: all for the origin.
      this.#relay.toOrigin(wire);
      if (packet.payload.length === 0) {
        this.#clientFeeds = 'commands';
        this.#queue[0]?.reader?.fileSent();
      }
      return undefined;
    }
    this.#relay.toOrigin(wire);
    return undefined;
  }

  #onCommand(command: ClientCommand, packet: Packet, wire: Buffer): 'retry' | undefined {
    this.#ledger.queries += 1;
    switch (command.kind) {
      case 'query':
        return this.#onQuery(command.sql, packet, wire);
      case 'stmtExecute':
        return this.#onExecute(command, packet, wire);
      case 'stmtPrepare': {
        // Its bare table names keep the current database: read it first if it may have changed.
        if (this.#databaseUnsure && this.#probeFirst()) return 'retry';
        const prepared: Prepared = {
          sql: command.sql,
          id: -1,
          params: -1,
          types: null,
          originTypes: null,
          longData: false,
          database: this.#database(),
          analysis: null,
          typesKey: '',
          keyPrefix: '',
          keyPrefixFor: null,
        };
        this.#lastPrepared = prepared;
        this.#send(wire, this.#pending('prepare', { prepare: prepared }));
        return undefined;
      }
      case 'stmtSendLongData': {
        const statement = this.#statement(command.statementId);
        if (statement !== null) statement.longData = true;
        this.#relay.toOrigin(wire);
        return undefined;
      }
      case 'stmtClose': {
        const statement = this.#statement(command.statementId);
        if (statement !== null) this.#statements.delete(statement.id);
        this.#relay.toOrigin(wire);
        return undefined;
      }
      case 'stmtReset': {
        const statement = this.#statement(command.statementId);
        if (statement !== null) statement.longData = false;
        this.#send(wire, this.#pending('status'));
        return undefined;
      }
      case 'stmtFetch':
        this.#send(wire, this.#pending('rows'));
        return undefined;
      case 'stmtBulkExecute': {
        const statement = this.#statement(command.statementId);
        const writes =
          statement === null
            ? 'all'
            : this.#writesOf(this.#analyze(statement.sql), statement.database);
        this.#noteEffect(statement === null ? null : this.#analyze(statement.sql));
        this.#uncacheable();
        this.#send(wire, this.#pending('result', { writes }));
        return undefined;
      }
      case 'initDb':
        (this.#key as SessionKey).note('taints');
        this.#databaseUnsure = true;
        this.#send(wire, this.#pending('status'));
        return undefined;
      case 'resetConnection':
        (this.#key as SessionKey).note('taints');
        this.#databaseUnsure = true;
        this.#send(wire, this.#pending('status', { resets: true }));
        return undefined;
      case 'changeUser':
        return this.#onChangeUser(command);
      case 'processKill':
        return this.#onKill(command.connectionId, false, wire);
      case 'quit':
        this.#ledger.endWith('client quit');
        this.#relay.toOrigin(wire);
        this.#flush();
        this.close();
        return undefined;
      case 'ping':
      case 'setOption':
      case 'debug':
        this.#send(wire, this.#pending('status'));
        return undefined;
      case 'statistics':
        this.#send(wire, this.#pending('single'));
        return undefined;
      case 'fieldList':
        this.#send(wire, this.#pending('fields'));
        return undefined;
      case 'processInfo':
        this.#send(wire, this.#pending('result'));
        return undefined;
      case 'other':
        // Replication and obsolete commands: the edge relays none of them.
        this.#answerHere(
          serialize.packet(
            1,
            serialize.errPacket({
              code: ER_UNKNOWN_COM_ERROR,
              sqlState: '08S01',
              message: `the edge does not relay command 0x${command.command.toString(16)}`,
            }),
          ),
        );
        return undefined;
    }
  }

  #onQuery(sql: string, packet: Packet, wire: Buffer): 'retry' | undefined {
    const access = this.#access as CacheAccess;
    if (access.cache.rules.neverCaches) {
      access.countUncacheable();
      const kill = KILL_STATEMENT.exec(sql);
      if (kill !== null) return this.#onKill(Number(kill[2]), killKind(kill[1]), wire);
      this.#unprobeable = true;
      this.#send(wire, this.#pending('result', { writes: 'all' }));
      return undefined;
    }
    const key = this.#key as SessionKey;
    const analysis = this.#analyze(sql);
    if (analysis.cacheable) {
      if (this.#probeFirst()) return 'retry';
      const policy = this.#readPolicy(sql, analysis);
      if (policy !== null) {
        return this.#miss(queryKey(key.id ?? '', packet.payload), analysis, policy, wire);
      }
    } else {
      const kill = KILL_STATEMENT.exec(sql);
      if (kill !== null) return this.#onKill(Number(kill[2]), killKind(kill[1]), wire);
    }
    this.#countTemplate(analysis);
    access.countUncacheable();
    this.#noteEffect(analysis);
    this.#send(wire, this.#pending('result', { writes: this.#writesOf(analysis) }));
    return undefined;
  }

  // A COM_QUERY's stored answer, served; false when there is none it may have.
  #queryHit(payload: Buffer): boolean {
    const access = this.#access as CacheAccess;
    const key = this.#key as SessionKey;
    if (access.cache.rules.neverCaches || !key.known || !this.#mayUseCache()) return false;
    const entry = access.lookup(queryKey(key.id ?? '', payload), this.#inTransaction);
    if (entry === undefined) return false;
    this.#serve(entry);
    return true;
  }

  // The hot path for a repeated EXECUTE, as #queryHit is for COM_QUERY: a plain one (no cursor, no
  // long data, its PREPARE answered) is looked up before it is decoded, with #onExecute's rules.
  // False sends it down the full path, which decides everything again.
  #executeHit(payload: Buffer): boolean {
    // Statement id (4 bytes), cursor flags (1), iteration count (4), then the parameters.
    if (payload.length < 10 || payload[5] !== 0) return false;
    const access = this.#access as CacheAccess;
    if (access.cache.rules.neverCaches || !(this.#key as SessionKey).known) return false;
    if (!this.#mayUseCache()) return false;
    const statement = this.#statement(payload.readUInt32LE(1));
    if (statement === null || statement.longData || statement.database === null) return false;
    if (!this.#analyzePrepared(statement).cacheable) return false;
    const parameters = payload.subarray(10);
    if (
      !this.#boundTypes(statement, parameters).originHas &&
      ((this.#login as AgreedLogin).capabilities & codes.CLIENT_QUERY_ATTRIBUTES) !== 0
    ) {
      return false;
    }
    const parameterKey = this.#parameterKey(statement, parameters);
    if (parameterKey === null) return false;
    const entry = access.lookup(this.#executeKey(statement, parameterKey), this.#inTransaction);
    if (entry === undefined) return false;
    this.#serve(entry);
    return true;
  }

  #countTemplate(analysis: MysqlAnalysis): void {
    (this.#access as CacheAccess).cache.stats.template(analysis.fingerprint, () =>
      analysis.template.slice(0, 500),
    );
  }

  #onExecute(
    command: Extract<ClientCommand, { kind: 'stmtExecute' }>,
    packet: Packet,
    wire: Buffer,
  ): 'retry' | undefined {
    const access = this.#access as CacheAccess;
    const statement = this.#statement(command.statementId);
    if (statement === null || access.cache.rules.neverCaches) {
      // A statement the edge did not see prepared: it may write anything. Caching off: its effects
      // are not followed (see #relayUncached).
      access.countUncacheable();
      if (statement === null) (this.#key as SessionKey).note('taints');
      else this.#unprobeable = true;
      this.#send(wire, this.#pending('result', { writes: 'all' }));
      return undefined;
    }
    const analysis = this.#analyzePrepared(statement);
    const bound = this.#boundTypes(statement, command.parameters);
    // With query attributes (MySQL 8) the layout carries names too and is not rewritten: an EXECUTE
    // whose types the origin lacks goes there instead of being served.
    const rewritable =
      ((this.#login as AgreedLogin).capabilities & codes.CLIENT_QUERY_ATTRIBUTES) === 0;
    const parameters = this.#parameterKey(statement, command.parameters);
    const longData = statement.longData;
    statement.longData = false;
    const cursor = command.flags !== 0;
    const key = this.#key as SessionKey;
    const database = statement.database;
    if (analysis.cacheable && parameters !== null && !longData && !cursor && database !== null) {
      if (key.known && this.#mayUseCache() && (bound.originHas || rewritable)) {
        const entry = access.lookup(this.#executeKey(statement, parameters), this.#inTransaction);
        if (entry !== undefined) return this.#serve(entry);
      }
      if (this.#probeFirst()) {
        statement.longData = longData;
        return 'retry';
      }
      const typed = this.#typedWire(statement, bound, command, packet, wire);
      if (typed === null) return undefined;
      const policy = this.#readPolicy(statement.sql, analysis, database);
      if (policy !== null) {
        // The origin has the types once the EXECUTE reaches it (a joined miss may not send it).
        const sent = () => {
          if (typed.types !== null) statement.originTypes = typed.types;
        };
        const missKey = this.#executeKey(statement, parameters);
        return this.#miss(missKey, analysis, policy, typed.wire, database, sent);
      }
      wire = typed.wire;
      if (typed.types !== null) statement.originTypes = typed.types;
    } else {
      const typed = this.#typedWire(statement, bound, command, packet, wire);
      if (typed === null) return undefined;
      wire = typed.wire;
      if (typed.types !== null) statement.originTypes = typed.types;
    }
    this.#countTemplate(analysis);
    access.countUncacheable();
    this.#noteEffect(analysis);
    this.#send(wire, this.#pending('result', { writes: this.#writesOf(analysis, database) }));
    return undefined;
  }

  // The types this EXECUTE sends (null: it leaves them out, or the layout is not known yet), and
  // whether the origin already has the types it is to be bound with (see Prepared.originTypes).
  #boundTypes(
    statement: Prepared,
    parameters: Buffer,
  ): { sent: Buffer | null; originHas: boolean } {
    if (statement.params === 0) return { sent: null, originHas: true };
    if (statement.params < 0) return { sent: null, originHas: false };
    const bitmap = (statement.params + 7) >> 3;
    if (parameters.length < bitmap + 1) return { sent: null, originHas: false };
    if (parameters[bitmap] !== 1) {
      const last = statement.types;
      return {
        sent: null,
        originHas: last !== null && statement.originTypes?.equals(last) === true,
      };
    }
    const sent = Buffer.from(parameters.subarray(bitmap + 1, bitmap + 1 + statement.params * 2));
    return { sent, originHas: statement.originTypes?.equals(sent) === true };
  }

  // The EXECUTE to send the origin: as the client sent it, or — when it leaves its types out and
  // the origin has other ones (an EXECUTE with them was served from the cache) — with the client's
  // last types put in. Null when that cannot be done (it would change how many 16 MiB pieces the
  // packet takes, which the answer's sequence ids follow): the client is answered error 1210, as
  // the origin would answer an EXECUTE it has no types for.
  #typedWire(
    statement: Prepared,
    bound: { sent: Buffer | null; originHas: boolean },
    command: Extract<ClientCommand, { kind: 'stmtExecute' }>,
    packet: Packet,
    wire: Buffer,
  ): { wire: Buffer; types: Buffer | null } | null {
    if (bound.sent !== null) return { wire, types: bound.sent };
    const types = statement.types;
    if (bound.originHas || statement.params <= 0 || types === null) return { wire, types: null };
    const parameters = command.parameters;
    const bitmap = (statement.params + 7) >> 3;
    const head = packet.payload.subarray(0, packet.payload.length - parameters.length);
    const payload = Buffer.concat([
      head,
      parameters.subarray(0, bitmap),
      Buffer.from([1]),
      types,
      parameters.subarray(bitmap + 1),
    ]);
    const pieces = (length: number) => Math.floor(length / codes.MAX_PACKET_PIECE_BYTES);
    if (pieces(payload.length) !== pieces(packet.payload.length)) {
      this.#answerHere(
        serialize.packet(
          packet.lastSequenceId + 1,
          serialize.errPacket({
            code: codes.ER_WRONG_ARGUMENTS,
            sqlState: 'HY000',
            message:
              'Incorrect arguments to mysqld_stmt_execute: send this EXECUTE again with its parameter types',
          }),
        ),
      );
      return null;
    }
    return { wire: serialize.packet(packet.sequenceId, payload), types };
  }

  // The parameter part of an EXECUTE's key: null bitmap, types (sent now, or last time) and values.
  // Null when the layout cannot be read yet (the statement's PREPARE is still unanswered).
  // With types bound ('B'), the parameter bytes hold the types (2 bytes each; MariaDB may send more
  // with MARIADB_CLIENT_EXTENDED_TYPE_INFO, inside the values then): the whole of them is keyed. An
  // EXECUTE without them ('U') is keyed by the last ones sent, whose length the key states, then
  // its parameter bytes. The bitmap's length is fixed by the statement, so the two never collide.
  #parameterKey(statement: Prepared, parameters: Buffer): string | null {
    if (statement.params < 0) return null;
    if (statement.params === 0) return '';
    const bitmap = (statement.params + 7) >> 3;
    if (parameters.length < bitmap + 1) return null;
    if (parameters[bitmap] === 1) {
      const types = parameters.subarray(bitmap + 1, bitmap + 1 + statement.params * 2);
      if (statement.types === null || !statement.types.equals(types)) {
        statement.types = Buffer.from(types);
        statement.typesKey = `U${types.length}:${latin1(types)}`;
      }
      return `B${latin1(parameters)}`;
    }
    if (statement.types === null) return null;
    return statement.typesKey + latin1(parameters);
  }

  // An EXECUTE's key: the session's key, the statement (database, and text with its length, so
  // that a NUL in it cannot run into the parameters), its parameters. The part before the
  // parameters is made once per statement and session key.
  #executeKey(statement: Prepared, parameters: string): string {
    const id = (this.#key as SessionKey).id ?? '';
    if (statement.keyPrefixFor !== id) {
      const { database, sql } = statement;
      statement.keyPrefix = requestKey(id, ['E', database ?? '', `${sql.length}:${sql}`, '']);
      statement.keyPrefixFor = id;
    }
    return statement.keyPrefix + parameters;
  }

  #statement(id: number): Prepared | null {
    if (id === LAST_PREPARED) return this.#lastPrepared;
    return this.#statements.get(id) ?? null;
  }

  #onChangeUser(command: Extract<ClientCommand, { kind: 'changeUser' }>): undefined {
    const login = this.#login as AgreedLogin;
    const separator = command.username.indexOf('-');
    const cacheId = separator > 0 ? command.username.slice(0, separator) : '';
    if (cacheId !== login.cacheId) {
      // Another cache would be another origin: a new connection, not a change of user.
      this.#answerHere(
        serialize.packet(
          1,
          serialize.errPacket({
            code: codes.ER_ACCESS_DENIED_ERROR,
            sqlState: '28000',
            message: `COM_CHANGE_USER must keep this connection's cache: connect as ${login.cacheId}-user`,
          }),
        ),
      );
      return undefined;
    }
    const user = command.username.slice(separator + 1);
    // As at login: the origin is asked with a plugin it does not have, so it switches to the user's
    // own with a fresh scramble, which the client answers.
    const payload = serialize.changeUser(
      {
        username: user,
        authResponse: Buffer.alloc(0),
        database: command.database,
        characterSet: command.characterSet ?? login.characterSet,
        authPluginName: RELAY_PLUGIN_NAME,
        connectAttributes: command.connectAttributes,
      },
      login.capabilities,
    );
    (this.#key as SessionKey).note('taints');
    this.#databaseUnsure = true;
    this.#changeUserGuard = new AuthRoundGuard(RELAY_PLUGIN_NAME, login);
    this.#clientFeeds = 'auth';
    this.#send(
      serialize.packet(0, payload),
      this.#pending('auth', { changeUser: user, resets: true }),
    );
    return undefined;
  }

  // KILL [QUERY|CONNECTION] n, or COM_PROCESS_KILL: n is the id the edge gave a client; the origin
  // knows its own connection by another. Ids the edge did not give go to the origin unchanged.
  #onKill(id: number, kind: 'QUERY' | 'CONNECTION' | false, wire: Buffer): undefined {
    this.#block();
    this.#runtime.cancelKeys
      .lookup(killKey(id))
      .then((target) => {
        if (this.#step === 'closed') return;
        const here = this.#target as OriginTarget;
        const login = this.#login as AgreedLogin;
        if (target === undefined) {
          this.#send(wire, this.#pending(kind === false ? 'status' : 'result'));
        } else if (
          target.cacheId !== login.cacheId ||
          target.hostname !== here.hostname ||
          target.port !== here.port ||
          target.connectionId === undefined
        ) {
          this.#answerHere(
            serialize.packet(
              1,
              serialize.errPacket({
                code: ER_NO_SUCH_THREAD,
                sqlState: 'HY000',
                message: `Unknown thread id: ${id}`,
              }),
            ),
          );
        } else if (kind === false) {
          const payload = Buffer.alloc(5);
          payload[0] = codes.COM_PROCESS_KILL;
          payload.writeUInt32LE(target.connectionId, 1);
          this.#send(serialize.packet(0, payload), this.#pending('status'));
        } else {
          const sql = `KILL ${kind === 'QUERY' ? 'QUERY ' : ''}${target.connectionId}`;
          this.#send(
            serialize.packet(0, Buffer.concat([Buffer.from([codes.COM_QUERY]), Buffer.from(sql)])),
            this.#pending('result'),
          );
        }
        this.#flush();
        this.#unblock();
      })
      .catch((error: unknown) => this.#fail(error));
    return undefined;
  }

  get #inTransaction(): boolean {
    return (this.#statusFlags & codes.SERVER_STATUS_IN_TRANS) !== 0;
  }

  #analyzePrepared(statement: Prepared): MysqlAnalysis {
    const flags =
      this.#statusFlags &
      (codes.SERVER_STATUS_NO_BACKSLASH_ESCAPES | codes.SERVER_STATUS_ANSI_QUOTES);
    if (statement.analysis?.flags !== flags) {
      statement.analysis = { flags, analysis: this.#analyze(statement.sql) };
    }
    return statement.analysis.analysis;
  }

  #analyze(sql: string): MysqlAnalysis {
    const flags = this.#statusFlags;
    return this.#runtime.mysqlMemo.analyze(sql, {
      noBackslashEscapes: (flags & codes.SERVER_STATUS_NO_BACKSLASH_ESCAPES) !== 0,
      ansiQuotes: (flags & codes.SERVER_STATUS_ANSI_QUOTES) !== 0,
    });
  }

  // Whether reads may be served or stored now: not behind a command whose effect on the session's
  // state or transaction the edge will only know from its answer, nor inside a transaction that wrote.
  #mayUseCache(): boolean {
    if (this.#unprobeable || this.#key?.known !== true || this.#probing) return false;
    if ((this.#access as CacheAccess).written && this.#inTransaction) return false;
    for (const pending of this.#queue) {
      if (pending.local === null && pending.capture === null && !pending.waiting) return false;
    }
    return true;
  }

  #readPolicy(sql: string, analysis: MysqlAnalysis, database = this.#database()) {
    if (!this.#mayUseCache()) return null;
    return (this.#access as CacheAccess).policy(
      sql,
      {
        cacheable: analysis.cacheable,
        fingerprint: analysis.fingerprint,
        reads: this.#reads(analysis, database),
      },
      this.#inTransaction,
    );
  }

  // Before a cacheable read in a session whose state may have changed unseen, the state is read
  // (once, right before the read, so that what a statement leaves behind for the next one —
  // ROW_COUNT(), warnings — is never disturbed). True: wait for it, then handle the read again.
  #probeFirst(): boolean {
    const key = this.#key as SessionKey;
    if (key.known || this.#unprobeable) return false;
    // Inside a transaction that wrote nothing is served or stored: the probe can wait for its end.
    if ((this.#access as CacheAccess).written && this.#inTransaction) return false;
    if (this.#probing) {
      this.#block();
      return true;
    }
    if (this.#queue.some((pending) => pending.local === null && pending.capture === null)) {
      // Commands in flight may change the state again: read it once they are answered.
      this.#awaitQueue();
      return true;
    }
    const mark = key.probeDue();
    if (mark === null) return false;
    const login = this.#login as AgreedLogin;
    const sql = stateProbeSql(login.originMariadb ? 'mariadb' : 'mysql');
    this.#probing = true;
    const pending = this.#pending('result');
    pending.probe = { mark, rows: [] };
    this.#send(
      serialize.packet(0, Buffer.concat([Buffer.from([codes.COM_QUERY]), Buffer.from(sql)])),
      pending,
    );
    this.#block();
    return true;
  }

  #awaitingQueue = false;

  #awaitQueue(): void {
    this.#awaitingQueue = true;
    this.#block();
  }

  #noteEffect(analysis: MysqlAnalysis | null): void {
    const session = analysis === null ? 'unknown' : analysis.session;
    // Every write taints too: its triggers run code, which may SET session variables.
    const writes = analysis === null || analysis.writes === 'all' || analysis.writes.length > 0;
    if (session !== 'none' || writes) (this.#key as SessionKey).note('taints');
    if (analysis?.temporaryTable === true) this.#private = true;
    if (analysis === null || mayChangeDatabase(analysis)) this.#databaseUnsure = true;
  }

  // Written tables as `database.table` (lower case: MySQL's names may be case-sensitive, and a
  // needless invalidation is harmless where a missed one is not).
  #writesOf(analysis: MysqlAnalysis, database = this.#database()): string[] | 'all' {
    if (analysis.writes === 'all') return 'all';
    if (analysis.writes.length === 0) return [];
    if (database === null && analysis.writes.some((name) => !name.includes('.'))) return 'all';
    return analysis.writes.map((name) =>
      (name.includes('.') ? name : `${database}.${name}`).toLowerCase(),
    );
  }

  #reads(analysis: MysqlAnalysis, database = this.#database()) {
    return analysis.reads.map((table) => ({
      schema: table.schema ?? database ?? '',
      name: table.name,
    }));
  }

  // The current database, as the last probe read it (else the one the client logged in to); null
  // after USE, COM_INIT_DB… until a probe reads it again.
  #database(): string | null {
    if (this.#databaseUnsure) return null;
    return this.#currentDatabase ?? this.#login?.database ?? '';
  }

  #currentDatabase: string | null = null;
  // The current database may have changed since the last probe read it.
  #databaseUnsure = false;

  #serve(entry: CacheEntry): undefined {
    (this.#access as CacheAccess).countHit(entry, this.#arrivedAt);
    if (this.#queue.length === 0) {
      this.#relay.push(this.#hitBytes(entry));
      return undefined;
    }
    const pending = this.#pending('result');
    pending.reader = null;
    pending.local = { entry };
    this.#queue.push(pending);
    this.#flushLocal();
    return undefined;
  }

  // A stored answer with the session's own transaction status in its OK/EOF packets.
  #hitBytes(entry: CacheEntry): Buffer {
    const inTransaction = this.#inTransaction;
    const stored = entry.response;
    let copy: Buffer | null = null;
    for (const offset of entry.statusOffsets) {
      const flags = stored.readUInt16LE(offset);
      const wanted = inTransaction
        ? flags | codes.SERVER_STATUS_IN_TRANS
        : flags & ~codes.SERVER_STATUS_IN_TRANS;
      if (wanted === flags) continue;
      copy ??= Buffer.from(stored);
      copy.writeUInt16LE(wanted, offset);
    }
    return copy ?? stored;
  }

  #miss(
    key: string,
    analysis: MysqlAnalysis,
    policy: NonNullable<ReturnType<CacheAccess['policy']>>,
    wire: Buffer,
    database = this.#database(),
    sent: () => void = () => undefined,
  ): undefined {
    const access = this.#access as CacheAccess;
    this.#countTemplate(analysis);
    const tables = [
      ...new Set(this.#reads(analysis, database).map((t) => `${t.schema}.${t.name}`.toLowerCase())),
    ];
    // Inside a transaction the origin answers from the transaction's snapshot (REPEATABLE READ),
    // which may be older than the epoch the read is asked at: it is stored as read when the
    // transaction began (CacheAccess.sending), and neither joins nor is joined by other sessions'.
    const snapshot = this.#inTransaction;
    const sharedText = (this.#key as SessionKey).sharedText;
    const start = access.startMiss({
      key,
      tables,
      fingerprint: analysis.fingerprint,
      policy,
      coalesce: !snapshot,
      // The second level only outside transactions, keyed by the same parts on every node.
      shared:
        snapshot || sharedText === null
          ? null
          : { protocol: 'mysql', key: () => sharedText + key.slice(key.indexOf('\u0000')) },
    });
    if (start.kind === 'lead') {
      const pending = this.#pending('result');
      pending.capture = start.capture;
      this.#send(wire, pending);
      sent();
      return undefined;
    }
    const pending = this.#pending('result');
    pending.reader = null;
    pending.waiting = true;
    this.#queue.push(pending);
    this.#block();
    access
      .follow(
        start,
        this.#arrivedAt,
        () => this.#step === 'closed',
        (followed) => {
          pending.waiting = false;
          if (followed.kind === 'hit') {
            pending.local = { entry: followed.entry };
          } else {
            // Asked of the origin after all, in order: stored when it leads (the second level had
            // nothing), else the leader's answer could not be stored and this one is not either.
            if (followed.kind === 'lead') pending.capture = followed.capture;
            pending.reader = new ResponseReader('result', this.#deprecateEof);
            this.#relay.toOrigin(wire);
            pending.sentEpoch = access.sending();
            sent();
          }
          this.#flushLocal();
          this.#flush();
          this.#unblock();
        },
      )
      .catch((error: unknown) => this.#fail(error));
    return undefined;
  }

  #uncacheable(): void {
    (this.#access as CacheAccess).countUncacheable();
  }

  get #deprecateEof(): boolean {
    return ((this.#login?.capabilities ?? 0) & codes.CLIENT_DEPRECATE_EOF) !== 0;
  }

  #pending(
    shape: ResponseShape,
    fields: Partial<Pick<Pending, 'writes' | 'prepare' | 'changeUser' | 'resets'>> = {},
  ): Pending {
    return {
      reader: new ResponseReader(shape, this.#deprecateEof),
      local: null,
      waiting: false,
      capture: null,
      packetStarts: [],
      writes: fields.writes ?? null,
      sentEpoch: null,
      probe: null,
      prepare: fields.prepare ?? null,
      changeUser: fields.changeUser ?? null,
      resets: fields.resets ?? false,
    };
  }

  #send(wire: Buffer, pending: Pending): void {
    this.#queue.push(pending);
    this.#relay.toOrigin(wire);
    pending.sentEpoch = this.#access?.sending() ?? null;
  }

  #answerHere(bytes: Buffer): void {
    const pending = this.#pending('single');
    pending.reader = null;
    pending.local = { bytes };
    this.#queue.push(pending);
    this.#flushLocal();
  }

  #flushLocal(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Pending;
      if (head.local === null) break;
      this.#queue.shift();
      this.#relay.push('entry' in head.local ? this.#hitBytes(head.local.entry) : head.local.bytes);
    }
    this.#queueMoved();
  }

  #queueMoved(): void {
    if (!this.#awaitingQueue) return;
    if (this.#queue.some((pending) => pending.local === null && pending.capture === null)) return;
    this.#awaitingQueue = false;
    queueMicrotask(() => this.#unblock());
  }

  // ---- origin → client ----

  #onOriginData(chunk: Buffer): void {
    if (this.#step === 'closed') return;
    try {
      this.#originParser.parse(chunk, (packet) => {
        if (this.#step === 'login' || this.#step === 'connecting') {
          this.#act(this.#handshake.onOriginPacket(packet));
          return undefined;
        }
        this.#onOriginPacket(packet, chunk);
        return undefined;
      });
      this.#flush();
    } catch (error) {
      this.#fail(error);
    }
    this.#endIfDrained();
  }

  #onOriginPacket(packet: Packet, chunk: Buffer): void {
    const pending = this.#queue[0];
    if (pending === undefined || pending.reader === null) {
      throw new ProtocolError('the origin sent a packet no command asked for');
    }
    if (pending.changeUser !== null) {
      const refusal = (this.#changeUserGuard as AuthRoundGuard).check(packet.payload);
      if (refusal !== null) return this.#refuse(codes.ER_ACCESS_DENIED_ERROR, '28000', refusal);
    }
    const reader = pending.reader;
    const payload = packet.payload;
    const step = reader.next(payload);
    if (pending.probe !== null) {
      // The probe's rows are the only text rows with two columns after its definitions: the
      // reader's state says which packets are rows only by position, so rows are taken as the
      // packets between the column EOF and the final one.
      pending.probe.rows.push(payload);
    } else if (pending.capture === null && packet.chunkOffset >= 0) {
      const start = packet.chunkOffset;
      this.#relay.forward(chunk, start, start + codes.PACKET_HEADER_BYTES + payload.length);
    } else {
      const wire = wireBytes(packet, chunk);
      if (pending.capture !== null) {
        pending.packetStarts.push(pending.capture.bytes);
        (this.#access as CacheAccess).append(pending.capture, wire);
      }
      this.#relay.push(wire);
    }
    if (step === 'infile') {
      this.#clientFeeds = 'infile';
      return;
    }
    if (step === 'done') this.#complete(pending);
  }

  #complete(pending: Pending): void {
    this.#queue.shift();
    const reader = pending.reader as ResponseReader;
    if (reader.statusFlags >= 0) this.#statusFlags = reader.statusFlags;
    const access = this.#access as CacheAccess;
    access.answered(!this.#inTransaction, this.#queue);
    if (pending.probe !== null) return this.#probed(pending, reader);
    if (pending.prepare !== null && reader.prepared !== null) {
      pending.prepare.id = reader.prepared.statementId;
      pending.prepare.params = reader.prepared.params;
      this.#statements.set(pending.prepare.id, pending.prepare);
    }
    if (pending.changeUser !== null) {
      this.#clientFeeds = 'commands';
      if (!reader.failed) this.#changedUser(pending.changeUser);
    }
    if (pending.resets && !reader.failed) {
      this.#statements.clear();
      this.#lastPrepared = null;
      access.discardWrites();
    }
    // Even a failed statement may have written before it failed (a multi-statement text, a
    // procedure): its writes count.
    if (pending.writes !== null) access.noteWrites(pending.writes);
    if (!this.#inTransaction && access.written) this.#relay.holdFor(access.commitWrites());
    const capture = pending.capture;
    if (capture !== null) {
      const keep =
        !reader.failed && reader.hasResultSet && (!this.#inTransaction || !access.written);
      const response = keep ? Buffer.concat(capture.pieces) : null;
      access.finishMiss(capture, response, {
        statusOffsets: keep ? statusOffsets(reader, pending.packetStarts) : [],
      });
    }
    this.#flushLocal();
  }

  #changedUser(user: string): void {
    const login = this.#login as AgreedLogin;
    this.#login = { ...login, originUser: user };
    this.#key = new SessionKey({
      cacheId: login.cacheId,
      database: login.database ?? '',
      user,
      startupSettings: new Map([
        ['character_set', String(login.characterSet)],
        ['capabilities', String(login.capabilities)],
        ['mariadb_capabilities', String(login.mariadbCapabilities)],
      ]),
    });
    this.#key.note('taints');
  }

  #probed(pending: Pending, reader: ResponseReader): void {
    this.#probing = false;
    const probe = pending.probe as NonNullable<Pending['probe']>;
    const key = this.#key as SessionKey;
    if (reader.failed || !reader.hasResultSet) {
      // The origin will not tell this session's state: it is served and stored nothing.
      this.#unprobeable = true;
      this.#runtime.logger.warn(
        { cacheId: this.cacheId },
        'the MySQL state probe failed: this session is relayed without caching',
      );
    } else {
      const login = this.#login as AgreedLogin;
      // Packets: column count, 2 definitions, [EOF], rows…, final EOF/OK.
      const skip = this.#deprecateEof ? 3 : 4;
      const rows = probe.rows.slice(skip, -1);
      const state = { ...readStateRows(rows, login.originUser), private: this.#private };
      this.#currentDatabase = state.settings.get('.database') ?? null;
      this.#databaseUnsure = false;
      key.learn(probe.mark, state, !this.#inTransaction);
    }
    this.#flushLocal();
    queueMicrotask(() => this.#unblock());
  }

  // ---- plumbing ----

  #block(): void {
    this.#relay.block();
  }

  #unblock(): void {
    if (this.#step === 'closed') return;
    this.#relay.unblock();
    try {
      this.#drainIncoming();
      this.#flush();
    } catch (error) {
      this.#fail(error);
    }
  }

  #flush(): void {
    this.#relay.flush();
  }

  #refuse(code: number, sqlState: string, message: string): void {
    if (this.#step === 'closed') return;
    this.#ledger.refused(this.#step === 'ready', code, message);
    this.#flush();
    // Mid-exchange the client expects the next sequence id; at rest a new exchange's 1 is right.
    endSocket(
      this.#relay.client,
      serialize.packet(1, serialize.errPacket({ code, sqlState, message })),
    );
    this.#teardown();
  }

  #fail(error: unknown): void {
    if (this.#step === 'closed') return;
    if (error instanceof ProtocolError) {
      return this.#refuse(error.errno, error.sqlState, error.message);
    }
    this.#runtime.logger.error({ err: error, cacheId: this.cacheId }, 'MySQL edge session failed');
    this.#refuse(
      codes.ER_MALFORMED_PACKET,
      'HY000',
      'internal error in the edge; the session was closed',
    );
  }

  #originGone(): void {
    if (this.#step === 'closed') return;
    if (this.#step !== 'ready') {
      return this.#refuse(
        ER_CONNECTION_ERROR,
        'HY000',
        'the origin database closed the connection during login',
      );
    }
    this.#refuse(ER_SERVER_SHUTDOWN, '08S01', 'the origin database closed the connection');
  }
}

// What an ended session says to its origin when commands it sent may still commit (closeOrigin).
const QUIT = serialize.packet(0, Buffer.from([codes.COM_QUIT]));

/** The cancel directory's key for an edge connection id (KILL through any thread of the edge). */
export function killKey(connectionId: number): string {
  return `mysql:${connectionId}`;
}

// USE, or a text we cannot read, may change the current database.
function mayChangeDatabase(analysis: MysqlAnalysis): boolean {
  if (analysis.session === 'none') return false;
  return analysis.reason === 'the text does not parse' || /\bUSE\b/i.test(analysis.template);
}

// A stream that yields `first`, then what `socket` receives, for a TLS layer to read: bytes the
// edge already took off the socket cannot be given back to it.
function prepend(first: Buffer, socket: net.Socket): Duplex {
  const stream = new Duplex({
    read: () => socket.resume(),
    write: (bytes: Buffer, _encoding, done) => socket.write(bytes, done),
    final: (done) => socket.end(done),
    destroy: (error, done) => {
      socket.destroy();
      done(error);
    },
  });
  stream.push(first);
  socket.on('data', (bytes: Buffer) => {
    if (!stream.push(bytes)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('error', (error) => stream.destroy(error));
  socket.on('close', () => stream.destroy());
  return stream;
}

function latin1(bytes: Buffer): string {
  return bytes.toString('latin1');
}

// KILL's own word, in any case: QUERY, or CONNECTION (also when left out).
function killKind(word: string | undefined): 'QUERY' | 'CONNECTION' {
  return word?.toUpperCase() === 'QUERY' ? 'QUERY' : 'CONNECTION';
}

// Whether a COM_QUERY's text may start with KILL (so it must be decoded): the first byte after ASCII
// white space is a K, or outside ASCII.
function mayBeKill(payload: Buffer): boolean {
  for (let i = 1; i < payload.length; i += 1) {
    const byte = payload[i] as number;
    if (byte === 0x20 || (byte >= 0x09 && byte <= 0x0d)) continue;
    return byte === 0x4b || byte === 0x6b || byte >= 0x80;
  }
  return false;
}

// A COM_QUERY's key: the session's key and the statement's bytes (as requestKey would join them).
function queryKey(sessionKeyId: string, payload: Buffer): string {
  return `${sessionKeyId}\u0000Q\u0000${latin1(payload)}`;
}

// A packet's bytes on the wire: a view of the chunk when it arrived whole in it, else rebuilt.
function wireBytes(packet: Packet, chunk: Buffer): Buffer {
  const start = packet.chunkOffset;
  if (start >= 0) {
    return chunk.subarray(start, start + codes.PACKET_HEADER_BYTES + packet.payload.length);
  }
  return serialize.packet(packet.sequenceId, packet.payload);
}

// Where the status flags sit in the stored answer (packet start + header + offset in its payload).
function statusOffsets(reader: ResponseReader, packetStarts: readonly number[]): number[] {
  return reader.statusAt.map(
    ({ packet, offset }) => (packetStarts[packet] ?? 0) + codes.PACKET_HEADER_BYTES + offset,
  );
}
