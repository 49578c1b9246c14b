// What an edge-only process serves over HTTP: liveness, readiness and Prometheus metrics, nothing else.
import http from 'node:http';
import type { Registry } from 'prom-client';
import { PROBLEM_TYPE_BASE } from '../problem.ts';
import type { Readiness } from '../services/readiness.ts';
import { notReady } from '../routes/health.ts';
import { VERSION } from '../version.ts';

export async function startEdgeStatusServer(
  host: string,
  port: number,
  registry: Registry,
  readiness: Readiness,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method === 'GET' && path === '/healthz') {
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'ok', version: VERSION }));
      return;
    }
    if (request.method === 'GET' && path === '/readyz') {
      readiness
        .check()
        .then(({ ready, checks }) => {
          if (ready) {
            response
              .writeHead(200, { 'content-type': 'application/json' })
              .end(JSON.stringify({ status: 'ready', checks }));
            return;
          }
          const problem = notReady(checks);
          response.writeHead(503, { 'content-type': 'application/problem+json' }).end(
            JSON.stringify({
              type: PROBLEM_TYPE_BASE + problem.code,
              title: 'Service unavailable',
              status: 503,
              detail: problem.message,
              ...problem.extensions,
            }),
          );
        })
        .catch(() => response.writeHead(500).end());
      return;
    }
    if (request.method === 'GET' && path === '/metrics') {
      registry
        .metrics()
        .then((body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body))
        .catch(() => response.writeHead(500).end());
      return;
    }
    response.writeHead(404, { 'content-type': 'application/problem+json' }).end(
      JSON.stringify({
        type: 'about:blank',
        title: 'Not Found',
        status: 404,
        detail: 'This edge serves /healthz, /readyz and /metrics only.',
      }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
