// compose.yaml and the Dockerfile, read as files: the topology an operator starts with
// `docker compose up` and the image it runs (the image itself is built by `npm run image:test`).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { settings } from '../packages/server/src/config.ts';

const ROOT = resolve(import.meta.dirname, '..');

interface Service {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
}

// Compose reads YAML 1.1 merge keys (`<<: *edgegate`), as `merge: true` does here.
const compose = parse(readFileSync(resolve(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const edgegateServices = Object.entries(services).filter(
  ([, s]) => s.image === 'localhost/edgegate:latest',
);
const dockerfile = readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8');

/** The commands `edgegate --help` lists, from the real CLI. */
async function cliCommands(): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    resolve(ROOT, 'packages/cli/bin/edgegate.js'),
    '--help',
  ]);
  const lines = stdout.slice(stdout.indexOf('Commands:'), stdout.indexOf('Run `edgegate'));
  return [...lines.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1] ?? '');
}

describe('compose.yaml', () => {
  it('runs the whole topology: store, Redis, origin, two control planes, two edges', () => {
    expect(Object.keys(services).sort()).toEqual([
      'control-plane-1',
      'control-plane-2',
      'edge-1',
      'edge-2',
      'migrate',
      'origin',
      'redis',
      'store',
    ]);
    const commands = Object.fromEntries(edgegateServices.map(([name, s]) => [name, s.command]));
    expect(commands).toEqual({
      migrate: ['migrate'],
      'control-plane-1': ['server'],
      'control-plane-2': ['server'],
      'edge-1': ['edge'],
      'edge-2': ['edge'],
    });
  });

  it('uses commands the edgegate CLI has', async () => {
    const known = await cliCommands();
    for (const [name, service] of edgegateServices)
      expect(known, name).toContain(service.command?.[0]);
    const cmd = dockerfile.match(/^CMD \["(\w+)"\]/m)?.[1];
    expect(known).toContain(cmd);
  });

  it('gives every long-running service a health check, on /readyz or /healthz for Edgegate', () => {
    for (const [name, service] of Object.entries(services)) {
      if (name === 'migrate') continue;
      expect(service.healthcheck?.test, name).toBeDefined();
    }
    const probe = (name: string) => services[name]?.healthcheck?.test.join(' ') ?? '';
    for (const name of ['control-plane-1', 'control-plane-2'])
      expect(probe(name)).toContain('http://127.0.0.1:8080/readyz');
    for (const name of ['edge-1', 'edge-2'])
      expect(probe(name)).toContain('http://127.0.0.1:8080/healthz');
  });

  it('starts Edgegate after a healthy store and Redis and a finished migration', () => {
    for (const [name, service] of edgegateServices) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(Object.keys(services), name).toContain(dependency);
        expect(condition).toBe(
          dependency === 'migrate' ? 'service_completed_successfully' : 'service_healthy',
        );
      }
      if (name !== 'migrate') expect(Object.keys(service.depends_on ?? {})).toContain('migrate');
    }
  });

  it('points every node at the same store, Redis and secret, with known settings only', () => {
    for (const [name, service] of edgegateServices) {
      const env = service.environment ?? {};
      for (const variable of Object.keys(env))
        expect(Object.keys(settings), name).toContain(variable);
      expect(new URL(env.DATABASE_URL ?? '').host).toBe('store:5432');
      expect(env.REDIS_URL).toBe('redis://redis:6379');
      // Compose refuses to start without it rather than let each node generate its own.
      expect(env.EDGEGATE_SECRET).toMatch(/^\$\{EDGEGATE_SECRET:\?/);
      expect(env.PORT).toBe('8080');
      expect(env.EDGE_PG_PORT).toBe('6432');
      expect(env.EDGE_MYSQL_PORT).toBe('6033');
    }
  });

  it('publishes distinct host ports onto PORT, EDGE_PG_PORT and EDGE_MYSQL_PORT', () => {
    const published = edgegateServices.flatMap(([, s]) => s.ports ?? []);
    const hostPorts = published.map((p) => p.split(':')[0]);
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    for (const mapping of published)
      expect(['8080', '6432', '6033']).toContain(mapping.split(':')[1]);
    expect(services['edge-1']?.ports).toEqual(expect.arrayContaining(['6432:6432', '6033:6033']));
    expect(services['edge-2']?.ports).toEqual(expect.arrayContaining(['6433:6432', '6034:6033']));
  });

  it('waits longer than a node takes to shut down before killing it', () => {
    for (const [name, service] of edgegateServices)
      expect(Number.parseInt(service.stop_grace_period ?? '10s'), name).toBeGreaterThan(15);
  });
});

describe('the Dockerfile', () => {
  it('takes its base as a build argument defaulting to debian:bookworm-slim', () => {
    expect(dockerfile).toMatch(/^ARG BASE_IMAGE=debian:bookworm-slim$/m);
    expect(dockerfile.match(/^FROM \$\{BASE_IMAGE\}/gm)).toHaveLength(2);
  });

  it('runs as a non-root user, checks /healthz and starts the edgegate CLI on Node 24', () => {
    expect(dockerfile).toMatch(/^USER edgegate$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n.*\/healthz/m);
    expect(dockerfile).toMatch(
      /^ENTRYPOINT \["node", "\/app\/packages\/cli\/bin\/edgegate\.js"\]$/m,
    );
    expect(dockerfile).toContain('npm ci');
  });
});
