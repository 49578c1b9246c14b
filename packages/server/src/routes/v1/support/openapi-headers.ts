// The headers every /v1 operation shares, added to the generated OpenAPI document in one place:
// Idempotency-Key on POST, If-Match on PATCH, ETag where a versioned resource is returned,
// Location on creation, and Retry-After on 429. Route schemas describe bodies; these conventions
// are the plugins' (idempotency, etag, rate limit), so they are documented where those live.

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

const TOO_MANY = {
  description: 'Too many requests for this credential (RFC 9457 problem)',
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
      const responses = operation.responses ?? {};
      const key = `${method} ${path}`;
      for (const [status, response] of Object.entries(responses)) {
        if (!/^2/.test(status)) continue;
        const headers: Record<string, unknown> = { ...response.headers };
        if (WITH_ETAG.has(key)) headers.ETag = ETAG;
        if (WITH_LOCATION.has(key)) headers.Location = LOCATION;
        if (Object.keys(headers).length) response.headers = headers;
      }
      const problem = Object.values(responses).find((r) =>
        Object.keys(r.content ?? {}).includes('application/problem+json'),
      );
      responses['429'] = { ...TOO_MANY, ...(problem?.content ? { content: problem.content } : {}) };
      operation.responses = responses;
    }
  }
  return document;
}
