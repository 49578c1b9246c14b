// One client connection through the Postgres edge: negotiates TLS, routes by the cache id in
// application_name, relays authentication to the origin, then relays queries, answering cacheable
// reads from the result store and invalidating on writes. State is one `step` union.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { CacheEntry } from '../../cache/result-cache.ts';
import type { CachePolicy } from '../../control/config.ts';
import type { CacheAccess, Capture } from '../../core/cache-access.ts';
import { routeTo } from '../../core/route.ts';
import { Relay } from '../../core/relay.ts';
import { SessionLedger, type SessionIdentity } from '../../core/session-ledger.ts';
import {
  PG_ADMIN_SHUTDOWN,
  PG_END_MESSAGES,
  type ControlledSession,
  type EndCause,
  type SessionInfo,
} from '../../core/session-control.ts';
import type { CacheState, EdgeRuntime } from '../../runtime.ts';
import { requestKey, SessionKey, type SessionEffect } from '../../core/session-key.ts';
import { endSocket } from '../../net/end-socket.ts';
import {
  connectOrigin,
  OriginError,
  sendCancel,
  type OriginTarget,
} from '../../upstream/origin.ts';
import * as codes from '../protocol/codes.ts';
import type {
  FrontendMessage,
  QueryMessage,
  StartupMessage,
  TransactionStatus,
} from '../protocol/messages.ts';
import { FrontendParser } from '../protocol/parser.ts';
import { ProtocolError } from '../protocol/protocol-error.ts';
import * as serialize from '../protocol/serializer.ts';
import type { Analysis } from '../sql/analyze.ts';
import { carryForward } from '../sql/function-effects.ts';
import { BackendFrames, type BackendFrameSink } from './backend-frames.ts';
import { forwardCancel } from './forward-cancel.ts';
import {
  addStatementWrites,
  addWrites,
  decideAll,
  markBlock,
  newExchange,
  type Exchange,
  type Extended,
  type Learning,
  type Statement,
} from './exchange.ts';
import {
  bindParametersOffset,
  endsSession,
  errorCode,
  parseTypes,
  saslMechanisms,
} from './frame-fields.ts';
import { readStartup } from './startup-parameters.ts';
import { PreparedStatements } from './statements.ts';
import {
  readCodeHint,
  readProbeFunctions,
  readStateProbe,
  stateProbe,
  type ProbedFunctions,
} from './state-probe.ts';
import { normalizeTemplate } from './statement-memo.ts';

export interface SessionOptions {
  runtime: EdgeRuntime;
  tls: tls.SecureContext | null;
  /** Startup and authentication must be over within this, or the client is refused and closed. */
  loginTimeoutMs: number;
  /** Unique in the edge (see SessionIds): how an operator names the session. */
  id: number;
  onClose: (session: PgSession) => void;
}

type Step =
  | { kind: 'startup' }
  | { kind: 'connecting' }
  | { kind: 'authenticating' }
  | { kind: 'ready' }
  | { kind: 'closed' };

// SQLSTATEs of errors the edge itself raises.
const CONNECTION_REJECTED = '08004'; // sqlserver_rejected_establishment_of_sqlconnection
const CANNOT_CONNECT = '08001'; // sqlclient_unable_to_establish_sqlconnection
const FEATURE_NOT_SUPPORTED = '0A000';
// A login past its deadline: PgBouncer's client_login_timeout answer (08P01 protocol_violation).
const LOGIN_TIMEOUT = '08P01';

// A unit of extended-protocol messages is held until its Sync (so it can be answered from cache)
// unless it grows past this; then it is forwarded as it comes.
const MAX_HELD_UNIT_BYTES = 256 * 1024;

const RFQ: Record<TransactionStatus, Buffer> = {
  I: serialize.readyForQuery('I'),
  T: serialize.readyForQuery('T'),
  E: serialize.readyForQuery('E'),
};
const PARSE_COMPLETE = serialize.parseComplete();
const BIND_COMPLETE = serialize.bindComplete();

// Reported parameters that cannot change a query's result.
const IRRELEVANT_REPORTS = new Set(['application_name', 'server_version', 'in_hot_standby']);

export class PgSession implements BackendFrameSink, ControlledSession {
  readonly id: string;
  readonly #runtime: EdgeRuntime;
  readonly #tls: tls.SecureContext | null;
  readonly #onClose: (session: PgSession) => void;
  #step: Step = { kind: 'startup' };
  readonly #parser = new FrontendParser();
  readonly #frames = new BackendFrames();
  #incoming: FrontendMessage[] = [];
  #incomingIndex = 0;
  // The origin sent a FATAL (or PANIC) error: when it then closes, the client has its reason.
  #originSaidWhy = false;
  readonly #ledger: SessionLedger;
  readonly #relay: Relay;
  #user: string | null = null;
  #database: string | null = null;

  // Routing and the cache key.
  #cache: CacheState | null = null;
  #access: CacheAccess | null = null;
  #target: OriginTarget | null = null;
  #cancelKey: string | null = null;
  #key: SessionKey | null = null;
  // The origin database, for what is learned about its code.
  #originScope = '';
  #probing = 0;
  #standardStrings = true;
  #unanalyzed = false;
  #arrivedAt = 0;

  // Protocol state.
  readonly #queue: Exchange[] = [];
  #unit: FrontendMessage[] = [];
  #unitBytes = 0;
  #unitExchange: Exchange | null = null;
  #txStatus: TransactionStatus = 'I';
  readonly #statements = new PreparedStatements();

  constructor(socket: net.Socket, options: SessionOptions) {
    this.id = String(options.id);
    this.#runtime = options.runtime;
    this.#tls = options.tls;
    this.#onClose = options.onClose;
    this.#ledger = new SessionLedger('postgres', socket, options.loginTimeoutMs, (ms) =>
      this.#loginExpired(ms),
    );
    this.#relay = new Relay(socket, {
      onWritten: (bytes) => (this.#ledger.bytesOut += bytes),
      onReleased: () => this.#endIfDrained(),
    });
    this.#attachClient(socket);
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
      user: this.#user,
      database: this.#database,
    };
  }

  #phase(): { loggingIn: boolean; quiet: boolean; inTransaction: boolean } {
    const step = this.#step.kind;
    return {
      loggingIn: step !== 'ready' && step !== 'closed',
      quiet: this.#quiet(),
      inTransaction: this.#txStatus !== 'I',
    };
  }

  drain(): void {
    this.#ledger.draining = true;
    this.#endIfDrained();
  }

  end(cause: EndCause): void {
    if (this.#step.kind === 'closed') return;
    this.#ledger.endFor(cause);
    this.#cancelInFlight();
    this.#refuse(PG_ADMIN_SHUTDOWN, PG_END_MESSAGES[cause]);
  }

  // Nothing sent that is not answered, nothing received that is not handled.
  #quiet(): boolean {
    return (
      this.#queue.length === 0 &&
      this.#unit.length === 0 &&
      this.#unitExchange === null &&
      this.#incomingIndex >= this.#incoming.length &&
      this.#parser.bufferedBytes === 0 &&
      this.#relay.idle &&
      this.#probing === 0
    );
  }

  // While draining: a session still logging in, or idle outside a transaction, ends now.
  #endIfDrained(): void {
    if (this.#step.kind !== 'closed' && this.#ledger.drainsNow(this.#phase())) this.end('shutdown');
  }

  /** Ends the session: both sockets are destroyed. */
  close(): void {
    if (this.#step.kind === 'closed') return;
    this.#relay.client.destroy();
    this.#teardown();
  }

  #teardown(): void {
    this.#step = { kind: 'closed' };
    this.#relay.close();
    this.#ledger.ended(this.#runtime.sessions, this.#who());
    if (this.#cancelKey !== null) this.#runtime.cancelKeys.forget(this.#cancelKey);
    const access = this.#access;
    let inFlight = false;
    for (const exchange of this.#queue) {
      // Sessions waiting on a miss this one leads must not wait forever.
      if (exchange.capture !== null) access?.abandonMiss(exchange.capture);
      if (exchange.local !== null) continue;
      inFlight = true;
      // Functions whose writes no probe will tell count as writing everything.
      const unknown = exchange.calls !== null || exchange.learning?.decided === false;
      const writes = unknown ? 'all' : exchange.writes;
      if (writes !== null) access?.noteWrites(writes);
    }
    this.#queue.length = 0;
    // A write sent and not answered may still commit (an autocommit statement, a COMMIT): its
    // tables are invalidated once the origin has run it and closed the connection.
    this.#relay.closeOrigin(
      serialize.terminate(),
      access !== null && access.written && inFlight ? () => void access.commitWrites() : null,
    );
    this.#onClose(this);
  }

  // A client that has not finished startup and authentication by the deadline holds a descriptor
  // (and maybe an origin connection) for nothing: refuse it; the teardown closes the origin too.
  #loginExpired(timeoutMs: number): void {
    if (this.#step.kind === 'ready' || this.#step.kind === 'closed') return;
    this.#refuse(
      LOGIN_TIMEOUT,
      `client_login_timeout: startup and authentication did not finish within ${timeoutMs / 1000} s`,
    );
  }

  #attachClient(socket: net.Socket): void {
    this.#relay.attachClient(socket);
    socket.on('data', (chunk: Buffer) => this.#onClientData(chunk));
    socket.on('error', () => this.#clientGone());
    socket.on('close', () => this.#clientGone());
  }

  // The origin backend would run a query whose client is gone to its end (it notices only when it
  // writes): cancel it, as the client could have, then close.
  #clientGone(): void {
    if (this.#step.kind === 'closed') return;
    this.#ledger.endWith('client closed');
    this.#cancelInFlight();
    this.close();
  }

  #cancelInFlight(): void {
    const inFlight =
      this.#unitExchange !== null || this.#queue.some((e) => e.local === null && !e.waiting);
    if (inFlight && this.#cancelKey !== null && this.#target !== null) {
      // To the address this session's origin connection reached, when the socket knows it: no new
      // lookup, no other server behind the same name.
      const origin = this.#relay.origin;
      sendCancel(
        {
          hostname: origin?.remoteAddress ?? this.#target.hostname,
          port: origin?.remotePort ?? this.#target.port,
        },
        serialize.cancelRequestWithKey(Buffer.from(this.#cancelKey, 'hex')),
      );
    }
  }

  // ---- client → edge ----

  #onClientData(chunk: Buffer): void {
    if (this.#step.kind === 'closed') return;
    this.#ledger.bytesIn += chunk.length;
    this.#arrivedAt = performance.now();
    try {
      this.#parser.parse(chunk, (message) => this.#incoming.push(message));
      this.#drainIncoming();
      this.#relay.flush();
    } catch (error) {
      this.#fail(error);
    }
  }

  #drainIncoming(): void {
    while (!this.#relay.blocked && this.#incomingIndex < this.#incoming.length) {
      const message = this.#incoming[this.#incomingIndex] as FrontendMessage;
      this.#incomingIndex += 1;
      switch (this.#step.kind) {
        case 'startup':
          this.#onStartupMessage(message);
          break;
        case 'authenticating':
          if (message.kind !== 'authenticationResponse') {
            throw new ProtocolError(`expected a password or SASL message, got ${message.kind}`);
          }
          this.#relay.toOrigin(message.frame);
          break;
        case 'ready':
          this.#onQueryMessage(message);
          break;
        case 'connecting':
        case 'closed':
          return;
      }
    }
    if (this.#incomingIndex === this.#incoming.length) {
      this.#incoming = [];
      this.#incomingIndex = 0;
    }
  }

  #onStartupMessage(message: FrontendMessage): void {
    switch (message.kind) {
      case 'sslRequest':
        return this.#onSslRequest();
      case 'gssEncRequest':
        this.#relay.client.write(serialize.sslResponse(false));
        return;
      case 'cancelRequest':
        forwardCancel(this.#runtime, message.frame);
        return this.close();
      case 'terminate':
        // The client gave up before it began: Postgres closes without a word, and so do we.
        return this.close();
      case 'startupMessage':
        this.#step = { kind: 'connecting' };
        this.#block();
        this.#connect(message).catch((error: unknown) => this.#fail(error));
        return;
      default:
        throw new ProtocolError(`unexpected ${message.kind} before the startup message`);
    }
  }

  #onSslRequest(): void {
    if (this.#tls === null || this.#relay.client instanceof tls.TLSSocket) {
      this.#relay.client.write(serialize.sslResponse(false));
      return;
    }
    // Bytes sent before encryption is set up could be injected by a man in the middle.
    if (this.#parser.bufferedBytes > 0 || this.#incomingIndex < this.#incoming.length) {
      throw new ProtocolError('data arrived after SSLRequest before the TLS handshake');
    }
    this.#relay.client.write(serialize.sslResponse(true));
    this.#attachClient(this.#relay.startClientTls(this.#tls));
  }

  async #connect(startup: StartupMessage): Promise<void> {
    const parameters = startup.parameters;
    const major = startup.protocolVersion >> 16;
    if (major !== 3) {
      return this.#refuse(
        FEATURE_NOT_SUPPORTED,
        `unsupported frontend protocol ${major}: the edge speaks 3`,
      );
    }
    if (parameters.has('replication')) {
      return this.#refuse(FEATURE_NOT_SUPPORTED, 'the edge does not relay replication connections');
    }
    const { cacheId, forwarded, identity } = readStartup(parameters);
    this.#askedCache = cacheId === '' ? null : cacheId.slice(0, 64);
    this.#user = identity.user;
    this.#database = identity.database;
    if (cacheId === '') {
      return this.#refuse(
        CONNECTION_REJECTED,
        'no cache id: connect with application_name set to the cache id (as in the connection string Edgegate gave you)',
      );
    }
    // psql and most drivers send their own name by default: say what the value should be.
    const route = await routeTo(
      this.#runtime,
      cacheId,
      ['postgres'],
      (shown) =>
        `application_name "${shown}" is not a cache id: set application_name to the cache id (cch_…), as in the connection string Edgegate gave you`,
    );
    if (!route.ok) return this.#refuse(CONNECTION_REJECTED, route.message);
    ({ cache: this.#cache, access: this.#access, target: this.#target } = route);
    let origin: net.Socket;
    try {
      origin = await connectOrigin(route.target, this.#runtime.guard);
    } catch (error) {
      if (error instanceof OriginError) return this.#refuse(CANNOT_CONNECT, error.message);
      throw error;
    }
    if (this.#step.kind === 'closed') {
      origin.destroy();
      return;
    }
    this.#relay.attachOrigin(origin);
    origin.on('data', (chunk: Buffer) => this.#onOriginData(chunk));
    origin.on('error', () => this.#originGone());
    origin.on('close', () => this.#originGone());
    this.#key = new SessionKey(identity, IRRELEVANT_REPORTS);
    const { hostname, port } = route.target;
    this.#originScope = [cacheId, hostname, port, identity.database].join('\u0000');
    this.#step = { kind: 'authenticating' };
    origin.write(serialize.startupMessage(forwarded, startup.protocolVersion));
    this.#unblock();
  }

  #askedCache: string | null = null;

  #refuse(code: string, message: string): void {
    if (this.#step.kind === 'closed') return;
    this.#ledger.refused(this.#step.kind === 'ready', code, message);
    this.#relay.flush();
    endSocket(this.#relay.client, serialize.errorResponse({ severity: 'FATAL', code, message }));
    this.#teardown();
  }

  #fail(error: unknown): void {
    if (this.#step.kind === 'closed') return;
    if (error instanceof ProtocolError) {
      this.#refuse(error.code, error.message);
      return;
    }
    this.#runtime.logger.error({ err: error, cacheId: this.cacheId }, 'edge session failed');
    this.#refuse('XX000', 'internal error in the edge; the session was closed');
  }

  #block(): void {
    this.#relay.block();
  }

  #unblock(): void {
    this.#relay.unblock();
    try {
      this.#drainIncoming();
      this.#relay.flush();
    } catch (error) {
      this.#fail(error);
    }
  }

  // ---- query phase: client messages ----

  #onQueryMessage(message: FrontendMessage): void {
    if (this.#probing > 0 && this.#unitExchange === null && this.#readsCacheably(message)) {
      // The state is being read: a read that waits for it may still be served or stored.
      this.#incomingIndex -= 1;
      return this.#block();
    }
    switch (message.kind) {
      case 'query':
        this.#ledger.queries += 1;
        if (this.#joinsUnit(message)) return;
        return this.#onQuery(message);
      case 'parse':
      case 'bind':
      case 'describe':
      case 'execute':
      case 'close':
        return this.#hold(message);
      case 'sync':
        this.#ledger.queries += 1;
        this.#unit.push(message);
        return this.#onSync();
      case 'flush':
        this.#unit.push(message);
        return this.#forwardHeldUnit();
      case 'functionCall':
        if (this.#joinsUnit(message)) return;
        this.#noteSessionEffect('taints');
        this.#send([message.frame], markBlock(newExchange('uncacheable', 'all'), null));
        return this.#probeIfOwed();
      case 'terminate':
        this.#ledger.endWith('client terminated');
        this.#relay.toOrigin(message.frame);
        this.#relay.flush();
        return this.close();
      default:
        // COPY data and anything unknown go straight on (after what is held); the origin judges them.
        this.#forwardHeldUnit();
        this.#relay.toOrigin(message.frame);
    }
  }

  // Whether the message ends a read that may be cached (anything else need not wait for a probe).
  #readsCacheably(message: FrontendMessage): boolean {
    const sql =
      message.kind === 'query'
        ? message.sql
        : message.kind === 'sync'
          ? this.#statements.cacheableUnit([...this.#unit, message])?.statement.sql
          : undefined;
    return sql !== undefined && this.#runtime.memo.analyze(sql, this.#standardStrings).cacheable;
  }

  #hold(message: FrontendMessage): void {
    if (this.#unitExchange !== null) return this.#followUnit([message]);
    this.#unit.push(message);
    this.#unitBytes += message.frame.length;
    if (this.#unitBytes > MAX_HELD_UNIT_BYTES) this.#forwardHeldUnit();
  }

  #onQuery(message: QueryMessage): void {
    const cache = this.#cache as CacheState;
    if (cache.rules.neverCaches) {
      // Unanalysed, a SET could slip by: this session never uses the store, even if rules change.
      // What it writes is unknown, so it invalidates the whole cache: another node whose config
      // still caches, or this cache turned on again, must not serve a read from before it.
      this.#unanalyzed = true;
      cache.stats.uncacheable += 1;
      return this.#send([message.frame], newExchange('uncacheable', 'all'));
    }
    const parts = ['Q', message.sql];
    const key = requestKey((this.#key as SessionKey).id ?? '', parts);
    if (this.#mayUseCache()) {
      const entry = this.#access?.lookup(key, this.#txStatus !== 'I');
      if (entry !== undefined) return this.#serve(entry, null);
    }
    const analysis = this.#runtime.memo.analyze(message.sql, this.#standardStrings);
    const exchange = newExchange('uncacheable', null);
    addStatementWrites(exchange, analysis);
    markBlock(exchange, analysis);
    exchange.fingerprint = analysis.fingerprint;
    cache.stats.template(analysis.fingerprint, () => normalizeTemplate(message.sql));
    const policy = this.#readPolicy(analysis, message.sql);
    this.#applySessionEffect(analysis, message.sql);
    if (policy === null) {
      cache.stats.uncacheable += 1;
      this.#send([message.frame], exchange);
      return this.#probeIfOwed();
    }
    this.#miss({
      key,
      analysis,
      policy,
      exchange,
      coalesce: true,
      extended: null,
      frames: () => [message.frame],
      shared: this.#sharedParts(parts),
    });
  }

  #onSync(): void {
    const unit = this.#unit;
    this.#unit = [];
    this.#unitBytes = 0;
    if (this.#unitExchange !== null) {
      this.#unitExchange = null;
      this.#relay.toOrigin((unit[unit.length - 1] as FrontendMessage).frame);
      return this.#probeIfOwed();
    }
    const cache = this.#cache as CacheState;
    const read = cache.rules.neverCaches ? null : this.#statements.cacheableUnit(unit);
    if (read === null) return this.#forwardUnit(unit, true);
    const { parse, bind, describe, statement } = read;
    const parts = [
      describe ? 'ED' : 'E',
      statement.types,
      statement.sql,
      bind.frame.toString('latin1', bindParametersOffset(bind)),
    ];
    const key = requestKey((this.#key as SessionKey).id ?? '', parts);
    // A named Parse must reach the origin (later Binds use it), so it is never answered here.
    const namedParse = parse !== null && parse.name !== '';
    const extended = { parse, describe, statement };
    if (!namedParse && this.#mayUseCache()) {
      const entry = this.#access?.lookup(key, this.#txStatus !== 'I');
      if (entry !== undefined) return this.#serve(entry, extended);
    }
    const analysis = this.#runtime.memo.analyze(statement.sql, this.#standardStrings);
    const policy = analysis.cacheable ? this.#readPolicy(analysis, statement.sql) : null;
    if (policy === null) return this.#forwardUnit(unit, true);
    const exchange = newExchange('miss', null);
    exchange.fingerprint = analysis.fingerprint;
    cache.stats.template(analysis.fingerprint, () => normalizeTemplate(statement.sql));
    // The statement and its analysis are known already: the effects below reuse them.
    const known = { statement, analysis, standardStrings: this.#standardStrings };
    const frames = (): Buffer[] => {
      const unitFrames = this.#statements.frames(unit);
      for (const message of unit) this.#applyStatementEffects(message, exchange, known);
      exchange.result = 'miss';
      return unitFrames;
    };
    this.#miss({
      key,
      analysis,
      policy,
      exchange,
      coalesce: !namedParse,
      extended,
      frames,
      // A named Parse must reach the origin: never answered from the second level either.
      shared: namedParse ? null : this.#sharedParts(parts),
    });
  }

  // Whether reads may be served or stored now: not behind anything that could open a
  // transaction, write or change settings, whose effect we will only know from its answer.
  #mayUseCache(): boolean {
    if (this.#unanalyzed || this.#txStatus === 'E' || this.#key?.known !== true) return false;
    if ((this.#access as CacheAccess).written && this.#txStatus === 'T') return false;
    for (const exchange of this.#queue) {
      if (exchange.result !== 'hit' && exchange.result !== 'miss') return false;
    }
    return true;
  }

  #readPolicy(analysis: Analysis, sql: string): CachePolicy | null {
    if (!analysis.cacheable || !this.#mayUseCache()) return null;
    return (this.#access as CacheAccess).policy(sql, analysis, this.#txStatus !== 'I');
  }

  // A cacheable miss: lead it (ask the origin and capture the answer) or, when an identical one is
  // already in flight, wait for its answer instead of asking again.
  #miss(miss: {
    key: string;
    analysis: Analysis;
    policy: CachePolicy;
    exchange: Exchange;
    coalesce: boolean;
    extended: Extended;
    frames: () => Buffer[];
    /** The session's shared key text and the request's parts (null: nothing is shared). */
    shared: { text: string; parts: string[] } | null;
  }): void {
    const { key, analysis, policy, exchange } = miss;
    exchange.result = 'miss';
    const shared = miss.shared;
    const start = (this.#access as CacheAccess).startMiss({
      key,
      tables: [...new Set(analysis.reads.map((t) => t.name))],
      fingerprint: analysis.fingerprint,
      policy,
      coalesce: miss.coalesce,
      // The second level only outside transaction blocks.
      shared:
        shared === null || this.#txStatus !== 'I'
          ? null
          : { protocol: 'postgres', key: () => requestKey(shared.text, shared.parts) },
    });
    if (start.kind === 'lead') {
      exchange.capture = start.capture;
      exchange.extended = miss.extended !== null;
      this.#send(miss.frames(), exchange);
      return;
    }
    exchange.waiting = true;
    this.#queue.push(exchange);
    this.#block();
    (this.#access as CacheAccess)
      .follow(
        start,
        this.#arrivedAt,
        () => this.#step.kind === 'closed',
        (followed) => {
          exchange.waiting = false;
          if (followed.kind === 'hit') {
            if (miss.extended?.parse != null)
              this.#statements.answeredUnnamedParse(miss.extended.statement);
            exchange.result = 'hit';
            exchange.local = { entry: followed.entry, extended: miss.extended };
          } else {
            // Asked of the origin after all, in order: stored when it leads (the second level had
            // nothing), else the leader's answer could not be stored and this one is not either.
            if (followed.kind === 'lead') {
              exchange.capture = followed.capture;
              exchange.extended = miss.extended !== null;
            }
            const frames = miss.frames();
            if (followed.kind === 'ask') exchange.result = 'uncacheable';
            this.#takeInjected(exchange);
            for (const frame of frames) this.#relay.toOrigin(frame);
            exchange.sentEpoch = this.#access?.sending() ?? null;
          }
          this.#flushLocal();
          this.#unblock();
        },
      )
      .catch((error: unknown) => this.#fail(error));
  }

  // What the second level keys a request by: the session's key as text, the same on every node.
  #sharedParts(parts: string[]): { text: string; parts: string[] } | null {
    const text = (this.#key as SessionKey).sharedText;
    return text === null ? null : { text, parts };
  }

  #serve(entry: CacheEntry, extended: Extended): void {
    if (extended?.parse != null) this.#statements.answeredUnnamedParse(extended.statement);
    (this.#access as CacheAccess).countHit(entry, this.#arrivedAt);
    if (this.#queue.length === 0) {
      // Nothing in flight: straight out, no bookkeeping.
      this.#pushHit(entry, extended);
      return;
    }
    const exchange = newExchange('hit', null);
    exchange.local = { entry, extended };
    this.#queue.push(exchange);
    this.#flushLocal();
  }

  // The stored answer, without its ParseComplete when the client sent no Parse, and with the
  // session's own transaction status when it is not idle.
  #pushHit(entry: CacheEntry, extended: Extended): void {
    const response = entry.response;
    const start = extended !== null && extended.parse === null ? PARSE_COMPLETE.length : 0;
    if (this.#txStatus === 'I') return this.#relay.forward(response, start, response.length);
    this.#relay.forward(response, start, response.length - RFQ.I.length);
    this.#relay.push(RFQ[this.#txStatus]);
  }

  #forwardUnit(unit: FrontendMessage[], complete: boolean): void {
    const exchange = newExchange('none', null);
    const frames = this.#statements.frames(unit);
    for (const message of unit) this.#applyStatementEffects(message, exchange);
    if (exchange.result === 'uncacheable') (this.#cache as CacheState).stats.uncacheable += 1;
    this.#send(frames, exchange);
    // Forwarded before its Sync: later messages of the unit follow it straight to the origin.
    if (!complete) this.#unitExchange = exchange;
    else this.#probeIfOwed();
  }

  #forwardHeldUnit(): void {
    if (this.#unit.length === 0) {
      if (this.#unitExchange !== null) this.#relay.flush();
      return;
    }
    const unit = this.#unit;
    this.#unit = [];
    this.#unitBytes = 0;
    if (this.#unitExchange !== null) return this.#followUnit(unit);
    this.#forwardUnit(unit, false);
  }

  // More messages of a unit already forwarded before its Sync: straight on, under its exchange.
  #followUnit(messages: FrontendMessage[]): void {
    const exchange = this.#unitExchange as Exchange;
    const frames = this.#statements.frames(messages);
    this.#takeInjected(exchange);
    for (const message of messages) this.#applyStatementEffects(message, exchange);
    for (const frame of frames) this.#relay.toOrigin(frame);
  }

  // A Query or FunctionCall after extended messages with no Sync: Postgres answers them all with
  // one ReadyForQuery, so they share the unit's exchange instead of queueing their own.
  #joinsUnit(message: FrontendMessage): boolean {
    this.#forwardHeldUnit();
    const exchange = this.#unitExchange;
    if (exchange === null) return false;
    this.#unitExchange = null;
    if (message.kind === 'query') {
      const analysis = this.#runtime.memo.analyze(message.sql, this.#standardStrings);
      addStatementWrites(exchange, analysis);
      markBlock(exchange, analysis);
      this.#applySessionEffect(analysis, message.sql);
    } else {
      addWrites(exchange, 'all');
      markBlock(exchange, null);
      this.#noteSessionEffect('taints');
    }
    exchange.result = 'uncacheable';
    this.#relay.toOrigin(message.frame);
    this.#probeIfOwed();
    return true;
  }

  // Tracks statements (for later Binds and key building), writes and settings of forwarded messages.
  // `known` is a cacheable unit's statement and analysis, built once on its miss path.
  #applyStatementEffects(
    message: FrontendMessage,
    exchange: Exchange,
    known?: { statement: Statement; analysis: Analysis; standardStrings: boolean },
  ): void {
    switch (message.kind) {
      case 'parse': {
        const statement =
          known?.statement.frame === message.frame
            ? known.statement
            : { sql: message.sql, types: parseTypes(message), frame: message.frame };
        this.#statements.define(message.name, statement);
        if (message.name !== '') exchange.parsedNames.push(message.name);
        return;
      }
      case 'close':
        if (message.target === 'S') this.#statements.forget(message.name);
        return;
      case 'bind': {
        const statement = this.#statements.get(message.statement);
        if (exchange.result === 'none') exchange.result = 'uncacheable';
        if (statement === null) {
          markBlock(exchange, null);
          this.#noteSessionEffect('taints');
          return addWrites(exchange, 'all');
        }
        if ((this.#cache as CacheState).rules.neverCaches) {
          markBlock(exchange, null);
          this.#unanalyzed = true;
          return addWrites(exchange, 'all');
        }
        const analysis =
          known?.statement === statement && known.standardStrings === this.#standardStrings
            ? known.analysis
            : this.#runtime.memo.analyze(statement.sql, this.#standardStrings);
        addStatementWrites(exchange, analysis);
        markBlock(exchange, analysis);
        this.#applySessionEffect(analysis, statement.sql);
        return;
      }
      default:
        return;
    }
  }

  #applySessionEffect(analysis: Analysis, sql: string): void {
    if (analysis.session === 'none') return;
    // Until its ParameterStatus arrives, texts behind it are not split into shapes.
    if (/standard_conforming_strings/i.test(sql)) this.#standardStrings = false;
    this.#noteSessionEffect(analysis.session);
  }

  // After a statement that may change the session's state unseen, the state is unknown (nothing is
  // served or stored) until a probe sent right behind the statement reads it from the origin.
  #noteSessionEffect(effect: SessionEffect): void {
    if (!(this.#key as SessionKey).note(effect) || effect !== 'discards') return;
    this.#statements.clear();
  }

  // Sent at the end of an exchange (after its Sync or Query), so it runs as a statement of its own.
  // It also reads the functions the exchange just sent calls, if any.
  #probeIfOwed(): void {
    const sent = this.#queue[this.#queue.length - 1];
    const key = this.#key as SessionKey;
    // A session that never uses the store has no use for its state; inside a transaction block
    // that has written, nothing is served or stored until the block ends, and the probe stays owed
    // until then (the statement that ends the block carries it, or the next one).
    if (this.#unanalyzed || (key.probeOwed && sent?.calls == null && this.#insideWrittenBlock())) {
      if (sent?.calls != null) decideAll(sent);
      return;
    }
    const mark = key.probeDue();
    if (mark === null) {
      // No probe right behind it: nothing will say what its functions wrote.
      if (sent?.calls != null) decideAll(sent);
      return;
    }
    const exchange = newExchange('none', null);
    exchange.probe = { mark, state: null, functions: null };
    let names: string[] = [];
    if (sent?.calls != null) {
      const check = this.#runtime.functions.plan(this.#originScope, sent.calls);
      sent.learning = exchange.learning = { check, ready: null, decided: false };
      sent.calls = null;
      names = check.names;
    }
    this.#probing += 1;
    this.#queue.push(exchange);
    this.#relay.toOrigin(stateProbe(names, this.#runtime.codeHints.get(this.#originScope)));
    exchange.sentEpoch = this.#access?.sending() ?? null;
  }

  // Whether, once everything sent has been answered, the session will still be inside the
  // transaction block that the last ReadyForQuery reported, and that block has written or failed:
  // then no read can be served or stored before the block ends. `#txStatus` may lag what was sent,
  // so it holds only when no exchange in flight may begin or end a block.
  #insideWrittenBlock(): boolean {
    if (this.#txStatus === 'I') return false;
    let writes = this.#txStatus === 'E' || (this.#access as CacheAccess).written;
    for (const exchange of this.#queue) {
      if (exchange.probe !== null || exchange.local !== null) continue;
      if (exchange.result === 'miss' || exchange.result === 'hit') continue;
      if (exchange.keepsBlock !== true) return false;
      if (exchange.writes !== null) writes = true;
    }
    return writes;
  }

  // The probe's answer is the edge's own: only what the origin sends unasked goes to the client.
  #probeFrame(exchange: Exchange, code: number, buffer: Buffer, start: number, end: number): void {
    switch (code) {
      case codes.DataRow: {
        const probe = exchange.probe as NonNullable<Exchange['probe']>;
        probe.state = readStateProbe(buffer.subarray(start, end));
        const hint = readCodeHint(buffer.subarray(start, end));
        if (hint !== null) this.#runtime.codeHints.set(this.#originScope, hint);
        if (exchange.learning !== null)
          probe.functions = readProbeFunctions(buffer.subarray(start, end));
        return;
      }
      case codes.ErrorResponse:
        exchange.failed = true;
        return;
      case codes.ReadyForQuery:
        return this.#complete(buffer[start + 5] as number);
      case codes.ParameterStatus:
        this.#onParameterStatus(buffer.subarray(start, end));
        return this.#relay.forward(buffer, start, end);
      case codes.NotificationResponse:
        return this.#relay.forward(buffer, start, end);
    }
  }

  #probed(exchange: Exchange): void {
    const probe = exchange.probe as NonNullable<Exchange['probe']>;
    const state = exchange.failed ? null : probe.state;
    (this.#key as SessionKey).learn(probe.mark, state, this.#txStatus === 'I');
    this.#probing -= 1;
    if (exchange.learning !== null)
      this.#learned(exchange.learning, state === null ? null : probe.functions);
    this.#flushLocal();
    if (this.#probing === 0 && this.#relay.blocked) queueMicrotask(() => this.#unblock());
  }

  // What the functions of a statement wrote, once the probe behind it has answered (null: it
  // failed). Counted for the transaction; an autocommit statement's writes invalidate now, and only
  // then does its client get its ReadyForQuery.
  #learned(learning: Learning, probed: ProbedFunctions | null): void {
    // Inside a transaction block the probe's reading of the catalog must be as fresh as the calls'.
    const fresh = learning.ready !== null || probed?.isolation === 'read committed';
    const catalog = fresh ? (probed?.functions ?? null) : null;
    const writes = this.#runtime.functions.settle(learning.check, catalog);
    // This probe ran before every statement queued behind it: what it read was seen before them.
    if (catalog !== null) {
      for (const later of this.#queue) {
        if (later.probe !== null && later.learning !== null)
          carryForward(learning.check, catalog, later.learning.check);
      }
    }
    if (learning.decided) return;
    learning.decided = true;
    (this.#access as CacheAccess).noteWrites(writes);
    if (learning.ready === null) return;
    this.#relay.holdFor((this.#access as CacheAccess).commitWrites());
    this.#relay.push(learning.ready);
    learning.ready = null;
  }

  // The ReadyForQuery of an exchange whose functions the probe behind it is reading.
  #readyWhileLearning(exchange: Exchange, buffer: Buffer, start: number, end: number): void {
    const learning = exchange.learning as Learning;
    const status = buffer[start + 5] as number;
    if (!learning.decided) {
      if (status === codes.TransactionIdle && this.#runtime.functions.mayRely(learning.check)) {
        learning.ready = Buffer.from(buffer.subarray(start, end));
        return this.#complete(status);
      }
      // In a failed transaction, or with functions not yet learned, the probe cannot help.
      if (status !== codes.TransactionInBlock || !this.#runtime.functions.mayRely(learning.check))
        decideAll(exchange);
    }
    this.#relay.forward(buffer, start, end);
    this.#complete(status);
  }

  #takeInjected(exchange: Exchange): void {
    exchange.swallowParseComplete += this.#statements.takeInjected();
  }

  #send(frames: Buffer[], exchange: Exchange): void {
    this.#takeInjected(exchange);
    this.#queue.push(exchange);
    for (const frame of frames) this.#relay.toOrigin(frame);
    exchange.sentEpoch = this.#access?.sending() ?? null;
  }

  // ---- origin → edge ----

  #onOriginData(chunk: Buffer): void {
    if (this.#step.kind === 'closed') return;
    try {
      this.#frames.push(chunk, this);
      this.#relay.flush();
    } catch (error) {
      this.#fail(error);
    }
    this.#endIfDrained();
  }

  frame(code: number, buffer: Buffer, start: number, end: number): void {
    if (this.#step.kind === 'authenticating') return this.#authFrame(code, buffer, start, end);
    const exchange = this.#queue[0];
    if (exchange?.probe != null) return this.#probeFrame(exchange, code, buffer, start, end);
    switch (code) {
      case codes.ReadyForQuery:
        if (exchange?.learning != null)
          return this.#readyWhileLearning(exchange, buffer, start, end);
        this.#relay.forward(buffer, start, end);
        return this.#complete(buffer[start + 5] as number);
      case codes.CommandComplete:
        if (exchange !== undefined)
          this.#onTag(exchange, buffer.toString('latin1', start + 5, end - 1));
        break;
      case codes.ParseComplete:
        if (exchange !== undefined && exchange.swallowParseComplete > 0) {
          exchange.swallowParseComplete -= 1;
          return;
        }
        return this.#relay.forward(buffer, start, end);
      case codes.BindComplete:
        return this.#relay.forward(buffer, start, end);
      case codes.ParameterStatus:
        this.#onParameterStatus(buffer.subarray(start, end));
        return this.#relay.forward(buffer, start, end);
      case codes.NotificationResponse:
        return this.#relay.forward(buffer, start, end);
      case codes.ErrorResponse:
        if (exchange !== undefined) exchange.failed = true;
        this.#originSaidWhy ||= endsSession(buffer, start, end);
        break;
      case codes.RowDescription:
      case codes.DataRow:
        break;
      default:
        if (exchange?.capture != null) exchange.capture.ok = false;
    }
    if (exchange?.capture != null && exchange.capture.ok) {
      this.#capture(exchange.capture, code, buffer.subarray(start, end));
    }
    this.#relay.forward(buffer, start, end);
  }

  piece(code: number, piece: Buffer, last: boolean): void {
    const exchange = this.#queue[0];
    if (exchange?.probe != null) {
      // Far larger than any state: not a reading to trust.
      exchange.failed = true;
      return;
    }
    if (exchange?.capture != null) exchange.capture.ok = false;
    if (code === codes.ErrorResponse && exchange !== undefined) exchange.failed = true;
    this.#relay.push(piece);
    if (last && this.#relay.waitingPieces > 64) this.#relay.flush();
  }

  #capture(capture: Capture, code: number, frame: Buffer): void {
    capture.bytes += frame.length;
    (this.#access as CacheAccess).append(capture, frame);
  }

  #onTag(exchange: Exchange, tag: string): void {
    exchange.lastTagRollback = tag === 'ROLLBACK';
    // A COMMIT tag (several statements in one Query) means what was written is visible to everyone.
    if (tag === 'COMMIT') {
      // Committed before the probe behind the exchange could say what its functions wrote.
      if (exchange.calls !== null || exchange.learning !== null) decideAll(exchange);
      this.#applyWrites(exchange);
      this.#relay.holdFor((this.#access as CacheAccess).commitWrites());
    }
  }

  // An exchange's writes count for its transaction once the origin has answered it (not when sent:
  // an earlier exchange's ReadyForQuery must not invalidate before the write has happened).
  #applyWrites(exchange: Exchange): void {
    if (exchange.writes === null) return;
    (this.#access as CacheAccess).noteWrites(exchange.writes);
    exchange.writes = null;
  }

  #complete(status: number): void {
    const exchange = this.#queue.shift();
    this.#txStatus = String.fromCharCode(status) as TransactionStatus;
    this.#access?.answered(this.#txStatus === 'I', this.#queue);
    if (exchange === undefined) return;
    if (exchange.probe !== null) return this.#probed(exchange);
    // Functions no probe will read (the session ended its exchange some other way).
    if (exchange.calls !== null) decideAll(exchange);
    const access = this.#access as CacheAccess;
    this.#applyWrites(exchange);
    if (this.#txStatus === 'I' && access.written) {
      if (exchange.lastTagRollback) access.discardWrites();
      else this.#relay.holdFor(access.commitWrites());
    }
    if (exchange.failed) {
      for (const name of exchange.parsedNames) this.#statements.forget(name);
    }
    const capture = exchange.capture;
    if (capture !== null) {
      const clean = this.#txStatus === 'I' || !access.written;
      const keep = capture.ok && !exchange.failed && clean && capture.pieces.length > 0;
      access.finishMiss(
        capture,
        keep
          ? Buffer.concat(
              exchange.extended
                ? [PARSE_COMPLETE, BIND_COMPLETE, ...capture.pieces, RFQ.I]
                : [...capture.pieces, RFQ.I],
            )
          : null,
      );
    }
    this.#flushLocal();
  }

  #onParameterStatus(frame: Buffer): void {
    const nameEnd = frame.indexOf(0, 5);
    const name = frame.toString('utf8', 5, nameEnd);
    const value = frame.toString('utf8', nameEnd + 1, frame.length - 1);
    this.#key?.report(name, value);
    if (name === 'standard_conforming_strings') this.#standardStrings = value === 'on';
  }

  // Answers from the store that have reached the head of the queue go out, with the current status.
  #flushLocal(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Exchange;
      if (head.local === null) return;
      this.#queue.shift();
      this.#pushHit(head.local.entry, head.local.extended);
    }
  }

  #authFrame(code: number, buffer: Buffer, start: number, end: number): void {
    switch (code) {
      case codes.Authentication: {
        const method = buffer.readInt32BE(start + 5);
        if (method === codes.AuthenticationSASL) {
          // Channel binding cannot cross a proxy: the client's TLS session is not the origin's.
          const offered = saslMechanisms(buffer.subarray(start, end)).filter(
            (m) => !m.endsWith('-PLUS'),
          );
          this.#relay.push(serialize.authenticationSASL(offered));
          return;
        }
        break;
      }
      case codes.BackendKeyData: {
        this.#cancelKey = buffer.toString('hex', start + 5, end);
        this.#runtime.cancelKeys.remember(this.#cancelKey, this.#target as OriginTarget);
        break;
      }
      case codes.ParameterStatus:
        this.#onParameterStatus(buffer.subarray(start, end));
        break;
      case codes.ReadyForQuery:
        this.#txStatus = String.fromCharCode(buffer[start + 5] as number) as TransactionStatus;
        this.#step = { kind: 'ready' };
        this.#ledger.loggedIn();
        break;
      case codes.ErrorResponse:
        this.#originSaidWhy = true;
        this.#ledger.endWith(`authentication failed: ${errorCode(buffer, start, end)}`);
        this.#relay.forward(buffer, start, end);
        this.#relay.flush();
        endSocket(this.#relay.client);
        return;
    }
    this.#relay.forward(buffer, start, end);
  }

  #originGone(): void {
    if (this.#step.kind === 'closed') return;
    if (this.#originSaidWhy) {
      if (this.#step.kind === 'ready') this.#ledger.endWith('origin ended the session');
      // The origin's own FATAL has been relayed: Postgres sends one message, then closes.
      this.#relay.flush();
      endSocket(this.#relay.client);
      this.#teardown();
      return;
    }
    // 08006 connection_failure: the client learns why instead of seeing a bare EOF.
    this.#refuse('08006', 'the origin database closed the connection');
  }
}
