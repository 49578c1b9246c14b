// The Prometheus alert rules and the Grafana dashboard (deploy/): every metric and label they
// query must be one Edgegate registers, taken from the real registrations of the control plane
// (HTTP series, process defaults) and the edge, so a renamed series breaks this test, not a pager.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { registerEdgeMetrics } from '../packages/server/src/edge/prometheus.ts';
import type { EdgeCounters } from '../packages/server/src/edge/start-edge.ts';
import {
  createMetricsRegistry,
  registerDependencyMetrics,
  registerHttpMetrics,
} from '../packages/server/src/plugins/metrics.ts';

const ROOT = resolve(import.meta.dirname, '..');
/** Labels Prometheus adds to every scraped series, and the metric it records per target. */
const TARGET_LABELS = ['job', 'instance'];
const BUILT_IN_SERIES = new Map([['up', TARGET_LABELS]]);

/** Every series name a scrape of Edgegate can return, with the labels each carries. */
async function registeredSeries(): Promise<Map<string, string[]>> {
  const registry = createMetricsRegistry();
  const app = Fastify();
  registerHttpMetrics(app, registry);
  await app.close();
  const idleEdge: EdgeCounters = {
    allStats: () => [],
    stats: () => {
      throw new Error('an idle edge has no caches');
    },
    cacheBytes: () => 0,
    refused: () => ({ total: 0, address: 0 }),
    sharedResults: () => ({
      hits: 0,
      misses: 0,
      errors: 0,
      skipped: 0,
      stored: 0,
      raced: 0,
      oversize: 0,
    }),
    events: () => ({ evictions: 0, authFailures: { postgres: 0, mysql: 0 } }),
    collect: async () => [],
  };
  registerEdgeMetrics(registry, idleEdge, { maxCaches: 100 });
  registerDependencyMetrics(registry, {
    changeFeedConnected: () => true,
    redisAnswers: () => true,
    clusterNotServing: () => null,
  });
  const series = new Map(BUILT_IN_SERIES);
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type, labelNames } = metric as unknown as {
      name: string;
      type: string;
      labelNames: string[];
    };
    const labels = [...labelNames, ...TARGET_LABELS];
    series.set(name, labels);
    if (type === 'histogram') {
      series.set(`${name}_bucket`, [...labels, 'le']);
      series.set(`${name}_sum`, labels);
      series.set(`${name}_count`, labels);
    }
  }
  return series;
}

const PROMQL_WORDS = new Set([
  'sum', 'max', 'min', 'avg', 'count', 'topk', 'by', 'without', 'rate', 'irate', 'increase',
  'changes', 'histogram_quantile', 'and', 'or', 'unless', 'on', 'ignoring',
]); // prettier-ignore

/** The series names, selector labels and grouping labels of one PromQL expression. */
function analyse(expr: string) {
  // Grafana's variables stand for a duration and a job regex.
  const text = expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', 'edgegate.*');
  const withoutStrings = text.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const selectors = [...withoutStrings.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)].map((m) => ({
    name: m[1] ?? '',
    labels: [...(m[2] ?? '').matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1] ?? ''),
  }));
  const grouping = [...withoutStrings.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '').split(',').map((label) => label.trim()),
  );
  const names = [...withoutStrings.matchAll(/\b([a-zA-Z_:][\w:]*)\b(?!\s*\()/g)]
    .map((m) => m[1] ?? '')
    .filter((word) => !PROMQL_WORDS.has(word) && !grouping.includes(word) && !/^\d/.test(word))
    .filter((word) => !selectors.some((s) => s.labels.includes(word)))
    .filter((word) => !/^\d+[smhd]$/.test(word));
  return { names: [...new Set(names)], selectors, grouping };
}

async function checkExpression(where: string, expr: string) {
  const series = await registeredSeries();
  const { names, selectors, grouping } = analyse(expr);
  expect(names.length, `${where}: no series in ${expr}`).toBeGreaterThan(0);
  for (const name of names) expect([...series.keys()], `${where}: ${name}`).toContain(name);
  for (const selector of selectors)
    for (const label of selector.labels)
      expect(series.get(selector.name), `${where}: ${selector.name}{${label}}`).toContain(label);
  const available = new Set(names.flatMap((name) => series.get(name) ?? []));
  for (const label of grouping) expect([...available], `${where}: by (${label})`).toContain(label);
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description: string };
}
const alerts = parse(readFileSync(resolve(ROOT, 'deploy/prometheus/alerts.yaml'), 'utf8')) as {
  groups: { name: string; rules: Rule[] }[];
};
const rules = alerts.groups.flatMap((group) => group.rules);

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { refId: string; expr: string }[];
}
const dashboard = JSON.parse(
  readFileSync(resolve(ROOT, 'deploy/grafana/edgegate.json'), 'utf8'),
) as { uid: string; panels: Panel[]; templating: { list: { query: { query: string } }[] } };

describe('the Prometheus alert rules', () => {
  it('are named, graded and explained', () => {
    expect(rules.length).toBeGreaterThanOrEqual(6);
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Edgegate[A-Z]\w+$/);
      expect(['critical', 'warning', 'info']).toContain(rule.labels.severity);
      expect(rule.annotations.summary.length, rule.alert).toBeGreaterThan(10);
      expect(rule.annotations.description.length, rule.alert).toBeGreaterThan(10);
    }
  });

  it('query only series and labels Edgegate registers', async () => {
    for (const rule of rules) await checkExpression(rule.alert, rule.expr);
  });
});

describe('the Grafana dashboard', () => {
  const graphs = dashboard.panels.filter((panel) => panel.type !== 'row');

  it('has distinct panels that fit the grid, each with a Prometheus query', () => {
    expect(dashboard.uid).toBe('edgegate');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    expect(graphs.length).toBeGreaterThanOrEqual(10);
    for (const panel of graphs) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      expect(panel.datasource, panel.title).toEqual({
        type: 'prometheus',
        uid: '${DS_PROMETHEUS}',
      });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
  });

  it('queries only series and labels Edgegate registers', async () => {
    for (const panel of graphs)
      for (const target of panel.targets ?? [])
        await checkExpression(`${panel.title} ${target.refId}`, target.expr);
    for (const variable of dashboard.templating.list) {
      const series = variable.query.query.match(/label_values\((.*), (\w+)\)$/);
      expect(series).not.toBeNull();
      await checkExpression('variable', series?.[1] ?? '');
    }
  });

  it('shows the control plane, the edge and the processes', () => {
    const queried = graphs.flatMap((panel) => panel.targets?.map((t) => t.expr) ?? []).join('\n');
    for (const name of [
      'edgegate_http_requests_total',
      'edgegate_http_request_duration_seconds_bucket',
      'edgegate_edge_queries_total',
      'edgegate_edge_bytes_served_total',
      'edgegate_edge_query_duration_seconds_bucket',
      'edgegate_edge_cache_bytes',
      'process_resident_memory_bytes',
      'process_open_fds',
    ])
      expect(queried).toContain(name);
  });
});

describe('the check itself', () => {
  it('refuses a series or label the code does not register', async () => {
    await expect(checkExpression('typo', 'rate(edgegate_http_request_total[5m])')).rejects.toThrow(
      'edgegate_http_request_total',
    );
    await expect(
      checkExpression('label', 'sum by (cache) (rate(edgegate_edge_queries_total[5m]))'),
    ).rejects.toThrow('by (cache)');
    await expect(
      checkExpression('selector', 'edgegate_edge_cache_bytes{cache_id="x"}'),
    ).rejects.toThrow('cache_id');
  });
});
