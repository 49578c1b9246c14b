// Fields the session reads out of raw frames without decoding them whole.
import type { BindMessage, FrontendMessage, ParseMessage } from '../protocol/messages.ts';

// Offset in a Bind frame where its parameter formats begin (after portal and statement names).
export function bindParametersOffset(bind: BindMessage): number {
  const portalEnd = bind.frame.indexOf(0, 5);
  return bind.frame.indexOf(0, portalEnd + 1) + 1;
}

// The parameter-type section of a Parse frame (after name and query text).
export function parseTypes(parse: ParseMessage): string {
  const nameEnd = parse.frame.indexOf(0, 5);
  const sqlEnd = parse.frame.indexOf(0, nameEnd + 1);
  return parse.frame.toString('latin1', sqlEnd + 1);
}

export function saslMechanisms(frame: Buffer): string[] {
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

export function usesUnnamedStatement(message: FrontendMessage): boolean {
  if (message.kind === 'bind') return message.statement === '';
  if (message.kind === 'describe' || message.kind === 'close') {
    return message.target === 'S' && message.name === '';
  }
  return false;
}

// ErrorResponse fields giving the severity: untranslated (V, since 9.6), then localized (S).
const SEVERITY_FIELD = 0x56; // V
const LOCALIZED_SEVERITY_FIELD = 0x53; // S

// The SQLSTATE (`C` field) of an ErrorResponse.
export function errorCode(buffer: Buffer, start: number, end: number): string {
  let offset = start + 5;
  while (offset < end && buffer[offset] !== 0) {
    const valueEnd = buffer.indexOf(0, offset + 1);
    if (valueEnd < 0 || valueEnd >= end) break;
    if (buffer[offset] === 0x43) return buffer.toString('latin1', offset + 1, valueEnd);
    offset = valueEnd + 1;
  }
  return 'unknown';
}

// Whether an ErrorResponse ends the session: its severity (the untranslated `V` field, else `S`)
// is FATAL or PANIC.
export function endsSession(buffer: Buffer, start: number, end: number): boolean {
  let severity = '';
  let offset = start + 5;
  while (offset < end && buffer[offset] !== 0) {
    const field = buffer[offset] as number;
    const valueEnd = buffer.indexOf(0, offset + 1);
    if (valueEnd < 0 || valueEnd >= end) break;
    if (field === SEVERITY_FIELD || (field === LOCALIZED_SEVERITY_FIELD && severity === '')) {
      severity = buffer.toString('latin1', offset + 1, valueEnd);
    }
    offset = valueEnd + 1;
  }
  return severity === 'FATAL' || severity === 'PANIC';
}
