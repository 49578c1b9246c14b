// A fetch client with a cookie jar that follows no redirects, for driving OAuth flows over HTTP.
export class CookieFetch {
  readonly jar = new Map<string, string>();

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.jar.size) headers.set('cookie', [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index).trim();
      const value = pair!.slice(index + 1).trim();
      const expired = attributes.some(
        (a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a),
      );
      if (expired || value === '') this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return response;
  }

  async postForm(url: string, form: Record<string, string | string[]>): Promise<Response> {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(form))
      for (const one of Array.isArray(value) ? value : [value]) body.append(name, one);
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
    });
  }

  /** Follows redirects on our own origin until one leaves it (the partner's redirect_uri). */
  async follow(
    url: string,
    origin: string,
    max = 10,
  ): Promise<{ response: Response; url: string }> {
    let current = url;
    for (let i = 0; i < max; i++) {
      const response = await this.request(current);
      const location = response.headers.get('location');
      if (!location || response.status < 300 || response.status >= 400)
        return { response, url: current };
      const next = new URL(location, current).toString();
      if (!next.startsWith(origin)) return { response, url: next };
      current = next;
    }
    throw new Error('too many redirects');
  }
}

export function csrfOf(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match?.[1]) throw new Error(`no CSRF token in page: ${html.slice(0, 300)}`);
  return match[1];
}
