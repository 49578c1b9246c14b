// Tells a store outage from a bug: an error that means the store cannot be reached (refused,
// dropped, shutting down, too busy to connect) is answered 503 with Retry-After, not 500.

// SQLSTATE classes and codes that say the server or the connection is gone, not the statement.
const UNAVAILABLE_SQLSTATES = /^(08...|57P0[1-4]|53300|53200)$/;
// What node-postgres itself throws when a connection ends or cannot be made in time.
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'the store is closed',
];
// Socket errors: from the store's pool when it cannot reach Postgres.
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Seconds a client is asked to wait before retrying while the store is unavailable. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** An error node-postgres raises only when the store is out of reach. */
export function isStoreConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_SQLSTATES.test(code) && 'severity' in error)
    return true;
  return UNAVAILABLE_MESSAGES.some((message) => error.message.includes(message));
}

/**
 * A socket error, which may come from the store or from elsewhere (an origin, a webhook): the
 * caller asks the store whether it answers before blaming it.
 */
export function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NETWORK_CODES.has(code);
}
