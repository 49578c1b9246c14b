// The hosted connect flow from a partner's backend (docs/connect.md): mint a session, open its
// page, exchange the page's result code for the connection.
import type { EdgegateClient } from './client.ts';
import type { ConnectSessionCreate } from './types.ts';

/** A single-use link to the hosted connect page; the token in it is shown only now. */
export function createConnectSession(client: EdgegateClient, input: ConnectSessionCreate) {
  return client.connect.createSession(input);
}

/** The code the page sent back (to `redirect_url` or by postMessage) → `{connectionId, type, name}`. */
export function exchangeConnectCode(client: EdgegateClient, code: string) {
  return client.connect.exchange(code);
}

/**
 * The page to open (popup, iframe or full page). `state` is echoed back with the code, so the
 * partner can tie the result to the click that started it.
 */
export function connectPageUrl(session: { redirect_url: string }, state?: string): string {
  const url = new URL(session.redirect_url);
  if (state !== undefined) url.searchParams.set('state', state);
  return url.toString();
}
