// Sign-in for desktop and CLI apps (RFC 8252): the system browser does the log-in and consent, and
// a one-shot HTTP server on 127.0.0.1 receives the code. Register the app as a public client with
// the redirect URI `http://127.0.0.1/callback`: the server accepts it on any port.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AppScope } from '@edgegate/contract';
import { OAuthError } from '../errors.ts';
import {
  createAuthorizationUrl,
  exchangeCode,
  parseCallback,
  trimBaseUrl,
  type TokenSet,
} from '../oauth.ts';
import { openSystemBrowser } from './open-browser.ts';
import { resultPage, type PageOutcome } from './result-page.ts';

export const LOOPBACK_CALLBACK_PATH = '/callback';
const DEFAULT_TIMEOUT_MS = 5 * 60_000;

export interface LoopbackLoginOptions {
  baseUrl: string;
  clientId: string;
  clientSecret?: string;
  scopes: readonly AppScope[];
  /** A workspace slug or id to preselect on the consent page. */
  workspaceHint?: string;
  /** Opens the URL; the system browser (`open`, `xdg-open`, `start`) unless given. */
  openBrowser?: (url: string) => void | Promise<void>;
  /** How long to wait for the browser to come back; 5 minutes unless given. */
  timeoutMs?: number;
  /** Where the URL and instructions are printed; standard error unless given. */
  log?: (line: string) => void;
  fetch?: typeof fetch;
}

/** Opens the consent page, waits for the redirect to 127.0.0.1, and returns the tokens. */
export async function loopbackLogin(options: LoopbackLoginOptions): Promise<TokenSet> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  const redirectUri = `http://127.0.0.1:${port}${LOOPBACK_CALLBACK_PATH}`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const authorization = await createAuthorizationUrl({
      baseUrl: options.baseUrl,
      clientId: options.clientId,
      redirectUri,
      scopes: options.scopes,
      workspaceHint: options.workspaceHint,
    });
    const callback = new Promise<TokenSet>((resolve, reject) => {
      let settled = false;
      server.on('request', (request: IncomingMessage, response: ServerResponse) => {
        const url = new URL(request.url ?? '/', redirectUri);
        if (request.method !== 'GET' || url.pathname !== LOOPBACK_CALLBACK_PATH) {
          send(
            response,
            404,
            failure('Not found', 'This address only receives the Edgegate sign-in.'),
          );
          return;
        }
        if (settled) {
          send(response, 409, failure('Already finished', 'This sign-in has already finished.'));
          return;
        }
        let code: string;
        try {
          ({ code } = parseCallback(url, {
            expectedState: authorization.state,
            issuer: trimBaseUrl(options.baseUrl),
          }));
        } catch (error) {
          // A redirect of some other sign-in (an old tab, another site) must not end this one.
          if (error instanceof OAuthError && error.error === 'state_mismatch') {
            send(
              response,
              400,
              failure('Sign-in not recognised', 'This link is not for the sign-in in progress.'),
            );
            return;
          }
          settled = true;
          send(response, 400, failure('Not connected', describe(error)));
          reject(error);
          return;
        }
        settled = true;
        exchangeCode({
          baseUrl: options.baseUrl,
          clientId: options.clientId,
          clientSecret: options.clientSecret,
          fetch: options.fetch,
          redirectUri,
          code,
          codeVerifier: authorization.codeVerifier,
        }).then(
          (tokens) => {
            send(response, 200, { ok: true });
            resolve(tokens);
          },
          (error: unknown) => {
            send(response, 502, failure('Not connected', describe(error)));
            reject(error);
          },
        );
      });
    });
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`No sign-in came back within ${Math.round(timeoutMs / 1000)} s.`)),
        timeoutMs,
      );
    });

    log('Open this page to connect to Edgegate:');
    log(`  ${authorization.url}`);
    const open = options.openBrowser ?? openSystemBrowser;
    // Not awaited: the browser may come back before an opener returns, or the opener never does.
    Promise.resolve()
      .then(() => open(authorization.url))
      .catch((error: unknown) =>
        log(`Could not open a browser (${describe(error)}); open the page above yourself.`),
      );
    return await Promise.race([callback, timeout]);
  } finally {
    clearTimeout(timer);
    // Also closes idle connections; every answer says `connection: close`, so no other stays.
    server.close();
  }
}

function failure(title: string, detail: string): PageOutcome {
  return { ok: false, title, detail };
}

function send(response: ServerResponse, status: number, outcome: PageOutcome) {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'close',
  });
  response.end(resultPage(outcome));
}

function describe(error: unknown): string {
  if (error instanceof OAuthError && error.error === 'access_denied')
    return 'Access was denied on the consent page.';
  return error instanceof Error ? error.message : String(error);
}
