// The headers every /v1 operation shares, added to the generated OpenAPI document in one place:
// Idempotency-Key on POST, If-Match on PATCH, ETag where a versioned resource is returned,
// Location on creation, RateLimit-Policy and RateLimit on every answer, Retry-After on 429 and 503,
// and X-Request-Id both ways. Route schemas describe bodies; these conventions are the plugins'
// (idempotency, etag, rate limit, request id, store errors), so they are documented where those live.

interface Operation {
  parameters?: unknown[];
  responses?: Record<
    string,
    { description?: string; headers?: Record<string, unknown>; content?: Record<string, unknown> }
  >;
}
type PathItem = Record<string, Operation>;

const IDEMPOTENCY_KEY = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Any unique string (a UUID): the same key with the same body returns the first response again for 24 h; with a different body, 422.',
  schema: { type: 'string', maxLength: 255 },
};

const IF_MATCH = {
  name: 'If-Match',
  in: 'header',
  required: false,
  description:
    'The ETag you read: the change applies only if the resource is still at that version (412 otherwise). Without it, the change applies to the current version.',
  schema: { type: 'string' },
};

const ETAG = {
  description: 'Strong validator of this version of the resource: send it back as If-Match',
  schema: { type: 'string' },
};
const LOCATION = { description: 'URL of the created resource', schema: { type: 'string' } };

/** draft-ietf-httpapi-ratelimit-headers-10 (see support/rate-limit-headers.ts). */
const RATE_LIMIT_HEADERS = {
  'RateLimit-Policy': {
    description:
      'The quota of this credential: `"credential";q=<requests>;w=<window seconds>` (IETF draft-ietf-httpapi-ratelimit-headers-10)',
    schema: { type: 'string' },
  },
  RateLimit: {
    description:
      'What is left of it: `"credential";r=<requests remaining>;t=<seconds until the window resets>`',
    schema: { type: 'string' },
  },
};

const TOO_MANY = {
  description: 'Too many requests for this credential (RFC 9457 problem)',
  headers: {
    'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } },
    ...RATE_LIMIT_HEADERS,
  },
};

const REQUEST_ID = {
  name: 'X-Request-Id',
  in: 'header',
  required: false,
  description:
    'Your id for this request (1–128 characters: letters, digits and `. _ : @ + = / -`): returned as is and logged. Any other value is replaced by a generated one.',
  schema: { type: 'string', maxLength: 128, pattern: '^[A-Za-z0-9._:@+=/-]{1,128}$' },
};
const REQUEST_ID_HEADER = {
  description: 'The request id you sent, or the one generated (a UUIDv7); the logs name it',
  schema: { type: 'string' },
};

const STORE_UNAVAILABLE = {
  description:
    'The service cannot reach its database right now (RFC 9457 problem `store.unavailable`): retry after Retry-After',
  headers: {
    'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } },
  },
};

/** Operations answering with a versioned resource and its ETag (see support/etag.ts). */
const WITH_ETAG = new Set([
  'post /v1/caches',
  'get /v1/caches/{id}',
  'patch /v1/caches/{id}',
  'post /v1/caches/{id}/rules',
  'get /v1/caches/{id}/rules/{ruleId}',
  'patch /v1/caches/{id}/rules/{ruleId}',
]);
/** Creations that answer with the new resource's URL. */
const WITH_LOCATION = new Set([
  'post /v1/caches',
  'post /v1/caches/{id}/rules',
  'post /v1/connections/{id}/cache',
]);

export function documentSharedHeaders<T>(document: T): T {
  const paths = (document as { paths?: Record<string, PathItem> }).paths ?? {};
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (method === 'post')
        operation.parameters = [...(operation.parameters ?? []), IDEMPOTENCY_KEY];
      if (method === 'patch') operation.parameters = [...(operation.parameters ?? []), IF_MATCH];
      operation.parameters = [...(operation.parameters ?? []), REQUEST_ID];
      const responses = operation.responses ?? {};
      const key = `${method} ${path}`;
      for (const [status, response] of Object.entries(responses)) {
        if (!/^2/.test(status)) continue;
        const headers: Record<string, unknown> = { ...response.headers, ...RATE_LIMIT_HEADERS };
        if (WITH_ETAG.has(key)) headers.ETag = ETAG;
        if (WITH_LOCATION.has(key)) headers.Location = LOCATION;
        if (Object.keys(headers).length) response.headers = headers;
      }
      const problem = Object.values(responses).find((r) =>
        Object.keys(r.content ?? {}).includes('application/problem+json'),
      );
      const content = problem?.content ? { content: problem.content } : {};
      responses['429'] = { ...TOO_MANY, ...content };
      responses['503'] = { ...STORE_UNAVAILABLE, ...content };
      for (const response of Object.values(responses))
        response.headers = { ...response.headers, 'X-Request-Id': REQUEST_ID_HEADER };
      operation.responses = responses;
    }
  }
  return document;
}
