// Browser sessions of the partner app: a random id in an HttpOnly cookie, the data on the server.
// They hold what must survive one round trip to Edgegate (OAuth state and PKCE verifier, the
// connect flow's state) and the CSRF token of the app's own forms; nothing is in the cookie itself.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export interface BrowserSession {
  csrfToken: string;
  /** Between "Connect Edgegate" and the OAuth callback. */
  authorization?: { state: string; codeVerifier: string };
  /** Between opening the hosted connect page and coming back from it. */
  connectState?: string;
}

/** Not `eg_…`: cookies are per host, not per port, and Edgegate's own run on the same 127.0.0.1. */
const COOKIE = 'partner_sid';
const MAX_SESSIONS = 10_000;

export const randomId = () => randomBytes(32).toString('base64url');

export function createSessions() {
  const sessions = new Map<string, BrowserSession>();
  /** Per request, so the CSRF check and the handler see the same (possibly new) session. */
  const opened = new WeakMap<object, BrowserSession>();

  return {
    /** The request's session, or a new one whose cookie `setCookie` receives. */
    of(
      request: { headers: { cookie?: string } },
      setCookie: (value: string) => void,
    ): BrowserSession {
      const seen = opened.get(request);
      if (seen) return seen;
      const id = cookieValue(request.headers.cookie, COOKIE);
      let session = id === undefined ? undefined : sessions.get(id);
      if (!session) {
        // A toy bound instead of expiry: the oldest sessions go first.
        if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
        session = { csrfToken: randomId() };
        const newId = randomId();
        sessions.set(newId, session);
        setCookie(`${COOKIE}=${newId}; Path=/; HttpOnly; SameSite=Lax`);
      }
      opened.set(request, session);
      return session;
    },
  };
}

export function sameSecret(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const pair of (header ?? '').split(';')) {
    const [key, ...value] = pair.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}
