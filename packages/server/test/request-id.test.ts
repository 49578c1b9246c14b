// X-Request-Id on the control plane: a sane id from the client is kept and returned, anything
// else is replaced by a generated one that no other node would also make; every answer carries
// it (API errors, the OAuth engine's own answers, pages) and the log lines of the request name it.
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import type { Store } from '../src/db/store.ts';
import { TEST_SECRET } from './helpers/app.ts';
import { openTestStore } from './helpers/stores.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('X-Request-Id', () => {
  let store: Store;
  let nodes: FastifyInstance[];
  const logs: string[] = [];

  beforeAll(async () => {
    store = await openTestStore('pglite');
    // Two nodes, as behind a load balancer: ids must not collide between them.
    nodes = await Promise.all(
      [1, 2].map(async () => {
        const app = await buildApp({
          config: { publicUrl: 'http://localhost:8080', secret: TEST_SECRET },
          store,
          logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(line) }),
        });
        await app.ready();
        return app;
      }),
    );
  });
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((node) => node.close()));
    await store?.close();
  });

  it('returns a sane incoming id on every kind of answer, and logs it', async () => {
    const node = nodes[0]!;
    const answers = await Promise.all(
      [
        { url: '/v1/caches' }, // 401 problem from an onRequest hook
        { url: '/v1/nothing-here' }, // 404
        { url: '/.well-known/openid-configuration' }, // written by the OAuth engine itself
        { url: '/login' }, // a console page
        { url: '/healthz' },
      ].map((request, i) =>
        node.inject({ ...request, headers: { 'x-request-id': `lb-7f3a:${i}/trace=ok` } }),
      ),
    );
    answers.forEach((answer, i) =>
      expect(answer.headers['x-request-id'], answer.body).toBe(`lb-7f3a:${i}/trace=ok`),
    );
    const lines = logs.filter((line) => line.includes('"reqId":"lb-7f3a:0/trace=ok"'));
    expect(lines.some((line) => line.includes('incoming request'))).toBe(true);
    expect(lines.some((line) => line.includes('request completed'))).toBe(true);
  });

  it('replaces an id that is too long or carries other characters', async () => {
    for (const incoming of ['x'.repeat(129), 'has space', 'quote"d', '', 'é']) {
      const answer = await nodes[0]!.inject({
        url: '/healthz',
        headers: { 'x-request-id': incoming },
      });
      expect(answer.headers['x-request-id']).toMatch(UUID_V7);
    }
  });

  it('generates ids that differ across nodes and requests', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const answer = await nodes[i % 2]!.inject({ url: '/healthz' });
      ids.push(String(answer.headers['x-request-id']));
    }
    for (const id of ids) expect(id).toMatch(UUID_V7);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
