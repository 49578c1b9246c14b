// Console identity: the session cookie, CSRF tokens bound to it, and one-time flash messages.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/store.ts';
import type { User } from '../db/schema.ts';
import { Problem } from '../problem.ts';
import { deriveKey, hmac, safeEqual, seal, unseal } from '../services/crypto.ts';
import { resolveSession, SESSION_TTL_MS } from '../services/sessions.ts';
import { checkFormOrigin } from './form-origin.ts';

export const SESSION_COOKIE = 'eg_session';
const ANON_COOKIE = 'eg_csrf';
const FLASH_COOKIE = 'eg_flash';

export interface Flash {
  message: string;
  secret?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: User | undefined;
    sessionToken: string | undefined;
    csrfToken(): string;
    takeFlash(): Flash | undefined;
  }
  interface FastifyReply {
    startSession(token: string): FastifyReply;
    endSession(): FastifyReply;
    flash(flash: Flash): FastifyReply;
  }
  interface FastifyContextConfig {
    /** Console route: errors render as a page, forms need a CSRF token. */
    html?: boolean;
  }
}

export interface ConsoleSessionOptions {
  db: Db;
  secret: string;
  secureCookies: boolean;
  publicOrigin: string;
}

export function registerConsoleSession(app: FastifyInstance, options: ConsoleSessionOptions) {
  const csrfKey = deriveKey(options.secret, 'console csrf');
  const flashKey = deriveKey(options.secret, 'console flash');
  const cookieBase = {
    path: '/',
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: options.secureCookies,
  };

  app.decorateRequest('user', undefined);
  app.decorateRequest('sessionToken', undefined);

  /** Before a session exists the token is bound to a random anonymous cookie instead. */
  app.decorateRequest('csrfToken', function (this: FastifyRequest) {
    if (this.sessionToken) return hmac(csrfKey, `session:${this.sessionToken}`);
    const anon = this.cookies[ANON_COOKIE] ?? (this as AnonCarrier).newAnon;
    if (!anon) throw new Error('csrfToken() called before the console hook ran');
    return hmac(csrfKey, `anon:${anon}`);
  });

  /** A flash (which may carry a one-time secret) is shown only to the session that caused it. */
  const owner = (request: FastifyRequest) =>
    hmac(
      csrfKey,
      `flash:${request.sessionToken ?? request.cookies[ANON_COOKIE] ?? (request as AnonCarrier).newAnon ?? ''}`,
    );

  app.decorateRequest('takeFlash', function (this: FastifyRequest) {
    const sealed = this.cookies[FLASH_COOKIE];
    if (!sealed) return undefined;
    (this as FlashCarrier).flashTaken = true;
    const opened = openFlash(flashKey, sealed);
    if (!opened || !safeEqual(opened.owner, owner(this))) return undefined;
    return opened.flash;
  });

  app.decorateReply('startSession', function (this: FastifyReply, token: string) {
    return this.setCookie(SESSION_COOKIE, token, { ...cookieBase, maxAge: SESSION_TTL_MS / 1000 });
  });
  app.decorateReply('endSession', function (this: FastifyReply) {
    return this.clearCookie(SESSION_COOKIE, cookieBase);
  });
  app.decorateReply('flash', function (this: FastifyReply, flash: Flash) {
    return this.setCookie(
      FLASH_COOKIE,
      sealFlash(flashKey, { flash, owner: owner(this.request) }),
      {
        ...cookieBase,
        maxAge: 120,
      },
    );
  });

  app.addHook('onRequest', async (request, reply) => {
    if (!request.routeOptions.config?.html) return;
    const token = request.cookies[SESSION_COOKIE];
    if (token) {
      const session = await resolveSession(options.db, token);
      if (session) {
        request.user = session.user;
        request.sessionToken = token;
        if (session.renewed) reply.startSession(token);
      } else {
        reply.endSession();
      }
    }
    if (!request.sessionToken && !request.cookies[ANON_COOKIE]) {
      const anon = randomBytes(16).toString('base64url');
      (request as AnonCarrier).newAnon = anon;
      reply.setCookie(ANON_COOKIE, anon, cookieBase);
    }
    reply.headers({
      'content-security-policy': consoleCsp(),
      'x-content-type-options': 'nosniff',
      // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with our own
      // form posts, which checkFormOrigin refuses; other sites still get no Referer.
      'referrer-policy': 'same-origin',
      'cache-control': 'no-store',
    });
  });

  app.addHook('onSend', async (request, reply) => {
    if ((request as FlashCarrier).flashTaken) reply.clearCookie(FLASH_COOKIE, cookieBase);
  });

  /** Every state-changing console request carries a token only our pages can know. */
  app.addHook('preHandler', async (request) => {
    if (!request.routeOptions.config?.html || request.method === 'GET' || request.method === 'HEAD')
      return;
    checkFormOrigin(request.headers.origin, [options.publicOrigin, requestOrigin(request)]);
    const sent = (request.body as Record<string, unknown> | undefined)?._csrf;
    if (typeof sent !== 'string' || !safeEqual(sent, request.csrfToken())) {
      throw new Problem(
        'csrf.invalid',
        403,
        'This form has expired or did not come from Edgegate. Go back, reload the page and try again.',
      );
    }
  });
}

/**
 * The console's Content-Security-Policy. `formTargets` adds origins a form may end up at: the
 * browser checks form-action against every redirect after a submit, so the OAuth consent form
 * must be allowed to land on the partner's registered redirect URI.
 */
export function consoleCsp(formTargets: string[] = []): string {
  const formAction = ["'self'", ...formTargets].join(' ');
  return `default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; form-action ${formAction}; base-uri 'none'`;
}

interface AnonCarrier {
  newAnon?: string;
}
interface FlashCarrier {
  flashTaken?: boolean;
}

function requestOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

interface SealedFlash {
  flash: Flash;
  owner: string;
}

function sealFlash(key: Buffer, flash: SealedFlash): string {
  return seal(key, JSON.stringify(flash));
}

function openFlash(key: Buffer, sealed: string): SealedFlash | undefined {
  try {
    return JSON.parse(unseal(key, sealed)) as SealedFlash;
  } catch {
    return undefined;
  }
}
