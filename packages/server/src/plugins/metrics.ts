// Prometheus metrics: request counts and latency by route, plus process defaults, at /metrics.
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { EDGEGATE_VERSION } from '../version.ts';

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Always 1: the labels are the point (which build each node runs, e.g. during a rolling upgrade).
  new Gauge({
    name: 'edgegate_build_info',
    help: 'The Edgegate build this process runs (always 1)',
    labelNames: ['version', 'node_version'],
    registers: [registry],
  }).set({ version: EDGEGATE_VERSION, node_version: process.version }, 1);
  return registry;
}

/**
 * Whether the parts a process depends on answer now, as 0/1 gauges: the store's change feed (with
 * an edge) and Redis (with REDIS_URL: 0 while its circuit breaker is open).
 */
export function registerDependencyMetrics(
  registry: Registry,
  parts: {
    changeFeedConnected?: () => boolean;
    redisAnswers?: () => boolean;
    /** With other edge nodes: why this one does not serve from its cache, in a word (null: it does). */
    clusterNotServing?: () => string | null;
  },
): void {
  const { changeFeedConnected, redisAnswers, clusterNotServing } = parts;
  if (clusterNotServing !== undefined) {
    new Gauge({
      name: 'edgegate_edge_cluster_serving',
      help: 'Whether this edge node serves from its cache (1), or relays every read to the origin (0) because it may have missed another node’s write: Redis unreachable, not answering, or being resynchronised; the reason label says which',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        this.reset();
        const reason = clusterNotServing();
        this.set({ reason: reason ?? '' }, reason === null ? 1 : 0);
      },
    });
  }
  if (changeFeedConnected !== undefined) {
    new Gauge({
      name: 'edgegate_store_change_feed_up',
      help: 'Whether the edge hears cache changes from the store (its LISTEN connection is up)',
      registers: [registry],
      collect() {
        this.set(changeFeedConnected() ? 1 : 0);
      },
    });
  }
  if (redisAnswers !== undefined) {
    new Gauge({
      name: 'edgegate_redis_up',
      help: 'Whether Redis (REDIS_URL) answers: 0 while limits and throttles fail open',
      registers: [registry],
      collect() {
        this.set(redisAnswers() ? 1 : 0);
      },
    });
  }
}

export function registerHttpMetrics(app: FastifyInstance, registry: Registry) {
  const labelNames = ['method', 'route', 'status_code'] as const;
  const requests = new Counter({
    name: 'edgegate_http_requests_total',
    help: 'HTTP requests answered by the control plane',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'edgegate_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL, keeps label cardinality bounded.
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status_code: String(reply.statusCode),
    };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}
