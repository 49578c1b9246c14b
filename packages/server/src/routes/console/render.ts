// Helpers every console page uses: send a page, read a form field, return to a safe path.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SafeHtml } from '../../views/html.ts';
import { page } from '../../views/layout.ts';
import type { Problem } from '../../problem.ts';
import type { FieldErrors } from '../../views/layout.ts';

export function sendPage(
  request: FastifyRequest,
  reply: FastifyReply,
  options: { title: string; body: SafeHtml; status?: number },
) {
  const flash = request.takeFlash();
  return reply
    .code(options.status ?? 200)
    .type('text/html; charset=utf-8')
    .send(
      page({
        title: options.title,
        body: options.body,
        user: request.user,
        csrfToken: request.csrfToken(),
        flash,
      }),
    );
}

/** Every value of a repeated field, in order ('' for a non-string), so parallel fields pair up. */
export function formValues(body: unknown, name: string): string[] {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  return (Array.isArray(value) ? value : [value]).map((v) => (typeof v === 'string' ? v : ''));
}

export function formValue(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : '';
  return typeof value === 'string' ? value : '';
}

/**
 * Only a path on this site, so `next` can never send someone elsewhere: control characters and
 * backslashes (which browsers strip or turn into slashes) are refused, the value must resolve to
 * our own origin, and the path it resolves to must not start with `//` or `/\`, even once
 * percent-decoded: `/.//evil.com` normalises to `//evil.com`, which a browser reads as another host.
 */
export function safeNext(next: unknown, fallback: string): string {
  if (typeof next !== 'string' || next.length > 2000 || !next.startsWith('/')) return fallback;
  // Browsers drop tabs and newlines from URLs and read a backslash as a slash.
  if (hasControlOrBackslash(next)) return fallback;
  const base = 'http://edgegate.invalid';
  let url: URL;
  try {
    url = new URL(next, base);
  } catch {
    return fallback;
  }
  if (url.origin !== base || looksLikeAnotherHost(url.pathname)) return fallback;
  return url.pathname + url.search + url.hash;
}

/** A path a browser, or anything that decodes it once more, could read as `//host`. */
function looksLikeAnotherHost(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true;
  }
  return [path, decoded].some((p) => /^[/\\][/\\]/.test(p) || hasControlOrBackslash(p));
}

function hasControlOrBackslash(value: string): boolean {
  return [...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f || c === '\\');
}

export function fieldErrors(problem: Problem): FieldErrors {
  return Object.fromEntries((problem.errors ?? []).map((e) => [e.path, e.message]));
}

/** The signed-in user, or a redirect to log-in that comes back here afterwards. */
export function requireUser(request: FastifyRequest, reply: FastifyReply) {
  if (request.user) return request.user;
  reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
  return undefined;
}
