// The statements a Postgres client prepared, as the edge keeps track of them: named ones and the
// unnamed one, whether the origin holds the unnamed statement the client believes it defined (a
// cache hit may have answered its Parse), and the unit shape a cached read can answer.
import type { BindMessage, FrontendMessage, ParseMessage } from '../protocol/messages.ts';
import type { Statement } from './exchange.ts';
import { parseTypes, usesUnnamedStatement } from './frame-fields.ts';

/** A unit of extended-protocol messages that a cached read can answer, and its parts. */
export interface CacheableUnit {
  parse: ParseMessage | null;
  bind: BindMessage;
  describe: boolean;
  statement: Statement;
}

export class PreparedStatements {
  readonly #named = new Map<string, Statement>();
  #unnamed: Statement | null = null;
  #originHasUnnamed = true;
  // Parses of the unnamed statement re-sent to the origin whose ParseComplete is not the client's.
  #injected = 0;

  /** The statement a Bind names ('' is the unnamed one). */
  get(name: string): Statement | null {
    return (name === '' ? this.#unnamed : this.#named.get(name)) ?? null;
  }

  /** A Parse the origin gets. */
  define(name: string, statement: Statement): void {
    if (name === '') {
      this.#unnamed = statement;
      this.#originHasUnnamed = true;
    } else {
      this.#named.set(name, statement);
    }
  }

  /** A cache hit answered the client's unnamed Parse: the origin still holds the previous one. */
  answeredUnnamedParse(statement: Statement): void {
    this.#unnamed = statement;
    this.#originHasUnnamed = false;
  }

  /** A Close of a statement, or a Parse that failed. */
  forget(name: string): void {
    if (name === '') this.#unnamed = null;
    else this.#named.delete(name);
  }

  /** DISCARD ALL and the like: the origin forgot them all. */
  clear(): void {
    this.#named.clear();
    this.#unnamed = null;
  }

  /**
   * Frames of a unit as the origin must get them, re-sending the unnamed statement first when a
   * cache hit answered its Parse and the origin never saw it (see takeInjected).
   */
  frames(unit: readonly FrontendMessage[]): Buffer[] {
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
    if (injected) this.#injected += 1;
    return frames;
  }

  /** How many ParseCompletes of re-sent Parses the exchange sent next must swallow. */
  takeInjected(): number {
    const injected = this.#injected;
    this.#injected = 0;
    return injected;
  }

  /**
   * [Parse] Bind [Describe portal] Execute(all rows) Sync, on the unnamed portal: the shape a
   * cached read can answer. Returns its parts, or null.
   */
  cacheableUnit(unit: readonly FrontendMessage[]): CacheableUnit | null {
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
    let statement: Statement | null;
    if (parse !== null) {
      if (parse.name !== bind.statement) return null;
      statement = { sql: parse.sql, types: parseTypes(parse), frame: parse.frame };
    } else {
      statement = this.get(bind.statement);
    }
    return statement === null ? null : { parse, bind, describe, statement };
  }
}
