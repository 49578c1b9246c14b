// The OpenAPI 3.1 document is generated from the route schemas, and /docs renders it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { openTestStore } from '../helpers/stores.ts';
import { buildTestApp } from '../helpers/app.ts';

describe('OpenAPI document', () => {
  let store: Store;
  let app: FastifyInstance;
  beforeAll(async () => {
    store = await openTestStore('pglite');
    app = await buildTestApp(store);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('describes every /v1 route from its schema, without authentication', async () => {
    const response = await app.inject({ url: '/v1/openapi.json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json();
    expect(doc.openapi).toBe('3.1.0');
    for (const path of [
      '/v1/workspace',
      '/v1/caches',
      '/v1/caches/{id}',
      '/v1/caches/{id}/metrics',
      '/v1/caches/{id}/sessions',
      '/v1/caches/{id}/sessions/{sessionId}',
      '/v1/caches/{id}/rules',
      '/v1/caches/{id}/rules/{ruleId}',
      '/v1/connection-strings',
      '/v1/apikeys',
      '/v1/apikeys/{id}',
      '/v1/service-tokens',
      '/v1/service-tokens/{id}',
    ])
      expect(doc.paths[path], path).toBeDefined();
    const create = doc.paths['/v1/caches'].post;
    expect(create.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['name', 'type', 'hostname', 'port']),
    );
    expect(create.responses['201']).toBeDefined();
    // Errors are documented as what they are: problem+json.
    const problem = create.responses['4XX'] ?? create.responses['4xx'];
    expect(Object.keys(problem.content)).toEqual(['application/problem+json']);
    expect(problem.content['application/problem+json'].schema.properties).toHaveProperty('status');
    expect(Object.keys(doc.paths).every((p) => p.startsWith('/v1/'))).toBe(true);
  });

  it('documents the shared headers: Idempotency-Key, If-Match, ETag, Location, Retry-After', async () => {
    const doc = (await app.inject({ url: '/v1/openapi.json' })).json();
    const names = (operation: { parameters?: { name: string; in: string }[] }) =>
      (operation.parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name);
    for (const [path, item] of Object.entries(
      doc.paths as Record<string, Record<string, object>>,
    )) {
      for (const [method, operation] of Object.entries(item)) {
        const op = operation as {
          parameters?: { name: string; in: string }[];
          responses: Record<string, { headers?: object }>;
        };
        if (method === 'post') expect(names(op), `${method} ${path}`).toContain('Idempotency-Key');
        if (method === 'patch') expect(names(op), `${method} ${path}`).toContain('If-Match');
        expect(Object.keys(op.responses['429']?.headers ?? {}), `${method} ${path}`).toContain(
          'Retry-After',
        );
      }
    }
    expect(doc.paths['/v1/caches/{id}'].get.responses['200'].headers).toHaveProperty('ETag');
    expect(doc.paths['/v1/caches/{id}'].patch.responses['200'].headers).toHaveProperty('ETag');
    expect(doc.paths['/v1/caches'].post.responses['201'].headers).toHaveProperty('Location');
    // The document stays valid: every header parameter has a schema.
    const get = await app.inject({
      url: '/v1/caches/cch_x',
      headers: { authorization: 'Bearer nope' },
    });
    expect(get.statusCode).toBe(401);
  });

  it("lists every webhook event type in the top-level webhooks section, with its payload's schema", async () => {
    const doc = (await app.inject({ url: '/v1/openapi.json' })).json();
    expect(Object.keys(doc.webhooks).sort()).toEqual(
      [
        'cache.created',
        'cache.replication_slot_large',
        'connection.created',
        'connection.deleted',
        'connection.updated',
        'webhook.test',
      ].sort(),
    );
    interface WebhookItem {
      post: {
        requestBody: {
          content: {
            'application/json': {
              schema: { properties: Record<string, unknown>; required: string[] };
            };
          };
        };
        parameters: { name: string }[];
      };
    }
    for (const [type, item] of Object.entries(doc.webhooks) as [string, WebhookItem][]) {
      const schema = item.post.requestBody.content['application/json'].schema;
      expect(schema.properties.type, type).toMatchObject({ const: type });
      expect(schema.required, type).toEqual(
        expect.arrayContaining(['id', 'type', 'workspaceId', 'createdAt', 'data']),
      );
      expect(
        item.post.parameters.map((p: { name: string }) => p.name),
        type,
      ).toEqual(expect.arrayContaining(['webhook-id', 'webhook-timestamp', 'webhook-signature']));
    }
    const created =
      doc.webhooks['connection.created'].post.requestBody.content['application/json'].schema
        .properties.data;
    expect(Object.keys(created.properties)).toEqual(
      expect.arrayContaining(['connectionId', 'passwordVerified', 'endUser', 'metadata']),
    );
    expect(
      doc.webhooks['cache.created'].post.requestBody.content['application/json'].schema.properties
        .data.properties.port,
    ).toMatchObject({ type: 'integer' });
    expect(doc.paths['/v1/webhooks/{id}/test'].post).toBeDefined();
    expect(doc.paths['/v1/webhooks/{id}/rotate-secret'].post).toBeDefined();
  });

  it('renders the docs page', async () => {
    const page = await app.inject({ url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('swagger');
  });
});
