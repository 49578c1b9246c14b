// One client connection through the Postgres edge: negotiates TLS, routes by the cache id in
// application_name, relays authentication to the origin, then relays queries, answering cacheable
// reads from the result store and invalidating on writes. State is one `step` union.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { CacheEntry } from '../../cache/result-cache.ts';
import type { CachePolicy } from '../../control/config.ts';
import type { CacheState, EdgeRuntime } from '../../runtime.ts';
import { connectOrigin, OriginError, type OriginTarget } from '../../upstream/origin.ts';
import * as codes from '../protocol/codes.ts';
import type {
  BindMessage,
  FrontendMessage,
  ParseMessage,
  QueryMessage,
  StartupMessage,
  TransactionStatus,
} from '../protocol/messages.ts';
import { FrontendParser } from '../protocol/parser.ts';
import { ProtocolError } from '../protocol/protocol-error.ts';
import * as serialize from '../protocol/serializer.ts';
import type { Analysis } from '../sql/analyze.ts';
import { BackendFrames, type BackendFrameSink } from './backend-frames.ts';
import { normalizeTemplate } from './statement-memo.ts';

export interface SessionOptions {
  runtime: EdgeRuntime;
  tls: tls.SecureContext | null;
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

interface Capture {
  key: string;
  leader: boolean;
  tables: string[];
  fingerprint: string;
  policy: CachePolicy;
  askedEpoch: bigint;
  extended: boolean;
  pieces: Buffer[];
  bytes: number;
  ok: boolean;
}

// One request/response cycle: everything up to and including a Sync, Query or FunctionCall,
// answered by one ReadyForQuery (from the origin, or made here for a cache hit).
interface Exchange {
  // A cache hit, answered when it reaches the head of the queue (with the status of that moment).
  local: { entry: CacheEntry; extended: Extended } | null;
  waiting: boolean;
  capture: Capture | null;
  writes: string[] | 'all' | null;
  swallowParseComplete: number;
  result: 'hit' | 'miss' | 'uncacheable' | 'none';
  startedAt: number;
  lastTagRollback: boolean;
  failed: boolean;
  parsedNames: string[];
  fingerprint: string;
}

// How an extended-protocol hit is answered: with ParseComplete when the client sent a Parse (then
// `statement` is what that Parse defined), with RowDescription when it sent Describe.
type Extended = { parse: ParseMessage | null; describe: boolean; statement: Statement } | null;

interface Statement {
  sql: string;
  // The parameter-type section of the Parse message, as a key component.
  types: string;
  frame: Buffer;
}

// Parameters that are not settings: never part of the cache key.
const NOT_SETTINGS = new Set(['application_name', 'user', 'database']);
// Reported parameters that cannot change a query's result.
const IRRELEVANT_REPORTS = new Set(['application_name', 'server_version', 'in_hot_standby']);

export class PgSession implements BackendFrameSink {
  readonly #runtime: EdgeRuntime;
  readonly #tls: tls.SecureContext | null;
  readonly #onClose: (session: PgSession) => void;
  #client: net.Socket;
  #origin: net.Socket | null = null;
  #step: Step = { kind: 'startup' };
  readonly #parser = new FrontendParser();
  readonly #frames = new BackendFrames();
  #incoming: FrontendMessage[] = [];
  #incomingIndex = 0;
  #blocked = false;

  // Routing and the cache key.
  #cache: CacheState | null = null;
  #target: OriginTarget | null = null;
  #cancelKey: string | null = null;
  #baseKey = '';
  #sessionKey = '';
  readonly #reported = new Map<string, string>();
  #settings: string[] = [];
  #standardStrings = true;
  #unanalyzed = false;
  #arrivedAt = 0;

  // Protocol state.
  readonly #queue: Exchange[] = [];
  #unit: FrontendMessage[] = [];
  #unitBytes = 0;
  #unitExchange: Exchange | null = null;
  #txStatus: TransactionStatus = 'I';
  #txWrites: Set<string> | 'all' | null = null;
  readonly #statements = new Map<string, Statement>();
  #unnamed: Statement | null = null;
  #originHasUnnamed = true;

  // Output batching: a run of contiguous origin bytes, then a list of pieces to write.
  #out: Buffer[] = [];
  #toOrigin: Buffer[] = [];
  #runBuffer: Buffer | null = null;
  #runStart = 0;
  #runEnd = 0;

  constructor(socket: net.Socket, options: SessionOptions) {
    this.#runtime = options.runtime;
    this.#tls = options.tls;
    this.#onClose = options.onClose;
    this.#client = socket;
    this.#attachClient(socket);
  }

  get cacheId(): string | null {
    return this.#cache?.id ?? null;
  }

  /** Ends the session: both sockets are destroyed. */
  close(): void {
    if (this.#step.kind === 'closed') return;
    this.#client.destroy();
    this.#teardown();
  }

  #teardown(): void {
    this.#step = { kind: 'closed' };
    this.#origin?.destroy();
    if (this.#cancelKey !== null) this.#runtime.cancelKeys.forget(this.#cancelKey);
    // Sessions waiting on a miss this one leads must not wait forever.
    for (const exchange of this.#queue) {
      if (exchange.capture?.leader === true)
        this.#runtime.results.settle(exchange.capture.key, null);
    }
    this.#queue.length = 0;
    this.#onClose(this);
  }

  #attachClient(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onClientData(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('drain', () => this.#origin?.resume());
  }

  // ---- client → edge ----

  #onClientData(chunk: Buffer): void {
    if (this.#step.kind === 'closed') return;
    this.#arrivedAt = performance.now();
    try {
      this.#parser.parse(chunk, (message) => this.#incoming.push(message));
      this.#drainIncoming();
      this.#flushOut();
    } catch (error) {
      this.#fail(error);
    }
  }

  #drainIncoming(): void {
    while (!this.#blocked && this.#incomingIndex < this.#incoming.length) {
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
          this.#writeOrigin(message.frame);
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
        this.#client.write(serialize.sslResponse(false));
        return;
      case 'cancelRequest':
        this.#forwardCancel(message.frame);
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
    if (this.#tls === null || this.#client instanceof tls.TLSSocket) {
      this.#client.write(serialize.sslResponse(false));
      return;
    }
    // Bytes sent before encryption is set up could be injected by a man in the middle.
    if (this.#parser.bufferedBytes > 0 || this.#incomingIndex < this.#incoming.length) {
      throw new ProtocolError('data arrived after SSLRequest before the TLS handshake');
    }
    const plain = this.#client;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.removeAllListeners('drain');
    plain.write(serialize.sslResponse(true));
    const secure = new tls.TLSSocket(plain, { isServer: true, secureContext: this.#tls });
    this.#client = secure;
    this.#attachClient(secure);
  }

  // The key may belong to a session of another thread: the directory answers for all of them.
  #forwardCancel(frame: Buffer): void {
    const key = frame.toString('hex', 8);
    this.#runtime.cancelKeys.lookup(key).then(
      (target) => {
        if (target === undefined) return;
        const socket = net.connect({ host: target.hostname, port: target.port });
        socket.on('error', () => socket.destroy());
        socket.on('connect', () => socket.end(frame));
      },
      (error: unknown) => this.#runtime.logger.warn({ err: error }, 'could not forward a cancel'),
    );
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
    const applicationName = parameters.get('application_name') ?? '';
    const separator = applicationName.search(/[:/]/);
    const cacheId = separator < 0 ? applicationName : applicationName.slice(0, separator);
    const clientApplication = separator < 0 ? null : applicationName.slice(separator + 1);
    if (cacheId === '') {
      return this.#refuse(
        CONNECTION_REJECTED,
        'no cache id: connect with application_name set to the cache id (as in the connection string Edgegate gave you)',
      );
    }
    const { state, config } = await this.#runtime.cache(cacheId);
    if (state === null || config === null) {
      const shown = cacheId.slice(0, 64);
      // psql and most drivers send their own name by default: say what the value should be.
      return this.#refuse(
        CONNECTION_REJECTED,
        cacheId.startsWith('cch_')
          ? `there is no cache "${shown}": it was deleted or never existed`
          : `application_name "${shown}" is not a cache id: set application_name to the cache id (cch_…), as in the connection string Edgegate gave you`,
      );
    }
    if (config.type !== 'postgres') {
      return this.#refuse(
        CONNECTION_REJECTED,
        `cache "${cacheId}" is a ${config.type} cache: connect to it on the edge's ${config.type} port`,
      );
    }
    this.#cache = state;
    this.#target = { hostname: config.hostname, port: config.port, originTls: config.originTls };
    let origin: net.Socket;
    try {
      origin = await connectOrigin(this.#target, this.#runtime.guard);
    } catch (error) {
      if (error instanceof OriginError) return this.#refuse(CANNOT_CONNECT, error.message);
      throw error;
    }
    if (this.#step.kind === 'closed') {
      origin.destroy();
      return;
    }
    this.#origin = origin;
    origin.setNoDelay(true);
    origin.on('data', (chunk: Buffer) => this.#onOriginData(chunk));
    origin.on('error', () => this.#originGone());
    origin.on('close', () => this.#originGone());
    origin.on('drain', () => {
      if (!this.#blocked) this.#client.resume();
    });

    const forwarded = new Map<string, string>();
    const settings: string[] = [];
    for (const [name, value] of parameters) {
      if (name === 'application_name') continue;
      forwarded.set(name, value);
      if (!NOT_SETTINGS.has(name)) settings.push(`${name}=${value}`);
    }
    if (clientApplication !== null && clientApplication !== '') {
      forwarded.set('application_name', clientApplication);
    }
    this.#baseKey = [
      cacheId,
      parameters.get('database') ?? parameters.get('user') ?? '',
      parameters.get('user') ?? '',
      settings.sort().join('\u0001'),
    ].join('\u0000');
    this.#rebuildSessionKey();
    this.#step = { kind: 'authenticating' };
    origin.write(serialize.startupMessage(forwarded, startup.protocolVersion));
    this.#unblock();
  }

  #refuse(code: string, message: string): void {
    if (this.#step.kind === 'closed') return;
    this.#flushOut();
    this.#client.end(serialize.errorResponse({ severity: 'FATAL', code, message }));
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
    this.#blocked = true;
    this.#client.pause();
  }

  #unblock(): void {
    this.#blocked = false;
    this.#client.resume();
    try {
      this.#drainIncoming();
      this.#flushOut();
    } catch (error) {
      this.#fail(error);
    }
  }

  // ---- query phase: client messages ----

  #onQueryMessage(message: FrontendMessage): void {
    switch (message.kind) {
      case 'query':
        if (this.#joinsUnit(message)) return;
        return this.#onQuery(message);
      case 'parse':
      case 'bind':
      case 'describe':
      case 'execute':
      case 'close':
        return this.#hold(message);
      case 'sync':
        this.#unit.push(message);
        return this.#onSync();
      case 'flush':
        this.#unit.push(message);
        return this.#forwardHeldUnit();
      case 'functionCall':
        if (this.#joinsUnit(message)) return;
        return this.#send([message.frame], this.#exchange('uncacheable', 'all'));
      case 'terminate':
        this.#writeOrigin(message.frame);
        this.#flushOut();
        return this.close();
      default:
        // COPY data and anything unknown go straight on (after what is held); the origin judges them.
        this.#forwardHeldUnit();
        this.#writeOrigin(message.frame);
    }
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
      this.#unanalyzed = true;
      cache.stats.uncacheable += 1;
      return this.#send([message.frame], this.#exchange('uncacheable', null));
    }
    const key = `${this.#sessionKey}\u0000Q\u0000${message.sql}`;
    if (this.#mayUseCache()) {
      const entry = this.#runtime.results.get(key);
      if (entry !== undefined && this.#mayServe(entry)) return this.#serve(entry, null);
    }
    const analysis = this.#runtime.memo.analyze(message.sql, this.#standardStrings);
    const exchange = this.#exchange(
      'uncacheable',
      analysis.writes.length === 0 ? null : analysis.writes,
    );
    exchange.fingerprint = analysis.fingerprint;
    cache.stats.template(analysis.fingerprint, () => normalizeTemplate(message.sql));
    const policy = this.#readPolicy(analysis, message.sql);
    this.#applySessionEffect(analysis, message.sql);
    if (policy === null) {
      cache.stats.uncacheable += 1;
      return this.#send([message.frame], exchange);
    }
    this.#miss({
      key,
      analysis,
      policy,
      exchange,
      coalesce: true,
      extended: null,
      frames: () => [message.frame],
    });
  }

  #onSync(): void {
    const unit = this.#unit;
    this.#unit = [];
    this.#unitBytes = 0;
    if (this.#unitExchange !== null) {
      this.#unitExchange = null;
      this.#writeOrigin((unit[unit.length - 1] as FrontendMessage).frame);
      return;
    }
    const cache = this.#cache as CacheState;
    const read = cache.rules.neverCaches ? null : this.#cacheableUnit(unit);
    if (read === null) return this.#forwardUnit(unit, true);
    const { parse, bind, describe, statement } = read;
    const key =
      `${this.#sessionKey}\u0000E${describe ? 'D' : ''}\u0000${statement.types}\u0000${statement.sql}\u0000` +
      bind.frame.toString('latin1', bindParametersOffset(bind));
    // A named Parse must reach the origin (later Binds use it), so it is never answered here.
    const namedParse = parse !== null && parse.name !== '';
    const extended = { parse, describe, statement };
    if (!namedParse && this.#mayUseCache()) {
      const entry = this.#runtime.results.get(key);
      if (entry !== undefined && this.#mayServe(entry)) return this.#serve(entry, extended);
    }
    const analysis = this.#runtime.memo.analyze(statement.sql, this.#standardStrings);
    const policy = analysis.cacheable ? this.#readPolicy(analysis, statement.sql) : null;
    if (policy === null) return this.#forwardUnit(unit, true);
    const exchange = this.#exchange('miss', null);
    exchange.fingerprint = analysis.fingerprint;
    cache.stats.template(analysis.fingerprint, () => normalizeTemplate(statement.sql));
    // The statement and its analysis are known already: the effects below reuse them.
    const known = { statement, analysis, standardStrings: this.#standardStrings };
    const frames = (): Buffer[] => {
      const unitFrames = this.#unitFrames(unit);
      for (const message of unit) this.#applyStatementEffects(message, exchange, known);
      exchange.result = 'miss';
      return unitFrames;
    };
    this.#miss({ key, analysis, policy, exchange, coalesce: !namedParse, extended, frames });
  }

  // [Parse] Bind [Describe portal] Execute(all rows) Sync, on the unnamed portal: the shape a cached
  // read can answer. Returns its parts, or null.
  #cacheableUnit(unit: FrontendMessage[]): {
    parse: ParseMessage | null;
    bind: BindMessage;
    describe: boolean;
    statement: Statement;
  } | null {
    let i = 0;
    let parse: ParseMessage | null = null;
    const first = unit[0];
    if (first?.kind === 'parse') {
      parse = first;
      i = 1;
    }
    const bind = unit[i];
    if (bind?.kind !== 'bind' || bind.portal !== '') return null;
    i += 1;
    let describe = false;
    const next = unit[i];
    if (next?.kind === 'describe' && next.target === 'P' && next.name === '') {
      describe = true;
      i += 1;
    }
    const execute = unit[i];
    if (execute?.kind !== 'execute' || execute.portal !== '' || execute.maxRows !== 0) return null;
    if (unit[i + 1]?.kind !== 'sync' || unit.length !== i + 2) return null;
    let statement: Statement | null | undefined;
    if (parse !== null) {
      if (parse.name !== bind.statement) return null;
      statement = { sql: parse.sql, types: parseTypes(parse), frame: parse.frame };
    } else {
      statement = bind.statement === '' ? this.#unnamed : this.#statements.get(bind.statement);
    }
    return statement == null ? null : { parse, bind, describe, statement };
  }

  // Whether reads may be served or stored now: not behind anything that could open a
  // transaction, write or change settings, whose effect we will only know from its answer.
  #mayUseCache(): boolean {
    if (this.#unanalyzed || this.#txStatus === 'E') return false;
    if (this.#txWrites !== null && this.#txStatus === 'T') return false;
    for (const exchange of this.#queue) {
      if (exchange.result !== 'hit' && exchange.result !== 'miss') return false;
    }
    return true;
  }

  #mayServe(entry: CacheEntry): boolean {
    return this.#txStatus === 'I' || entry.transactionPolicy === 'untilWrite';
  }

  #readPolicy(analysis: Analysis, sql: string): CachePolicy | null {
    if (!analysis.cacheable || !this.#mayUseCache()) return null;
    const policy = (this.#cache as CacheState).rules.decide(
      sql,
      analysis.fingerprint,
      analysis.reads,
    );
    if (policy === null) return null;
    if (policy.transactionPolicy === 'never' && this.#txStatus !== 'I') return null;
    return policy;
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
  }): void {
    const { key, analysis, policy, exchange } = miss;
    const results = this.#runtime.results;
    const joined = miss.coalesce ? results.join(key) : null;
    exchange.result = 'miss';
    if (joined === null) {
      exchange.capture = {
        key,
        leader: miss.coalesce,
        tables: [...new Set(analysis.reads.map((t) => t.name))],
        fingerprint: analysis.fingerprint,
        policy,
        askedEpoch: results.epoch,
        extended: miss.extended !== null,
        pieces: [],
        bytes: 0,
        ok: true,
      };
      this.#send(miss.frames(), exchange);
      return;
    }
    exchange.waiting = true;
    this.#queue.push(exchange);
    this.#block();
    joined
      .then((entry) => {
        if (this.#step.kind === 'closed') return;
        exchange.waiting = false;
        if (entry !== null) {
          if (miss.extended?.parse != null) this.#answeredUnnamedParse(miss.extended.statement);
          exchange.result = 'hit';
          exchange.local = { entry, extended: miss.extended };
          this.#countHit(entry);
        } else {
          // The leader's answer could not be stored: ask the origin ourselves, in order.
          exchange.result = 'uncacheable';
          (this.#cache as CacheState).stats.uncacheable += 1;
          exchange.startedAt = performance.now();
          const frames = miss.frames();
          exchange.result = 'uncacheable';
          this.#takeInjected(exchange);
          for (const frame of frames) this.#writeOrigin(frame);
        }
        this.#flushLocal();
        this.#unblock();
      })
      .catch((error: unknown) => this.#fail(error));
  }

  #serve(entry: CacheEntry, extended: Extended): void {
    if (extended?.parse != null) this.#answeredUnnamedParse(extended.statement);
    this.#countHit(entry);
    if (this.#queue.length === 0) {
      // Nothing in flight: straight out, no bookkeeping.
      this.#flushRun();
      this.#pushHit(this.#out, entry, extended);
      return;
    }
    const exchange = this.#exchange('hit', null);
    exchange.local = { entry, extended };
    this.#queue.push(exchange);
    this.#flushLocal();
  }

  #countHit(entry: CacheEntry): void {
    const stats = (this.#cache as CacheState).stats;
    stats.hits += 1;
    stats.bytesServed += entry.response.length;
    stats.template(entry.fingerprint, () => '');
    // The first hits of a cache are all timed, then one in eight: enough for percentiles, and most
    // hits skip the clock.
    if (stats.hits <= 64 || (stats.hits & 7) === 0) {
      stats.hitLatency.record(performance.now() - this.#arrivedAt);
    }
  }

  // The stored answer, without its ParseComplete when the client sent no Parse, and with the
  // session's own transaction status when it is not idle.
  #pushHit(out: Buffer[], entry: CacheEntry, extended: Extended): void {
    const response = entry.response;
    const start = extended !== null && extended.parse === null ? PARSE_COMPLETE.length : 0;
    if (this.#txStatus === 'I') {
      out.push(start === 0 ? response : response.subarray(start));
    } else {
      out.push(response.subarray(start, response.length - RFQ.I.length), RFQ[this.#txStatus]);
    }
  }

  // Frames of a unit as the origin must get them, re-sending the unnamed statement first when a
  // cache hit answered its Parse and the origin never saw it.
  #unitFrames(unit: FrontendMessage[]): Buffer[] {
    const frames: Buffer[] = [];
    let injected = false;
    for (const message of unit) {
      if (message.kind === 'parse' && message.name === '') this.#originHasUnnamed = true;
      if (usesUnnamedStatement(message) && !this.#originHasUnnamed && !injected) {
        if (this.#unnamed !== null) frames.unshift(this.#unnamed.frame);
        this.#originHasUnnamed = true;
        injected = this.#unnamed !== null;
      }
      frames.push(message.frame);
    }
    if (injected) this.#pendingInjected += 1;
    return frames;
  }

  #pendingInjected = 0;

  #forwardUnit(unit: FrontendMessage[], complete: boolean): void {
    const exchange = this.#exchange('none', null);
    const frames = this.#unitFrames(unit);
    for (const message of unit) this.#applyStatementEffects(message, exchange);
    if (exchange.result === 'uncacheable') (this.#cache as CacheState).stats.uncacheable += 1;
    this.#send(frames, exchange);
    // Forwarded before its Sync: later messages of the unit follow it straight to the origin.
    if (!complete) this.#unitExchange = exchange;
  }

  #forwardHeldUnit(): void {
    if (this.#unit.length === 0) {
      if (this.#unitExchange !== null) this.#flushOut();
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
    const frames = this.#unitFrames(messages);
    this.#takeInjected(exchange);
    for (const message of messages) this.#applyStatementEffects(message, exchange);
    for (const frame of frames) this.#writeOrigin(frame);
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
      if (analysis.writes === 'all' || analysis.writes.length > 0)
        addWrites(exchange, analysis.writes);
      this.#applySessionEffect(analysis, message.sql);
    } else addWrites(exchange, 'all');
    exchange.result = 'uncacheable';
    this.#writeOrigin(message.frame);
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
        if (message.name === '') {
          this.#unnamed = statement;
          this.#originHasUnnamed = true;
        } else {
          this.#statements.set(message.name, statement);
          exchange.parsedNames.push(message.name);
        }
        return;
      }
      case 'close':
        if (message.target === 'S') {
          if (message.name === '') this.#unnamed = null;
          else this.#statements.delete(message.name);
        }
        return;
      case 'bind': {
        const statement =
          message.statement === '' ? this.#unnamed : this.#statements.get(message.statement);
        if (exchange.result === 'none') exchange.result = 'uncacheable';
        if (statement == null) return addWrites(exchange, 'all');
        if ((this.#cache as CacheState).rules.neverCaches) {
          this.#unanalyzed = true;
          return;
        }
        const analysis =
          known?.statement === statement && known.standardStrings === this.#standardStrings
            ? known.analysis
            : this.#runtime.memo.analyze(statement.sql, this.#standardStrings);
        if (analysis.writes.length > 0 || analysis.writes === 'all')
          addWrites(exchange, analysis.writes);
        this.#applySessionEffect(analysis, statement.sql);
        return;
      }
      default:
        return;
    }
  }

  // A cache hit answered the client's unnamed Parse: the origin still holds the previous one.
  #answeredUnnamedParse(statement: Statement): void {
    this.#unnamed = statement;
    this.#originHasUnnamed = false;
  }

  #applySessionEffect(analysis: Analysis, sql: string): void {
    if (analysis.session === 'none') return;
    if (analysis.session === 'reset') {
      this.#settings = [];
      if (/^\s*discard\s+all/i.test(sql)) {
        this.#statements.clear();
        this.#unnamed = null;
      }
    } else this.#settings.push(sql);
    if (/standard_conforming_strings/i.test(sql)) this.#standardStrings = false;
    this.#rebuildSessionKey();
  }

  #rebuildSessionKey(): void {
    const reported = [...this.#reported]
      .filter(([name]) => !IRRELEVANT_REPORTS.has(name))
      .map(([name, value]) => `${name}=${value}`)
      .sort()
      .join('\u0001');
    this.#sessionKey = internSessionKey(
      `${this.#baseKey}\u0000${reported}\u0000${this.#settings.join('\u0001')}`,
    );
  }

  #exchange(result: Exchange['result'], writes: string[] | 'all' | null): Exchange {
    return {
      local: null,
      waiting: false,
      capture: null,
      writes,
      swallowParseComplete: 0,
      result,
      startedAt: performance.now(),
      lastTagRollback: false,
      failed: false,
      parsedNames: [],
      fingerprint: '',
    };
  }

  #takeInjected(exchange: Exchange): void {
    exchange.swallowParseComplete += this.#pendingInjected;
    this.#pendingInjected = 0;
  }

  #send(frames: Buffer[], exchange: Exchange): void {
    this.#takeInjected(exchange);
    this.#queue.push(exchange);
    for (const frame of frames) this.#writeOrigin(frame);
  }

  #noteWrites(writes: string[] | 'all'): void {
    if (writes === 'all' || this.#txWrites === 'all') {
      this.#txWrites = 'all';
      return;
    }
    this.#txWrites ??= new Set();
    for (const table of writes) this.#txWrites.add(table);
  }

  // Frames for the origin are batched and written once per batch of client input: pgbench's five
  // extended-protocol messages would otherwise cost five system calls.
  #writeOrigin(frame: Buffer): void {
    this.#toOrigin.push(frame);
  }

  #flushOrigin(): void {
    const frames = this.#toOrigin;
    const origin = this.#origin;
    if (frames.length === 0 || origin === null) return;
    this.#toOrigin = [];
    let ok: boolean;
    if (frames.length === 1) ok = origin.write(frames[0] as Buffer);
    else if (frames.length <= 64) ok = origin.write(Buffer.concat(frames));
    else {
      origin.cork();
      for (const frame of frames) origin.write(frame);
      origin.uncork();
      ok = origin.writableLength < origin.writableHighWaterMark;
    }
    // A slow origin: stop reading the client until the origin drains.
    if (!ok) this.#client.pause();
  }

  // ---- origin → edge ----

  #onOriginData(chunk: Buffer): void {
    if (this.#step.kind === 'closed') return;
    try {
      this.#frames.push(chunk, this);
      this.#flushOut();
    } catch (error) {
      this.#fail(error);
    }
  }

  frame(code: number, buffer: Buffer, start: number, end: number): void {
    if (this.#step.kind === 'authenticating') return this.#authFrame(code, buffer, start, end);
    const exchange = this.#queue[0];
    switch (code) {
      case codes.ReadyForQuery:
        this.#forward(buffer, start, end);
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
        return this.#forward(buffer, start, end);
      case codes.BindComplete:
        return this.#forward(buffer, start, end);
      case codes.ParameterStatus:
        this.#onParameterStatus(buffer.subarray(start, end));
        return this.#forward(buffer, start, end);
      case codes.NotificationResponse:
        return this.#forward(buffer, start, end);
      case codes.ErrorResponse:
        if (exchange !== undefined) exchange.failed = true;
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
    this.#forward(buffer, start, end);
  }

  piece(code: number, piece: Buffer, last: boolean): void {
    const exchange = this.#queue[0];
    if (exchange?.capture != null) exchange.capture.ok = false;
    if (code === codes.ErrorResponse && exchange !== undefined) exchange.failed = true;
    this.#flushRun();
    this.#out.push(piece);
    if (last && this.#out.length > 64) this.#flushOut();
  }

  #capture(capture: Capture, code: number, frame: Buffer): void {
    capture.bytes += frame.length;
    if (capture.bytes > this.#runtime.results.maxEntryBytes) {
      capture.ok = false;
      capture.pieces = [];
      return;
    }
    capture.pieces.push(frame);
  }

  #onTag(exchange: Exchange, tag: string): void {
    exchange.lastTagRollback = tag === 'ROLLBACK';
    // A COMMIT tag (several statements in one Query) means what was written is visible to everyone.
    if (tag === 'COMMIT') {
      this.#applyWrites(exchange);
      this.#invalidate();
    }
  }

  // An exchange's writes count for its transaction once the origin has answered it (not when sent:
  // an earlier exchange's ReadyForQuery must not invalidate before the write has happened).
  #applyWrites(exchange: Exchange): void {
    if (exchange.writes === null) return;
    this.#noteWrites(exchange.writes);
    exchange.writes = null;
  }

  #complete(status: number): void {
    const exchange = this.#queue.shift();
    this.#txStatus = String.fromCharCode(status) as TransactionStatus;
    if (exchange === undefined) return;
    const cache = this.#cache as CacheState;
    this.#applyWrites(exchange);
    if (this.#txStatus === 'I' && this.#txWrites !== null) {
      if (exchange.lastTagRollback) this.#txWrites = null;
      else this.#invalidate();
    }
    if (exchange.failed) {
      for (const name of exchange.parsedNames) this.#statements.delete(name);
    }
    const capture = exchange.capture;
    if (capture !== null) {
      let entry: CacheEntry | null = null;
      const clean = this.#txStatus === 'I' || this.#txWrites === null;
      if (capture.ok && !exchange.failed && clean && capture.pieces.length > 0) {
        entry = this.#runtime.results.set({
          key: capture.key,
          epochs: cache.epochs,
          tables: capture.tables,
          response: Buffer.concat(
            capture.extended
              ? [PARSE_COMPLETE, BIND_COMPLETE, ...capture.pieces, RFQ.I]
              : [...capture.pieces, RFQ.I],
          ),
          fingerprint: capture.fingerprint,
          transactionPolicy: capture.policy.transactionPolicy,
          ttlMs: capture.policy.ttlMs,
          askedEpoch: capture.askedEpoch,
        });
      }
      if (capture.leader) this.#runtime.results.settle(capture.key, entry);
      cache.stats.misses += 1;
      cache.stats.missLatency.record(performance.now() - exchange.startedAt);
    }
    this.#flushLocal();
  }

  #invalidate(): void {
    const writes = this.#txWrites;
    this.#txWrites = null;
    if (writes === null) return;
    const cache = this.#cache as CacheState;
    this.#runtime.results.invalidate(cache.epochs, writes === 'all' ? 'all' : [...writes]);
  }

  #onParameterStatus(frame: Buffer): void {
    const nameEnd = frame.indexOf(0, 5);
    const name = frame.toString('utf8', 5, nameEnd);
    const value = frame.toString('utf8', nameEnd + 1, frame.length - 1);
    this.#reported.set(name, value);
    if (name === 'standard_conforming_strings') this.#standardStrings = value === 'on';
    if (this.#step.kind === 'ready') this.#rebuildSessionKey();
  }

  // Answers from the store that have reached the head of the queue go out, with the current status.
  #flushLocal(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Exchange;
      if (head.local === null) return;
      this.#queue.shift();
      this.#flushRun();
      this.#pushHit(this.#out, head.local.entry, head.local.extended);
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
          this.#flushRun();
          this.#out.push(serialize.authenticationSASL(offered));
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
        this.#rebuildSessionKey();
        break;
      case codes.ErrorResponse:
        this.#forward(buffer, start, end);
        this.#flushOut();
        this.#client.end();
        return;
    }
    this.#forward(buffer, start, end);
  }

  // ---- output ----

  #forward(buffer: Buffer, start: number, end: number): void {
    if (this.#runBuffer === buffer && this.#runEnd === start) {
      this.#runEnd = end;
      return;
    }
    this.#flushRun();
    this.#runBuffer = buffer;
    this.#runStart = start;
    this.#runEnd = end;
  }

  #flushRun(): void {
    if (this.#runBuffer === null) return;
    this.#out.push(this.#runBuffer.subarray(this.#runStart, this.#runEnd));
    this.#runBuffer = null;
  }

  #flushOut(): void {
    this.#flushOrigin();
    this.#flushRun();
    const out = this.#out;
    if (out.length === 0 || this.#step.kind === 'closed') return;
    this.#out = [];
    const client = this.#client;
    let ok: boolean;
    if (out.length === 1) ok = client.write(out[0] as Buffer);
    else if (out.length <= 16) ok = client.write(Buffer.concat(out));
    else {
      client.cork();
      for (const piece of out) client.write(piece);
      client.uncork();
      ok = client.writableLength < client.writableHighWaterMark;
    }
    // A slow client: stop reading from the origin (and from the client) until it catches up.
    if (!ok) {
      this.#origin?.pause();
      client.pause();
      client.once('drain', () => {
        if (!this.#blocked) client.resume();
      });
    }
  }

  #originGone(): void {
    if (this.#step.kind === 'closed') return;
    // 08006 connection_failure: the client learns why instead of seeing a bare EOF.
    this.#refuse('08006', 'the origin database closed the connection');
  }
}

// Session keys (cache, database, user, settings) are long; each distinct one gets a short id so the
// per-query key is short to build and hash. Ids are never reused, so clearing the map when it grows
// only costs the entries of sessions that are gone.
const sessionIds = new Map<string, string>();
let nextSessionId = 0;
const MAX_SESSION_IDS = 100_000;

function internSessionKey(full: string): string {
  let id = sessionIds.get(full);
  if (id === undefined) {
    if (sessionIds.size >= MAX_SESSION_IDS) sessionIds.clear();
    nextSessionId += 1;
    id = `s${nextSessionId.toString(36)}`;
    sessionIds.set(full, id);
  }
  return id;
}

// Offset in a Bind frame where its parameter formats begin (after portal and statement names).
function bindParametersOffset(bind: BindMessage): number {
  const portalEnd = bind.frame.indexOf(0, 5);
  return bind.frame.indexOf(0, portalEnd + 1) + 1;
}

// The parameter-type section of a Parse frame (after name and query text).
function parseTypes(parse: ParseMessage): string {
  const nameEnd = parse.frame.indexOf(0, 5);
  const sqlEnd = parse.frame.indexOf(0, nameEnd + 1);
  return parse.frame.toString('latin1', sqlEnd + 1);
}

function saslMechanisms(frame: Buffer): string[] {
  const mechanisms: string[] = [];
  let offset = 9;
  while (offset < frame.length) {
    const end = frame.indexOf(0, offset);
    if (end <= offset) break;
    mechanisms.push(frame.toString('utf8', offset, end));
    offset = end + 1;
  }
  return mechanisms;
}

function usesUnnamedStatement(message: FrontendMessage): boolean {
  if (message.kind === 'bind') return message.statement === '';
  if (message.kind === 'describe' || message.kind === 'close') {
    return message.target === 'S' && message.name === '';
  }
  return false;
}

function addWrites(exchange: Exchange, writes: string[] | 'all'): void {
  if (writes === 'all' || exchange.writes === 'all') exchange.writes = 'all';
  else exchange.writes = [...(exchange.writes ?? []), ...writes];
}
