// One /v1 call: the credential's header, an Idempotency-Key on every POST, back-off on 429 and
// 503 (honouring Retry-After), one renewal of an OAuth token the API calls invalid, and
// problem+json answers turned into `EdgegateApiError`.
import type { ProblemBody } from '@edgegate/contract';
import type { Authorizer } from './credentials.ts';
import { EdgegateApiError, EdgegateAuthError } from './errors.ts';
import { sleep } from './sleep.ts';

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Already encoded, from the origin: `/v1/caches/cch_…`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
}

/** Back-off before retry n (from 0) when the answer has no Retry-After: 0.5 s, 1 s, 2 s… with jitter. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8_000;
/** A Retry-After longer than this is not waited out: the error goes to the caller. */
const RETRY_AFTER_MAX_MS = 60_000;
const IDEMPOTENCY_IN_PROGRESS = 'https://edgegate.dev/problems/idempotency.in_progress';

export interface TransportOptions {
  baseUrl: string;
  authorizer: Authorizer;
  fetch: typeof fetch;
  maxRetries: number;
}

export class Transport {
  readonly #options: TransportOptions;

  constructor(options: TransportOptions) {
    this.#options = options;
  }

  async request<T>(request: ApiRequest): Promise<T> {
    const { authorizer, maxRetries } = this.#options;
    const url = this.#url(request);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    // One key per logical call, the same on each of its retries: the server runs it at most once.
    if (request.method === 'POST') headers['idempotency-key'] = crypto.randomUUID();
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);

    let renewed = false;
    for (let attempt = 0; ;) {
      const authorization = await authorizer.header();
      const response = await this.#options.fetch(url, {
        method: request.method,
        headers: { ...headers, authorization },
        body,
      });
      if (response.ok) {
        if (response.status === 204) {
          await response.body?.cancel();
          return undefined as T;
        }
        return (await response.json()) as T;
      }
      const error = new EdgegateApiError(await problemOf(response), response.headers);

      if (response.status === 401 && authorizer.renew && isInvalidToken(response)) {
        if (renewed) {
          throw new EdgegateAuthError(
            'Edgegate refuses the refreshed access token: ask the user to connect again.',
            { cause: error },
          );
        }
        await authorizer.renew(authorization);
        renewed = true;
        continue;
      }
      const delay = retryDelay(error, attempt);
      if (delay === undefined || attempt >= maxRetries) throw error;
      await sleep(delay);
      attempt++;
    }
  }

  #url(request: ApiRequest): string {
    const url = new URL(`${this.#options.baseUrl}${request.path}`);
    for (const [name, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url.toString();
  }
}

function isInvalidToken(response: Response): boolean {
  return /error="invalid_token"/.test(response.headers.get('www-authenticate') ?? '');
}

/**
 * How long to wait before retrying, or undefined when the answer is not worth a retry: 429 and 503,
 * and 409 while an earlier attempt of this very call (same Idempotency-Key) is still running.
 */
function retryDelay(error: EdgegateApiError, attempt: number): number | undefined {
  const retryable =
    error.status === 429 ||
    error.status === 503 ||
    (error.status === 409 && error.type === IDEMPOTENCY_IN_PROGRESS);
  if (!retryable) return undefined;
  const retryAfter = retryAfterMs(error.headers.get('retry-after'));
  if (retryAfter !== undefined) return retryAfter <= RETRY_AFTER_MAX_MS ? retryAfter : undefined;
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The answer's problem body; a non-problem answer (a proxy's page) is described by its status. */
async function problemOf(response: Response): Promise<ProblemBody> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as Partial<ProblemBody>;
    if (typeof body.type === 'string' && typeof body.title === 'string') {
      return { ...body, type: body.type, title: body.title, status: response.status };
    }
  } catch {
    // Not JSON: described below.
  }
  return {
    type: 'about:blank',
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    ...(text ? { detail: text.slice(0, 500) } : {}),
  };
}
