// The one error the MySQL codec throws: a peer broke the wire protocol, so the connection must close.
import { ER_MALFORMED_PACKET, SQLSTATE_GENERAL_ERROR } from './codes.ts';

export class ProtocolError extends Error {
  // The server error code and SQLSTATE a MySQL server reports for the same fault, so the edge
  // can answer with the ERR packet the client would have got from the origin.
  readonly errno: number;
  readonly sqlState: string;

  constructor(message: string, errno = ER_MALFORMED_PACKET, sqlState = SQLSTATE_GENERAL_ERROR) {
    super(message);
    this.name = 'ProtocolError';
    this.errno = errno;
    this.sqlState = sqlState;
  }
}
