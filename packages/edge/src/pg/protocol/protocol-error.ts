// The one error the codec throws: a peer broke the wire protocol, so the connection must close.

// SQLSTATE protocol_violation, what Postgres itself reports for malformed messages.
export const PROTOCOL_VIOLATION = '08P01';

export class ProtocolError extends Error {
  readonly code = PROTOCOL_VIOLATION;

  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}
