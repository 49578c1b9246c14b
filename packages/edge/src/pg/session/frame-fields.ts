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
