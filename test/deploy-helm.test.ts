// The Helm chart (deploy/helm/edgegate), rendered without helm: its templates only substitute
// values (`{{ .Values.x | quote }}`, `{{- toYaml .Values.x | nindent N }}`), which this test
// renders, then parses every manifest and checks what a cluster would refuse or get wrong.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { settings } from '../packages/server/src/config.ts';
import { startEdgeStatusServer } from '../packages/server/src/edge/status-server.ts';
import { createReadiness } from '../packages/server/src/services/readiness.ts';

const CHART = resolve(import.meta.dirname, '../deploy/helm/edgegate');
/** The CLI's bound on a signalled control plane's exit (SHUTDOWN_LIMIT_MS in packages/cli). */
const CONTROL_PLANE_SHUTDOWN_S = 15;
/** Issue 19's drain settings: read by builds that have it, ignored by older ones. */
const DRAIN_SETTINGS = ['SHUTDOWN_DELAY_SECONDS', 'EDGE_DRAIN_SECONDS'];

type Values = Record<string, unknown>;
interface Context {
  Values: Values;
  Release: { Name: string; Namespace: string };
  Chart: Record<string, unknown>;
}

function lookup(context: Context, path: string): unknown {
  if (!path.startsWith('.')) throw new Error(`unsupported template expression: ${path}`);
  let value: unknown = context;
  for (const key of path.slice(1).split('.')) {
    if (value === null || typeof value !== 'object' || !(key in value))
      throw new Error(`${path} is not set`);
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Evaluates one action: a value or `toYaml`, then `quote` / `nindent N`. */
function evaluate(expression: string, context: Context): string {
  const [head = '', ...pipes] = expression.split('|').map((part) => part.trim());
  const toYaml = head.startsWith('toYaml ');
  const value = lookup(context, toYaml ? head.slice('toYaml '.length).trim() : head);
  let text = toYaml ? stringify(value).trimEnd() : String(value);
  if (!toYaml && (value === null || typeof value === 'object'))
    throw new Error(`${head} is not a scalar; use toYaml`);
  for (const pipe of pipes) {
    const [name, argument] = pipe.split(/\s+/);
    if (name === 'quote') text = JSON.stringify(text);
    else if (name === 'nindent') {
      const pad = ' '.repeat(Number(argument));
      text = '\n' + text.replace(/^/gm, pad);
    } else throw new Error(`unsupported template function: ${name}`);
  }
  return text;
}

function render(template: string, context: Context): string {
  if (/-\s*\}\}/.test(template)) throw new Error('right-trimming actions are not supported');
  return template.replace(
    /(\s*)\{\{(-?)\s*(.*?)\s*\}\}/g,
    (_match, space: string, trim, expr) => (trim === '-' ? '' : space) + evaluate(expr, context),
  );
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown> & {
    selector: Record<string, unknown>;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext: { runAsNonRoot: boolean; runAsUser: number };
  containers: Container[];
}
interface Probe {
  httpGet: { path: string; port: string };
}
interface Container {
  name: string;
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  env: { name: string; value?: unknown; valueFrom?: { secretKeyRef: Record<string, unknown> } }[];
  livenessProbe: Probe;
  readinessProbe: Probe;
  startupProbe: Probe;
  resources: { limits: { memory: string } };
}

const defaultValues = () => parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Values;

function renderChart(values: Values = defaultValues(), release = 'edgegate'): Manifest[] {
  const context: Context = {
    Values: values,
    Release: { Name: release, Namespace: 'default' },
    // Helm capitalises Chart.yaml's fields: appVersion is .Chart.AppVersion.
    Chart: Object.fromEntries(
      Object.entries(parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as Values).map(
        ([key, value]) => [key.charAt(0).toUpperCase() + key.slice(1), value],
      ),
    ),
  };
  const dir = join(CHART, 'templates');
  return readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .flatMap((file) =>
      parseAllDocuments(render(readFileSync(join(dir, file), 'utf8'), context)).map((doc) => {
        expect(doc.errors, file).toEqual([]);
        return doc.toJS() as Manifest;
      }),
    );
}

const find = (manifests: Manifest[], kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};
const containerOf = (deployment: Manifest): Container => {
  const [container] = deployment.spec.template.spec.containers;
  if (container === undefined) throw new Error(`${deployment.metadata.name} has no container`);
  return container;
};
const envOf = (container: Container) =>
  Object.fromEntries(container.env.map((e) => [e.name, e.value]));

describe('the Helm chart', () => {
  const manifests = renderChart();
  const controlPlane = find(manifests, 'Deployment', 'edgegate-control-plane');
  const edge = find(manifests, 'Deployment', 'edgegate-edge');

  it('renders a Deployment, a Service and a PodDisruptionBudget for each plane', () => {
    expect(manifests.map((m) => `${m.apiVersion} ${m.kind} ${m.metadata.name}`).sort()).toEqual([
      'apps/v1 Deployment edgegate-control-plane',
      'apps/v1 Deployment edgegate-edge',
      'policy/v1 PodDisruptionBudget edgegate-control-plane',
      'policy/v1 PodDisruptionBudget edgegate-edge',
      'v1 Service edgegate-control-plane',
      'v1 Service edgegate-edge',
    ]);
  });

  it('runs the image commands `server` and `edge`, as a non-root user', () => {
    expect(containerOf(controlPlane).args).toEqual(['server']);
    expect(containerOf(edge).args).toEqual(['edge']);
    for (const deployment of [controlPlane, edge]) {
      const pod = deployment.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect(containerOf(deployment).image).toBe('registry.example.com/edgegate:0.1.0');
    }
  });

  it('names ports as SPEC.md does, with the setting defaults and matching env', () => {
    const defaults = {
      http: settings.PORT.schema.parse(undefined),
      postgres: settings.EDGE_PG_PORT.schema.parse(undefined),
      mysql: settings.EDGE_MYSQL_PORT.schema.parse(undefined),
    };
    expect(defaults).toEqual({ http: 8080, postgres: 6432, mysql: 6033 });
    for (const deployment of [controlPlane, edge]) {
      const container = containerOf(deployment);
      const env = envOf(container);
      const ports = Object.fromEntries(container.ports.map((p) => [p.name, p.containerPort]));
      expect(ports.http).toBe(defaults.http);
      expect(env.PORT).toBe(String(ports.http));
      expect(env.EDGE_PG_PORT).toBe(String(defaults.postgres));
      expect(env.EDGE_MYSQL_PORT).toBe(String(defaults.mysql));
    }
    const edgePorts = containerOf(edge).ports.map((p) => [p.name, p.containerPort]);
    expect(edgePorts).toContainEqual(['postgres', defaults.postgres]);
    expect(edgePorts).toContainEqual(['mysql', defaults.mysql]);
  });

  it('passes only known settings, as strings, and takes the store URL and secret from a Secret', () => {
    const known = new Set([...Object.keys(settings), ...DRAIN_SETTINGS]);
    for (const deployment of [controlPlane, edge]) {
      const container = containerOf(deployment);
      for (const variable of container.env) {
        expect(known, variable.name).toContain(variable.name);
        if (variable.valueFrom === undefined) expect(typeof variable.value).toBe('string');
      }
      const fromSecret = Object.fromEntries(
        container.env
          .filter((e) => e.valueFrom !== undefined)
          .map((e) => [e.name, e.valueFrom?.secretKeyRef]),
      );
      expect(fromSecret).toEqual({
        DATABASE_URL: { name: 'edgegate', key: 'databaseUrl' },
        EDGEGATE_SECRET: { name: 'edgegate', key: 'edgegateSecret' },
        REDIS_URL: { name: 'edgegate', key: 'redisUrl', optional: true },
      });
    }
  });

  it('probes liveness on /healthz and the control plane’s readiness on /readyz', () => {
    for (const deployment of [controlPlane, edge]) {
      const container = containerOf(deployment);
      const portNames = container.ports.map((p) => p.name);
      for (const probe of [
        container.livenessProbe,
        container.readinessProbe,
        container.startupProbe,
      ])
        expect(portNames).toContain(probe.httpGet.port);
      expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    }
    expect(containerOf(controlPlane).readinessProbe.httpGet.path).toBe('/readyz');
  });

  it('probes the edge on paths its status listener answers with 200', async () => {
    const status = await startEdgeStatusServer(
      '127.0.0.1',
      0,
      new Registry(),
      createReadiness({ store: async () => undefined }),
    );
    try {
      const container = containerOf(edge);
      for (const probe of [container.livenessProbe, container.readinessProbe]) {
        const response = await fetch(`${status.url}${probe.httpGet.path}`);
        expect(response.status, probe.httpGet.path).toBe(200);
      }
    } finally {
      await status.close();
    }
  });

  it('gives each pod more time than its shutdown takes before a SIGKILL', () => {
    const values = defaultValues() as {
      shutdownDelaySeconds: number;
      edge: { drainSeconds: number };
    };
    const grace = (d: Manifest) => d.spec.template.spec.terminationGracePeriodSeconds;
    expect(grace(controlPlane)).toBeGreaterThan(
      values.shutdownDelaySeconds + CONTROL_PLANE_SHUTDOWN_S,
    );
    expect(grace(edge)).toBeGreaterThan(values.shutdownDelaySeconds + values.edge.drainSeconds);
    expect(envOf(containerOf(edge)).EDGE_DRAIN_SECONDS).toBe(String(values.edge.drainSeconds));
  });

  it('selects its own pods from every Deployment, Service and PodDisruptionBudget', () => {
    const podLabels = (component: string) =>
      find(manifests, 'Deployment', `edgegate-${component}`).spec.template.metadata.labels;
    for (const manifest of manifests) {
      const component = manifest.metadata.labels['app.kubernetes.io/component'] ?? '';
      const selector =
        manifest.kind === 'Service'
          ? manifest.spec.selector
          : (manifest.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
      expect(podLabels(component), `${manifest.kind} ${manifest.metadata.name}`).toMatchObject(
        selector,
      );
      expect(manifest.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
    for (const service of manifests.filter((m) => m.kind === 'Service')) {
      const component = service.metadata.labels['app.kubernetes.io/component'] ?? '';
      const container = containerOf(find(manifests, 'Deployment', `edgegate-${component}`));
      for (const port of service.spec.ports as { targetPort: string }[])
        expect(container.ports.map((p) => p.name)).toContain(port.targetPort);
    }
  });

  it('substitutes other values and release names', () => {
    const values = defaultValues() as Values & {
      edge: { replicas: number; readinessPath: string; resources: { limits: { memory: string } } };
    };
    values.edge.replicas = 5;
    values.edge.resources.limits.memory = '2Gi';
    const edgeDeployment = find(renderChart(values, 'prod'), 'Deployment', 'prod-edge');
    expect(edgeDeployment.spec.replicas).toBe(5);
    expect(containerOf(edgeDeployment).resources.limits.memory).toBe('2Gi');
    expect(() => renderChart({ ...values, edge: undefined })).toThrow('.Values.edge');
  });
});
