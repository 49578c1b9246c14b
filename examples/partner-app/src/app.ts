// The example partner app: a user connects their Edgegate workspace with OAuth (PKCE), names the
// database to cache (a form, or Edgegate's hosted connect page), and gets the connection string
// to use from now on. Every page view asks the API for the cache's status, so a revoked
// authorization shows at once, with the button to connect again.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import {
  EdgegateApiError,
  EdgegateAuthError,
  EdgegateClient,
  OAuthError,
  createAuthorizationUrl,
  exchangeCode,
  parseCallback,
  revoke,
  type AppScope,
  type TokenSet,
} from '@edgegate/sdk';
import { openPartnerData } from './partner-data.ts';
import { createSessions, randomId, sameSecret } from './sessions.ts';
import {
  EMPTY_ORIGIN,
  cachePage,
  connectPage,
  databasePage,
  errorPage,
  type OriginForm,
} from './views.ts';

/** What the app asks for on the consent page; it must have registered every one of them. */
export const SCOPES: AppScope[] = [
  'caches:read',
  'caches:write',
  'metrics:read',
  'connections:read',
  'connections:write',
  'offline_access',
];

export interface PartnerAppOptions {
  /** Edgegate's PUBLIC_URL, e.g. http://localhost:8080 (also the OAuth issuer). */
  edgegateUrl: string;
  clientId: string;
  clientSecret: string;
  /** 0 picks a free port. */
  port: number;
  /** Where the tokens and the `.env` with DATABASE_URL are kept. */
  dataDir: string;
}

export interface PartnerApp {
  /** http://127.0.0.1:PORT: the callback and the connect flow's redirect are on this origin. */
  url: string;
  close(): Promise<void>;
}

type Form = Record<string, string | undefined>;

export async function startPartnerApp(options: PartnerAppOptions): Promise<PartnerApp> {
  const edgegateUrl = options.edgegateUrl.replace(/\/+$/, '');
  const app = { clientId: options.clientId, clientSecret: options.clientSecret };
  const data = openPartnerData(options.dataDir);
  const sessions = createSessions();
  const server = Fastify();
  let url = '';

  server.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  server.setErrorHandler((error, _request, reply) => {
    console.error(error);
    const message = error instanceof Error ? error.message : String(error);
    return sendHtml(reply, errorPage(`Something went wrong: ${message}`), 500);
  });
  const sessionOf = (request: FastifyRequest, reply: FastifyReply) =>
    sessions.of(request, (cookie) => reply.header('set-cookie', cookie));
  // Every POST is one of our own forms (or our page's fetch): it carries the session's token.
  server.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST') return;
    const sent = (request.body as Form | undefined)?._csrf ?? request.headers['x-csrf-token'];
    if (!sameSecret(String(sent), sessionOf(request, reply).csrfToken)) {
      return reply
        .code(403)
        .type('text/html')
        .send(errorPage('This form has expired. Reload the page.'));
    }
  });

  /** The API client for the stored tokens; rotated tokens are saved before the call goes on. */
  function clientFor(tokens: TokenSet) {
    return new EdgegateClient({
      baseUrl: edgegateUrl,
      credentials: { oauth: { ...tokens, ...app } },
      onTokens: (rotated) => data.saveTokens(rotated),
    });
  }

  /**
   * Runs `work` with an API client, or shows the connect page: when there are no tokens, and when
   * Edgegate refuses them for good (the user revoked the app, left the workspace, 90 days passed).
   */
  async function withEdgegate(
    request: FastifyRequest,
    reply: FastifyReply,
    work: (client: EdgegateClient) => Promise<unknown>,
  ) {
    // A form or script that needs access goes back home (Post/Redirect/Get), which says why.
    const askToConnect = (revoked: boolean) =>
      request.method === 'GET'
        ? sendHtml(reply, connectPage({ csrfToken: sessionOf(request, reply).csrfToken, revoked }))
        : reply.redirect('/', 303);
    const { tokens, revoked = false } = await data.read();
    if (!tokens) return askToConnect(revoked);
    try {
      return await work(clientFor(tokens));
    } catch (error) {
      if (!isRevoked(error)) throw error;
      await data.forgetTokens(true);
      return askToConnect(true);
    }
  }

  async function showDatabaseForm(
    request: FastifyRequest,
    reply: FastifyReply,
    client: EdgegateClient,
    form: OriginForm = EMPTY_ORIGIN,
    error?: string,
  ) {
    const workspace = await client.workspace.get();
    const session = sessionOf(request, reply);
    session.connectState = randomId();
    return sendHtml(
      reply,
      databasePage({
        csrfToken: session.csrfToken,
        workspaceName: workspace.name,
        edgegateUrl,
        form,
        ...(error ? { error } : {}),
      }),
      error ? 422 : 200,
    );
  }

  /** Keeps what the user needs: the cache to show, and the connection string as DATABASE_URL. */
  async function saveCache(cache: { id: string; name: string }, connectionString: string) {
    await data.saveCache({ id: cache.id, name: cache.name });
    await data.saveDatabaseUrl(connectionString);
  }

  server.get('/', (request, reply) =>
    withEdgegate(request, reply, async (client) => {
      const { cache: saved } = await data.read();
      if (!saved) return showDatabaseForm(request, reply, client);
      try {
        const [cache, metrics] = await Promise.all([
          client.caches.get(saved.id),
          client.caches.metrics(saved.id, { window: '1h' }),
        ]);
        return sendHtml(
          reply,
          cachePage({
            csrfToken: sessionOf(request, reply).csrfToken,
            cache,
            metrics,
            connectionString: await data.readDatabaseUrl(),
            envPath: data.envPath,
          }),
        );
      } catch (error) {
        // Deleted, or the user reconnected to another workspace: start over with the form.
        if (!(error instanceof EdgegateApiError && error.status === 404)) throw error;
        await data.forgetCache();
        return showDatabaseForm(request, reply, client);
      }
    }),
  );

  server.post('/connect', async (request, reply) => {
    const authorization = await createAuthorizationUrl({
      baseUrl: edgegateUrl,
      clientId: app.clientId,
      redirectUri: `${url}/callback`,
      scopes: SCOPES,
    });
    sessionOf(request, reply).authorization = {
      state: authorization.state,
      codeVerifier: authorization.codeVerifier,
    };
    return reply.redirect(authorization.url, 303);
  });

  server.get('/callback', async (request, reply) => {
    const session = sessionOf(request, reply);
    const started = session.authorization;
    if (!started) return sendHtml(reply, errorPage('This sign-in was not started here.'), 400);
    delete session.authorization;
    try {
      const callback = parseCallback(new URL(request.url, url), {
        expectedState: started.state,
        issuer: edgegateUrl,
      });
      const tokens = await exchangeCode({
        baseUrl: edgegateUrl,
        ...app,
        redirectUri: `${url}/callback`,
        code: callback.code,
        codeVerifier: started.codeVerifier,
      });
      await data.saveTokens(tokens);
      return reply.redirect('/', 303);
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      const message =
        error.error === 'access_denied'
          ? 'You chose not to connect Edgegate.'
          : `Connecting Edgegate failed: ${error.message}`;
      return sendHtml(reply, errorPage(message), 400);
    }
  });

  server.post('/caches', (request, reply) =>
    withEdgegate(request, reply, async (client) => {
      const body = request.body as Form;
      const form: OriginForm = {
        name: body.name?.trim() ?? '',
        host: body.host?.trim() ?? '',
        port: body.port?.trim() ?? '',
        database: body.database?.trim() ?? '',
        user: body.user?.trim() ?? '',
      };
      try {
        const cache = await client.caches.create({
          name: form.name,
          type: 'postgres',
          hostname: form.host,
          port: Number(form.port),
        });
        // A cache without a connection string is of no use to the user: do not leave it behind.
        const { connectionString } = await client.connectionStrings
          .create({
            cacheId: cache.id,
            connectionString: originConnectionString(form, body.password ?? ''),
          })
          .catch(async (error: unknown) => {
            await client.caches.delete(cache.id).catch(() => undefined);
            throw error;
          });
        await saveCache(cache, connectionString);
        return reply.redirect('/', 303);
      } catch (error) {
        if (!(error instanceof EdgegateApiError) || error.status === 401) throw error;
        const fields = error.errors.map((e) => `${e.path}: ${e.message}`).join('; ');
        return showDatabaseForm(request, reply, client, form, fields || error.message);
      }
    }),
  );

  // Called by our page's script (docs/connect.md): a single-use link to Edgegate's connect page.
  server.post('/connect-session', (request, reply) =>
    withEdgegate(request, reply, async (client) => {
      const { connectState } = sessionOf(request, reply);
      const session = await client.connect.createSession({
        type: 'postgresql',
        name: 'Acme Dashboards database',
        redirect_url: `${url}/connected`,
        ...(connectState ? { state: connectState } : {}),
      });
      return reply.send({ redirect_url: session.redirect_url });
    }),
  );

  // Where the connect page's result arrives: from our script after the popup's message, and from
  // the popup itself, which goes to redirect_url too (or only the latter, when the popup was
  // blocked and the whole window went). One exchange per code, however many requests bring it.
  const finishing = new Map<string, Promise<void>>();
  server.get<{ Querystring: Form }>('/connected', (request, reply) =>
    withEdgegate(request, reply, async (client) => {
      const { code, state, error } = request.query;
      if (!sameSecret(state, sessionOf(request, reply).connectState))
        return sendHtml(reply, errorPage('This result does not belong to your session.'), 400);
      if (error || !code)
        return showDatabaseForm(request, reply, client, EMPTY_ORIGIN, 'Connecting was cancelled.');
      let done = finishing.get(code);
      if (!done) {
        done = (async () => {
          const { connectionId } = await client.connect.exchange(code);
          const { cache, connectionString } = await client.connections.createCache(connectionId, {
            name: 'dashboards',
          });
          await saveCache(cache, connectionString);
        })();
        finishing.set(code, done);
        // Codes are single-use and live 10 minutes: nothing to remember after that.
        setTimeout(() => finishing.delete(code), 600_000).unref();
      }
      await done;
      return reply.redirect('/', 303);
    }),
  );

  // Ends the authorization at Edgegate too (RFC 7009), not only here.
  server.post('/disconnect', async (_request, reply) => {
    const { tokens } = await data.read();
    if (tokens) {
      await revoke({
        baseUrl: edgegateUrl,
        ...app,
        token: tokens.refreshToken ?? tokens.accessToken,
      });
      await data.forgetTokens(false);
    }
    return reply.redirect('/', 303);
  });

  await server.listen({ host: '127.0.0.1', port: options.port });
  const address = server.server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : options.port}`;
  return { url, close: () => server.close() };
}

/** Edgegate no longer accepts this authorization: only connecting again helps. */
function isRevoked(error: unknown): boolean {
  return (
    error instanceof EdgegateAuthError ||
    (error instanceof EdgegateApiError && error.status === 401)
  );
}

/** postgres://user:password@host:port/database, every part percent-encoded. */
function originConnectionString(form: OriginForm, password: string): string {
  const host = form.host.includes(':') ? `[${form.host}]` : form.host;
  const credentials = password
    ? `${encodeURIComponent(form.user)}:${encodeURIComponent(password)}`
    : encodeURIComponent(form.user);
  return `postgres://${credentials}@${host}:${form.port}/${encodeURIComponent(form.database)}`;
}

function sendHtml(reply: FastifyReply, body: string, status = 200) {
  return reply.code(status).type('text/html; charset=utf-8').send(body);
}
