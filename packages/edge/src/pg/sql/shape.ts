// The shape of a SQL text: its tokens with every literal replaced, so that statements that differ
// only in constants share one analysis. A hand-written scan, because the hot path cannot afford a
// full parse per distinct text (pgbench -S sends a new literal every time).
//
// Safety: two texts get the same shape only when every token outside a literal is the same, so a
// write can never hide inside a text that shares a read's shape, provided we split literals
// exactly where Postgres does. That holds with standard_conforming_strings on (the default since
// 9.1); the session does not use shapes when it is off. A text we cannot scan confidently
// (unterminated literal or comment) gets no shape and is parsed on its own.

// Date/time inputs whose value depends on the clock: a literal like this keeps its text in the
// shape, so `'now'::timestamptz` is analysed (and refused) apart from other casts.
const CLOCK_WORD = /\b(now|today|tomorrow|yesterday)\b/i;

const QUOTE = 0x27; // '
const DOUBLE_QUOTE = 0x22; // "
const DOLLAR = 0x24; // $
const DASH = 0x2d; // -
const SLASH = 0x2f; // /
const STAR = 0x2a; // *
const DOT = 0x2e; // .
const NEWLINE = 0x0a; // \n
const RETURN = 0x0d; // \r
const BACKSLASH = 0x5c; // \
const AMPERSAND = 0x26; // &
const UNDERSCORE = 0x5f; // _

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === UNDERSCORE || c >= 0x80;
}

function isIdentPart(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === DOLLAR;
}

function isSign(c: number): boolean {
  return c === 0x2b || c === DASH;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === NEWLINE || c === 0x0d || c === 0x0c || c === 0x0b;
}

/** The shape of `sql`, or null when it cannot be scanned confidently. */
export function sqlShape(sql: string): string | null {
  let out = '';
  let i = 0;
  const n = sql.length;
  let pendingSpace = false;
  let lastWasString = false;
  const emit = (token: string): void => {
    if (pendingSpace && out !== '') out += ' ';
    pendingSpace = false;
    out += token;
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      pendingSpace = true;
      i += 1;
      continue;
    }
    if (c === DASH && sql.charCodeAt(i + 1) === DASH) {
      // Postgres ends a line comment at \n or \r.
      let end = i + 2;
      while (end < n && sql.charCodeAt(end) !== NEWLINE && sql.charCodeAt(end) !== RETURN) end += 1;
      i = end;
      pendingSpace = true;
      continue;
    }
    if (c === SLASH && sql.charCodeAt(i + 1) === STAR) {
      // Block comments nest in Postgres.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql.charCodeAt(i) === SLASH && sql.charCodeAt(i + 1) === STAR) {
          depth += 1;
          i += 2;
        } else if (sql.charCodeAt(i) === STAR && sql.charCodeAt(i + 1) === SLASH) {
          depth -= 1;
          i += 2;
        } else i += 1;
      }
      if (depth > 0) return null;
      pendingSpace = true;
      continue;
    }
    if (c === QUOTE) {
      // 'a'<newline>'b' is one literal to Postgres; such texts are analysed on their own.
      if (lastWasString) return null;
      const end = standardStringEnd(sql, i + 1);
      if (end < 0) return null;
      emit(literalToken(sql.slice(i + 1, end - 1)));
      lastWasString = true;
      i = end;
      continue;
    }
    lastWasString = false;
    if (isIdentStart(c)) {
      const next = sql.charCodeAt(i + 1);
      // E'…' (escapes), B'…' and X'…' (bit strings), U&'…' (Unicode escapes), N'…'.
      if (next === QUOTE && (c | 0x20) === 0x65) {
        const end = escapeStringEnd(sql, i + 2);
        if (end < 0) return null;
        emit(literalToken(sql.slice(i + 2, end - 1)));
        lastWasString = true;
        i = end;
        continue;
      }
      if (next === QUOTE && (c | 0x20) === 0x6e) {
        // N'…' is a typed literal (national character), not a plain string.
        const end = standardStringEnd(sql, i + 2);
        if (end < 0) return null;
        emit(`n${literalToken(sql.slice(i + 2, end - 1))}`);
        lastWasString = true;
        i = end;
        continue;
      }
      if (next === QUOTE && [0x62, 0x78].includes(c | 0x20)) {
        // A bit string ends at its first quote ('' is no escape there): anything else is refused.
        const end = sql.indexOf("'", i + 2);
        if (end < 0 || sql.charCodeAt(end + 1) === QUOTE) return null;
        emit("?b'");
        i = end + 1;
        continue;
      }
      if ((c | 0x20) === 0x75 && next === AMPERSAND) {
        // U&'…' and U&"…" carry a UESCAPE clause we do not model: scan such texts on their own.
        return null;
      }
      let end = i + 1;
      while (end < n && isIdentPart(sql.charCodeAt(end))) end += 1;
      emit(sql.slice(i, end).toLowerCase());
      i = end;
      continue;
    }
    if (c === DOUBLE_QUOTE) {
      let end = i + 1;
      for (;;) {
        const quote = sql.indexOf('"', end);
        if (quote < 0) return null;
        if (sql.charCodeAt(quote + 1) === DOUBLE_QUOTE) end = quote + 2;
        else {
          end = quote + 1;
          break;
        }
      }
      emit(sql.slice(i, end));
      i = end;
      continue;
    }
    if (c === DOLLAR) {
      const next = sql.charCodeAt(i + 1);
      if (isDigit(next)) {
        let end = i + 1;
        while (end < n && isDigit(sql.charCodeAt(end))) end += 1;
        emit(sql.slice(i, end));
        i = end;
        continue;
      }
      // Dollar quoting: $$…$$ or $tag$…$tag$.
      let tagEnd = i + 1;
      while (
        tagEnd < n &&
        sql.charCodeAt(tagEnd) !== DOLLAR &&
        isIdentPart(sql.charCodeAt(tagEnd))
      ) {
        tagEnd += 1;
      }
      if (sql.charCodeAt(tagEnd) !== DOLLAR) return null;
      const tag = sql.slice(i, tagEnd + 1);
      const close = sql.indexOf(tag, tagEnd + 1);
      if (close < 0) return null;
      emit(literalToken(sql.slice(tagEnd + 1, close)));
      i = close + tag.length;
      continue;
    }
    if (isDigit(c) || (c === DOT && isDigit(sql.charCodeAt(i + 1)))) {
      let end: number;
      const radix = c === 0x30 ? sql.charCodeAt(i + 1) | 0x20 : 0;
      if (radix === 0x78 || radix === 0x6f || radix === 0x62) {
        // 0x1F, 0o17, 0b101, with single `_` between digits; hex letters only after 0x.
        end = i + 2;
        const isRadixDigit = (d: number) =>
          isDigit(d) || (radix === 0x78 && (d | 0x20) >= 0x61 && (d | 0x20) <= 0x66);
        if (!isRadixDigit(sql.charCodeAt(end))) return null;
        while (end < n) {
          const d = sql.charCodeAt(end);
          if (isRadixDigit(d)) end += 1;
          else if (d === UNDERSCORE && isRadixDigit(sql.charCodeAt(end + 1))) end += 2;
          else break;
        }
      } else {
        // Digits (single `_` between them), at most one fraction, an optional exponent.
        end = i;
        let dot = false;
        while (end < n) {
          const d = sql.charCodeAt(end);
          if (isDigit(d)) end += 1;
          else if (d === UNDERSCORE && isDigit(sql.charCodeAt(end + 1)) && end > i) end += 1;
          else if (d === DOT && !dot) {
            dot = true;
            end += 1;
          } else break;
        }
        if (sql.charCodeAt(end) === DOT) return null;
        const e = sql.charCodeAt(end);
        if ((e | 0x20) === 0x65) {
          let digits = end + 1;
          if (isSign(sql.charCodeAt(digits))) digits += 1;
          if (!isDigit(sql.charCodeAt(digits))) return null;
          end = digits;
          while (end < n && isDigit(sql.charCodeAt(end))) end += 1;
        }
      }
      // A number running straight into a letter (`1abc`) is not something we model.
      if (end < n && isIdentStart(sql.charCodeAt(end))) return null;
      emit('?');
      i = end;
      continue;
    }
    if (c === BACKSLASH) return null;
    emit(sql[i] as string);
    i += 1;
  }
  return out;
}

// Index just past the closing quote of a standard string whose body starts at `from`
// ('' is a quote inside it), or -1.
function standardStringEnd(sql: string, from: number): number {
  let i = from;
  for (;;) {
    const quote = sql.indexOf("'", i);
    if (quote < 0) return -1;
    if (sql.charCodeAt(quote + 1) === QUOTE) {
      i = quote + 2;
      continue;
    }
    return quote + 1;
  }
}

// Same for E'…', where a backslash escapes the next character.
function escapeStringEnd(sql: string, from: number): number {
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) {
      if (sql.charCodeAt(i + 1) === QUOTE) i += 2;
      else return i + 1;
    } else i += 1;
  }
  return -1;
}

// A string literal is `?'`; one naming a clock word anywhere ('tomorrow 08:00', '[today,)')
// keeps its text, so it is analysed (and refused) apart from constant dates.
function literalToken(body: string): string {
  return CLOCK_WORD.test(body) ? `'${body.replaceAll("'", "''")}'` : "?'";
}
