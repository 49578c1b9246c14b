// Failures every credential test shares: socket and TLS errors, the deadline, and message hygiene.
import { isIPv6 } from 'node:net';
import type { TestFailure } from './types.ts';

/** Node's codes for a certificate the client would not accept (see `tls.TLSSocket#authorizationError`). */
const CERTIFICATE_ERRORS = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

/** Where a test dials, named as the user typed it. */
export interface Target {
  host: string;
  port: number;
}

export function formatTarget({ host, port }: Target): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Driver messages echo what they were given; a password must never reach the user or a log. */
export function redact(message: string, secret: string): string {
  return secret === '' ? message : message.split(secret).join('********');
}

/** A login and one tiny query never need more; a hostile server could otherwise fill memory. */
export const MAX_RECEIVED_BYTES = 1024 * 1024;
export const TOO_MUCH_DATA = 'EDGEGATE_TOO_MUCH_DATA';

/** Destroys `socket` with a TOO_MUCH_DATA error once it has received more than the cap. */
export function capReceived(socket: {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  destroy(error?: Error): unknown;
}): void {
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_RECEIVED_BYTES)
      socket.destroy(
        Object.assign(new Error('the server sent too much data'), { code: TOO_MUCH_DATA }),
      );
  });
}

export function timedOut(target: Target, timeoutMs: number): TestFailure {
  return {
    ok: false,
    code: 'timeout',
    field: 'host',
    message: `${formatTarget(target)} did not answer within ${formatDuration(timeoutMs)}.`,
  };
}

/** Socket and TLS failures, which look the same whichever database is behind them; null for anything else. */
export function networkFailure(
  error: unknown,
  target: Target,
  tlsField: string,
): TestFailure | null {
  const code = errorCode(error);
  const where = formatTarget(target);
  switch (code) {
    case 'ECONNREFUSED':
      return {
        ok: false,
        code: 'connection_refused',
        field: 'port',
        message: `Nothing is listening on ${where}.`,
      };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return {
        ok: false,
        code: 'host_not_found',
        field: 'host',
        message: `The host name "${target.host}" could not be resolved.`,
      };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return {
        ok: false,
        code: 'connection_refused',
        field: 'host',
        message: `There is no network route to ${where}.`,
      };
    case 'ETIMEDOUT':
      return {
        ok: false,
        code: 'timeout',
        field: 'host',
        message: `${where} did not answer in time.`,
      };
    case TOO_MUCH_DATA:
      return {
        ok: false,
        code: 'protocol_error',
        field: 'host',
        message: `${where} sent more than ${MAX_RECEIVED_BYTES / 1024} KiB while logging in; Edgegate stopped listening.`,
      };
    case 'ECONNRESET':
    case 'EPIPE':
      return {
        ok: false,
        code: 'protocol_error',
        field: 'port',
        message: `${where} closed the connection during the handshake.`,
      };
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return {
      ok: false,
      code: 'tls_unavailable',
      field: tlsField,
      message: `${where} does not speak TLS.`,
    };
  }
  if (code !== undefined && (CERTIFICATE_ERRORS.has(code) || code.startsWith('ERR_SSL_'))) {
    return {
      ok: false,
      code: 'tls_failed',
      field: tlsField,
      message: `The TLS handshake with ${where} failed: ${errorMessage(error)}.`,
    };
  }
  return null;
}

export function unexpectedFailure(error: unknown, secret: string): TestFailure {
  return {
    ok: false,
    code: 'unknown',
    message: `The test failed: ${redact(errorMessage(error), secret)}`,
  };
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}
