// A MySQL text's template: constants replaced by `?`, comments dropped, whitespace collapsed. Texts that
// differ only in constants share a template, so the edge analyses a template once (as libpg-query's
// fingerprint lets the Postgres edge do). A single pass over the characters, no parser.
import { createHash } from 'node:crypto';

export interface LexOptions {
  /** sql_mode NO_BACKSLASH_ESCAPES: a backslash in a string is a plain character. */
  noBackslashEscapes?: boolean;
  /** sql_mode ANSI_QUOTES: "x" is an identifier, not a string. */
  ansiQuotes?: boolean;
}

export interface Template {
  /** The normalised text. Identifiers keep their case: table names are case-sensitive on Linux. */
  template: string;
  /** A short hash of the template. */
  fingerprint: string;
  /** The text with executable comments (`/*! … *\/`, `/*M! … *\/`) opened up, as the server runs it. */
  executableText: string;
  hasExecutableComment: boolean;
  /** A string, quoted identifier or comment is never closed. */
  unterminated: boolean;
  /** The template grew past MAX_TEMPLATE_CHARS: lexing stopped there, and the rest is not in it. */
  truncated: boolean;
}

// Past this a text is not worth a template (no grammar parses it in time): the lexer stops, so a
// 16 MiB statement of tokens costs no more than a long one. Long constants do not count.
export const MAX_TEMPLATE_CHARS = 16 * 1024;

const WORD = /[\w$\u0080-\uffff]/;
const NUMBER = /^(?:0x[0-9a-f]+|0b[01]+|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(?![\w$\u0080-\uffff])/i;
const EXECUTABLE_OPEN = /^\/\*M?!\d*/;

export function templateOf(sql: string, options: LexOptions = {}): Template {
  let out = '';
  let executable = '';
  let hasExecutableComment = false;
  let unterminated = false;
  // Inside an executable comment, its `*/` closes it and is dropped from the executable text.
  let inExecutable = false;
  let pendingSpace = false;
  const emit = (token: string, raw: string = token) => {
    if (pendingSpace && out !== '') out += ' ';
    pendingSpace = false;
    out += token;
    executable += raw;
  };
  let i = 0;
  const n = sql.length;
  while (i < n && out.length <= MAX_TEMPLATE_CHARS) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') {
      pendingSpace = true;
      executable += c;
      i++;
    } else if (
      (c === '-' && next === '-' && (i + 2 >= n || /\s/.test(sql[i + 2] as string))) ||
      c === '#'
    ) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end;
      pendingSpace = true;
      executable += ' ';
    } else if (c === '/' && next === '*') {
      const open = EXECUTABLE_OPEN.exec(sql.slice(i, i + 12));
      if (open !== null && !inExecutable) {
        hasExecutableComment = true;
        inExecutable = true;
        emit(open[0], ' ');
        i += open[0].length;
        continue;
      }
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) unterminated = true;
      i = end < 0 ? n : end + 2;
      pendingSpace = true;
      executable += ' ';
    } else if (c === '*' && next === '/' && inExecutable) {
      inExecutable = false;
      emit('*/', ' ');
      i += 2;
    } else if (c === "'" || (c === '"' && options.ansiQuotes !== true)) {
      const end = quotedEnd(sql, i, c, options.noBackslashEscapes !== true);
      if (end < 0) unterminated = true;
      const stop = end < 0 ? n : end;
      emit('?', sql.slice(i, stop));
      i = stop;
    } else if (c === '`' || c === '"') {
      const end = quotedEnd(sql, i, c, false);
      if (end < 0) unterminated = true;
      const stop = end < 0 ? n : end;
      emit(sql.slice(i, stop));
      i = stop;
    } else if (
      WORD.test(c) ||
      (c === '.' && /\d/.test(next ?? '') && !WORD.test(sql[i - 1] ?? ''))
    ) {
      const number = /[\d.]/.test(c) ? NUMBER.exec(sql.slice(i, i + 100)) : null;
      if (number !== null && !WORD.test(sql[i - 1] ?? '')) {
        emit('?', number[0]);
        i += number[0].length;
      } else {
        let end = i + 1;
        while (end < n && end - i <= MAX_TEMPLATE_CHARS && WORD.test(sql[end] as string)) end++;
        emit(sql.slice(i, end));
        i = end;
      }
    } else {
      emit(c);
      i++;
    }
  }
  if (inExecutable) unterminated = true;
  return {
    template: out,
    fingerprint: createHash('sha256').update(out).digest('hex').slice(0, 16),
    executableText: executable,
    hasExecutableComment,
    unterminated,
    truncated: out.length > MAX_TEMPLATE_CHARS,
  };
}

// Index just past the closing quote; a doubled quote is an escaped one, and so is a backslashed one
// where backslashes escape. -1 when the text ends first.
function quotedEnd(sql: string, start: number, quote: string, backslashes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashes && c === '\\') {
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return -1;
}
