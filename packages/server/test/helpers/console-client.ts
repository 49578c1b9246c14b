// A cookie-keeping client for the console that reads CSRF tokens out of pages, like a browser.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

export class ConsoleClient {
  readonly cookies = new Map<string, string>();
  private readonly app: FastifyInstance;
  private readonly ip: string;

  constructor(app: FastifyInstance, options: { ip?: string } = {}) {
    this.app = app;
    this.ip = options.ip ?? '127.0.0.1';
  }

  private remember(response: LightMyRequestResponse) {
    for (const cookie of response.cookies) {
      const expired =
        cookie.maxAge === 0 || (cookie.expires && cookie.expires.getTime() < Date.now());
      if (expired) this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
    return response;
  }

  get cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async get(url: string) {
    return this.remember(
      await this.app.inject({
        method: 'GET',
        url,
        headers: { cookie: this.cookieHeader, accept: 'text/html' },
        remoteAddress: this.ip,
      }),
    );
  }

  /**
   * Posts a form as the page at `from` would: with that page's CSRF token unless one is given.
   * A list value is sent as a repeated field, like checkboxes sharing a name.
   */
  async post(
    url: string,
    form: Record<string, string | string[]>,
    options: { from?: string; csrf?: string | null } = {},
  ) {
    let csrf = options.csrf;
    if (csrf === undefined) csrf = csrfTokenOf((await this.get(options.from ?? url)).body);
    const fields = new URLSearchParams(csrf === null ? {} : { _csrf: csrf });
    for (const [name, value] of Object.entries(form))
      for (const item of [value].flat()) fields.append(name, item);
    const body = fields.toString();
    return this.remember(
      await this.app.inject({
        method: 'POST',
        url,
        payload: body,
        headers: {
          cookie: this.cookieHeader,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'text/html',
        },
        remoteAddress: this.ip,
      }),
    );
  }

  async signUp(email: string, password = 'correct horse battery', name = '') {
    const response = await this.post('/signup', { email, password, name });
    if (response.statusCode !== 303)
      throw new Error(`sign-up failed: ${response.statusCode} ${response.body}`);
    return response.headers.location as string;
  }

  async logIn(email: string, password = 'correct horse battery') {
    return this.post('/login', { email, password });
  }
}

export function csrfTokenOf(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match?.[1]) throw new Error('no CSRF token on the page');
  return match[1];
}
