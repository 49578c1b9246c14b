// The hosted connect page: GET shows the type picker or the form, POST tests the credentials for
// real and completes the session, POST …/cancel gives up. Errors render as pages, never redirects.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ConnectionTypeId } from '@edgegate/contract';
import type { Db } from '../../db/store.ts';
import type { ConnectSessionRow } from '../../db/schema.ts';
import { Problem } from '../../problem.ts';
import { deriveKey, hmac, safeEqual } from '../../services/crypto.ts';
import { createMemoryRateLimitStore, type RateLimitStore } from '../../services/rate-limit.ts';
import { checkOrigin } from '../../services/origin-guard.ts';
import { checkFormOrigin } from '../../plugins/form-origin.ts';
import type { OriginPolicy } from '../../services/caches.ts';
import { normalizeHostname } from '../../services/caches.ts';
import {
  CONNECTION_TYPE_ENTRIES,
  findConnectionType,
  validateConnectionConfig,
  type TestOutcome,
} from '../../connect/catalog/index.ts';
import {
  cancelSession,
  completeSession,
  findSessionByToken,
  SessionClosedError,
  sessionStatus,
} from '../../connect/sessions.ts';
import { announceDeliveries } from '../../connect/events.ts';
import type { Keyring } from '../../connect/keyring.ts';
import type { EventEmitter } from 'node:events';
import {
  CONNECT_CSS,
  errorPage,
  formPage,
  resultPage,
  typePickerPage,
  type FormSchema,
  type Partner,
  type Theme,
} from '../../views/connect.ts';
import { CONNECT_SCRIPT } from './connect-script.ts';

export interface HostedPageDeps {
  db: Db;
  keyring: Keyring;
  bus: EventEmitter;
  secret: string;
  publicUrl: string;
  originPolicy: OriginPolicy;
  /** How long "Test and save" may take to connect. */
  testTimeoutMs?: number;
  /** Shared counters (Redis), so the per-link test limit holds across nodes. */
  counters?: RateLimitStore;
}

/** Tests per session per 10 minutes: enough for typos, too few to scan a network through us. */
const TESTS_PER_WINDOW = 20;
const TEST_WINDOW_MS = 10 * 60_000;
/** Credential tests running at once in this process: each holds sockets and buffers for seconds. */
const MAX_CONCURRENT_TESTS = 16;

interface TokenParams {
  token: string;
}

export async function registerHostedConnectPages(app: FastifyInstance, deps: HostedPageDeps) {
  await app.register(async (scope) => hostedPages(scope, deps));
}

function hostedPages(app: FastifyInstance, deps: HostedPageDeps) {
  // Whatever goes wrong on these pages is shown as a page: a person is reading, not a program.
  app.setErrorHandler((error, request, reply) => {
    const status =
      error instanceof Problem
        ? error.status
        : ((error as { statusCode?: number }).statusCode ?? 500);
    if (status >= 500) request.log.error({ err: error }, 'connect page failed');
    headers(reply, null);
    return reply.code(status).send(
      errorPage({
        status,
        title: status >= 500 ? 'Something went wrong' : 'This request was refused',
        message:
          status >= 500
            ? 'Edgegate could not finish this step. Nothing was saved; try again in a moment.'
            : error instanceof Error
              ? error.message
              : 'The request was refused.',
      }),
    );
  });
  const csrfKey = deriveKey(deps.secret, 'connect csrf');
  const publicOrigin = new URL(deps.publicUrl).origin;
  const counters = deps.counters ?? createMemoryRateLimitStore();
  const tests = { hit: (id: string, ms: number) => counters.hit(`connect-test ${id}`, ms) };
  const timeoutMs = deps.testTimeoutMs ?? 10_000;
  let running = 0;

  const csrfFor = (session: ConnectSessionRow) => hmac(csrfKey, `connect:${session.id}`);

  function headers(reply: FastifyReply, session: ConnectSessionRow | null, nonce?: string) {
    // Framing only by the partner's registered origins; scripts only ours, by nonce.
    const ancestors = session?.frame_origins.length ? session.frame_origins.join(' ') : "'none'";
    reply.headers({
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src ${nonce ? `'nonce-${nonce}'` : "'none'"}; frame-ancestors ${ancestors}; form-action 'self'; base-uri 'none'`,
      'x-content-type-options': 'nosniff',
      // same-origin, not no-referrer: the token never leaves in a Referer, and our own form posts
      // still carry a real Origin (no-referrer would make it `null`), which the CSRF check relies on.
      'referrer-policy': 'same-origin',
      'cache-control': 'no-store',
    });
  }

  async function partnerOf(session: ConnectSessionRow): Promise<Partner> {
    if (session.client_id) {
      const app = await deps.db
        .selectFrom('oauth_apps')
        .select(['name', 'logo_url'])
        .where('client_id', '=', session.client_id)
        .executeTakeFirst();
      if (app) return { name: app.name, logoUrl: app.logo_url };
    }
    const workspace = await deps.db
      .selectFrom('workspaces')
      .select('name')
      .where('id', '=', session.workspace_id)
      .executeTakeFirstOrThrow();
    return { name: workspace.name, logoUrl: null };
  }

  /** The session if the page may still act on it; otherwise the page explaining why not. */
  async function openSession(
    request: FastifyRequest<{ Params: TokenParams }>,
    reply: FastifyReply,
  ): Promise<ConnectSessionRow | undefined> {
    const session = await findSessionByToken(deps.db, request.params.token);
    const closed = (status: number, title: string, message: string) => {
      headers(reply, null);
      reply.code(status).send(errorPage({ status, title, message }));
      return undefined;
    };
    if (!session)
      return closed(
        404,
        'Link not found',
        'This connect link is not valid. Check that you copied all of it.',
      );
    const status = sessionStatus(session);
    if (status === 'expired') return closed(410, 'Link expired', 'This connect link has expired.');
    if (status === 'completed')
      return closed(410, 'Link already used', 'This connect link was already used.');
    if (status === 'cancelled')
      return closed(410, 'Link cancelled', 'This connect link was cancelled.');
    return session;
  }

  function stateOf(session: ConnectSessionRow, given: unknown): string {
    return typeof given === 'string' && given.length <= 500 ? given : (session.state ?? '');
  }

  function checkForm(
    request: FastifyRequest,
    session: ConnectSessionRow,
    body: Record<string, unknown>,
  ) {
    checkFormOrigin(request.headers.origin, [publicOrigin]);
    const sent = body._csrf;
    if (typeof sent !== 'string' || !safeEqual(sent, csrfFor(session)))
      throw new Problem(
        'csrf.invalid',
        403,
        'This form did not come from this page. Reload the page and try again.',
      );
  }

  function renderForm(
    reply: FastifyReply,
    session: ConnectSessionRow,
    partner: Partner,
    type: ConnectionTypeId,
    options: {
      state: string;
      values?: Record<string, string>;
      errors?: Record<string, string>;
      testError?: string;
      status?: number;
      errorCode?: string;
    },
  ) {
    const described = CONNECTION_TYPE_ENTRIES.get(type)!;
    const nonce = randomBytes(16).toString('base64');
    const base = `/connect/${encodeURIComponent((reply.request.params as TokenParams).token)}`;
    const stateQuery = options.state ? `state=${encodeURIComponent(options.state)}` : '';
    headers(reply, session, nonce);
    return reply.code(options.status ?? 200).send(
      formPage({
        sessionName: session.name,
        theme: session.theme as Theme,
        partner,
        type: {
          id: described.id,
          title: described.title,
          description: described.description,
          schema: described.schema as FormSchema,
        },
        action: base,
        cancelAction: `${base}/cancel`,
        csrf: csrfFor(session),
        state: options.state,
        values: options.values ?? {},
        errors: options.errors ?? {},
        testError: options.testError,
        backHref:
          session.types.length > 1 ? `${base}${stateQuery ? `?${stateQuery}` : ''}` : undefined,
        reconnect: session.connection_id !== null,
        nonce,
        targetOrigin: new URL(session.redirect_url).origin,
        errorCode: options.errorCode,
      }),
    );
  }

  function handOff(
    reply: FastifyReply,
    session: ConnectSessionRow,
    partner: Partner,
    params: Record<string, string>,
    success: boolean,
    warning?: string,
  ) {
    const target = new URL(session.redirect_url);
    for (const [key, value] of Object.entries(params))
      if (value) target.searchParams.set(key, value);
    const nonce = randomBytes(16).toString('base64');
    headers(reply, session, nonce);
    return reply.code(200).send(
      resultPage({
        theme: session.theme as Theme,
        partner,
        nonce,
        targetOrigin: target.origin,
        message: { type: 'edgegate:connect', ...params },
        redirectTo: target.toString(),
        success,
        warning,
      }),
    );
  }

  app.get('/assets/connect.css', async (_request, reply) =>
    reply
      .type('text/css; charset=utf-8')
      .header('cache-control', 'public, max-age=3600')
      .send(CONNECT_CSS),
  );
  app.get('/connect.js', async (_request, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=300')
      .header('access-control-allow-origin', '*')
      .header('cross-origin-resource-policy', 'cross-origin')
      .send(CONNECT_SCRIPT),
  );

  // The token is a bearer secret in the path: the logger's URL serializer redacts it.
  app.get<{ Params: TokenParams; Querystring: { type?: string; state?: string } }>(
    '/connect/:token',
    async (request, reply) => {
      const session = await openSession(request, reply);
      if (!session) return reply;
      const partner = await partnerOf(session);
      const state = stateOf(session, request.query.state);
      const types = session.types as ConnectionTypeId[];
      const wanted = types.find((type) => type === request.query.type);
      if (wanted || types.length === 1) {
        return renderForm(reply, session, partner, wanted ?? types[0]!, { state });
      }
      const nonce = randomBytes(16).toString('base64');
      headers(reply, session, nonce);
      return reply.send(
        typePickerPage({
          nonce,
          targetOrigin: new URL(session.redirect_url).origin,
          sessionName: session.name,
          theme: session.theme as Theme,
          partner,
          types: types.map((id) => CONNECTION_TYPE_ENTRIES.get(id)!),
          hrefFor: (type) =>
            `/connect/${encodeURIComponent(request.params.token)}?type=${type}${state ? `&state=${encodeURIComponent(state)}` : ''}`,
        }),
      );
    },
  );

  app.post<{ Params: TokenParams; Body: Record<string, unknown> }>(
    '/connect/:token',
    async (request, reply) => {
      const session = await openSession(request, reply);
      if (!session) return reply;
      const body = (request.body ?? {}) as Record<string, unknown>;
      checkForm(request, session, body);
      const partner = await partnerOf(session);
      const state = stateOf(session, body.state);
      const type = body.type as ConnectionTypeId;
      const def = findConnectionType(type);
      if (!def || !session.types.includes(type)) {
        headers(reply, session);
        return reply.code(400).send(
          errorPage({
            status: 400,
            title: 'Unknown database type',
            message: 'This link does not offer that kind of database.',
            partner,
          }),
        );
      }
      // What the user typed, kept for the next render, except secrets.
      const typed: Record<string, string> = {};
      const raw: Record<string, unknown> = {};
      const properties = (CONNECTION_TYPE_ENTRIES.get(type)!.schema as FormSchema).properties ?? {};
      for (const [name, property] of Object.entries(properties)) {
        const value = body[`f.${name}`];
        const text = Array.isArray(value)
          ? String(value.at(-1))
          : typeof value === 'string'
            ? value
            : undefined;
        if (text === undefined) continue;
        if (!def.secretFields.includes(name)) typed[name] = text;
        const kind = property.anyOf
          ? property.anyOf.find((p) => p.type !== 'null')?.type
          : property.type;
        if (text === '' && !def.secretFields.includes(name)) continue;
        raw[name] =
          kind === 'integer' || kind === 'number'
            ? text.trim() === ''
              ? undefined
              : Number(text)
            : kind === 'boolean'
              ? text === 'true'
              : text;
      }
      const validated = validateConnectionConfig(def, raw);
      if (!validated.ok) {
        const errors = Object.fromEntries(
          validated.errors.map((e) => [e.path.split('.')[0] ?? e.path, e.message]),
        );
        return renderForm(reply, session, partner, type, {
          state,
          values: typed,
          errors,
          status: 422,
          errorCode: 'invalid_input',
        });
      }
      if (running >= MAX_CONCURRENT_TESTS) {
        reply.header('retry-after', '5');
        return renderForm(reply, session, partner, type, {
          state,
          values: typed,
          testError: 'Edgegate is testing many connections right now. Try again in a few seconds.',
          status: 503,
        });
      }
      // The slot is taken before anything is awaited, so a burst of posts cannot all pass the check.
      running++;
      const config = validated.config as Record<string, unknown>;
      let outcome: TestOutcome;
      try {
        const attempts = await tests.hit(session.id, TEST_WINDOW_MS);
        if (attempts.count > TESTS_PER_WINDOW) {
          return renderForm(reply, session, partner, type, {
            state,
            values: typed,
            testError: `Too many attempts for this link. Wait ${Math.ceil((attempts.resetAt - Date.now()) / 60_000)} minutes or ask for a new link.`,
            status: 429,
          });
        }
        const origin = def.origin(config as never);
        let address: string;
        try {
          const host = normalizeHostname(origin.host);
          const checked = await checkOrigin(host, {
            privateRanges: deps.originPolicy.privateRanges,
            ...(deps.originPolicy.resolve ? { resolve: deps.originPolicy.resolve } : {}),
          });
          // IPv4 first: a host without IPv6 routes would otherwise fail on an AAAA answer.
          address = [...checked.addresses].sort(
            (a, b) => Number(a.includes(':')) - Number(b.includes(':')),
          )[0]!;
        } catch (error) {
          if (!(error instanceof Problem)) throw error;
          if (error.code === 'origin.unresolvable') {
            // The guard's words name the resolver's error code; the page says what to fix instead.
            const message = `The host name "${origin.host}" could not be resolved. Check its spelling, or use the server's IP address.`;
            return renderForm(reply, session, partner, type, {
              state,
              values: typed,
              testError: message,
              errors: { host: message },
              status: 422,
              errorCode: 'host_not_found',
            });
          }
          return renderForm(reply, session, partner, type, {
            state,
            values: typed,
            errors: { host: error.message },
            status: 422,
            errorCode: 'origin_refused',
          });
        }
        outcome = await def.test(config as never, { timeoutMs, address });
      } finally {
        running--;
      }
      if (!outcome.ok) {
        request.log.info({ session: session.id, type, code: outcome.code }, 'connect test failed');
        return renderForm(reply, session, partner, type, {
          state,
          values: typed,
          testError: outcome.message,
          ...(outcome.field ? { errors: { [outcome.field]: outcome.message } } : {}),
          status: 422,
          errorCode: outcome.code,
        });
      }
      try {
        const { code } = await completeSession(
          deps.db,
          deps.keyring,
          session,
          type,
          config,
          outcome.passwordVerified,
        );
        announceDeliveries(deps.bus);
        const name = config.user ?? config.username;
        const user =
          typeof name === 'string' && name !== '' ? `user "${name}"` : 'the default user';
        // A typed password the server never checked would pass for a right one: say so, and let
        // the user read it before the page hands over (the flag is on the connection too).
        const warning =
          !outcome.passwordVerified && type !== 'mssql' && config.password
            ? `The server did not check the password: it let ${user} in without asking for one, so the password you typed was not tested. Anyone who can reach this server may log in as that user.`
            : undefined;
        return handOff(reply, session, partner, { code, state }, true, warning);
      } catch (error) {
        if (!(error instanceof SessionClosedError)) throw error;
        headers(reply, null);
        return reply.code(410).send(
          errorPage({
            status: 410,
            title: 'Link already used',
            message: 'This connect link was used or expired while your credentials were tested.',
            partner,
          }),
        );
      }
    },
  );

  app.post<{ Params: TokenParams; Body: Record<string, unknown> }>(
    '/connect/:token/cancel',
    async (request, reply) => {
      const session = await openSession(request, reply);
      if (!session) return reply;
      const body = (request.body ?? {}) as Record<string, unknown>;
      checkForm(request, session, body);
      const partner = await partnerOf(session);
      if (!(await cancelSession(deps.db, session))) {
        // Completed (or expired) in another tab meanwhile: say so instead of reporting a cancel.
        headers(reply, null);
        return reply.code(410).send(
          errorPage({
            status: 410,
            title: 'Link already used',
            message: 'This connect link was completed or expired before the cancel arrived.',
            partner,
          }),
        );
      }
      return handOff(
        reply,
        session,
        partner,
        { error: 'access_denied', state: stateOf(session, body.state) },
        false,
      );
    },
  );
}
