// Health, readiness, Prometheus metrics and graceful shutdown of a real listening server.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { pino } from 'pino';
import { startServer, type RunningServer } from '../src/main.ts';
import { loadConfig } from '../src/config.ts';

const serverPackage = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
) as { version: string };

describe('operations', () => {
  let server: RunningServer;
  const logs: string[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'eg-ops-'));

  beforeAll(async () => {
    const config = loadConfig({
      DATA_DIR: dataDir,
      PORT: '0',
      EDGE_PG_PORT: '0',
      EDGE_MYSQL_PORT: '0',
      LOG_LEVEL: 'info',
    });
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    server = await startServer(config, { logger });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers liveness, with the version running, and readiness', async () => {
    const { version } = JSON.parse(
      readFileSync(join(import.meta.dirname, '../package.json'), 'utf8'),
    ) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok', version });
    expect(await (await fetch(`${server.url}/readyz`)).json()).toEqual({
      status: 'ready',
      checks: { store: 'ok', changeFeed: 'ok' },
    });
  });

  it('applies a new log level on reload and logs what changed', async () => {
    const config = loadConfig({
      DATA_DIR: dataDir,
      PORT: '0',
      EDGE_PG_PORT: '0',
      EDGE_MYSQL_PORT: '0',
      LOG_LEVEL: 'info',
    });
    const requestLines = () => logs.filter((line) => line.includes('"url":"/w/reload-probe"'));
    await fetch(`${server.url}/w/reload-probe`);
    expect(requestLines().length).toBeGreaterThan(0);

    expect(await server.reload({ ...config, logLevel: 'warn' })).toEqual(['log level info → warn']);
    const before = requestLines().length;
    await fetch(`${server.url}/w/reload-probe`);
    expect(requestLines().length).toBe(before);

    expect(await server.reload({ ...config, logLevel: 'info' })).toEqual(['log level warn → info']);
    expect(logs.some((line) => line.includes('reloaded: log level warn → info'))).toBe(true);
    await fetch(`${server.url}/w/reload-probe`);
    expect(requestLines().length).toBeGreaterThan(before);

    // What only a restart applies is named, never a secret's value.
    const secret = 'c'.repeat(40);
    expect(await server.reload({ ...config, apiRateLimit: 5, secret })).toEqual([]);
    const warning = logs.find((line) => line.includes('takes a restart')) ?? '';
    expect(warning).toContain('EDGEGATE_SECRET, API_RATE_LIMIT changed');
    expect(warning).not.toContain(secret);
  });

  it('exposes request counts and latency by route pattern', async () => {
    await fetch(`${server.url}/w/some-workspace`);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(
      /edgegate_http_requests_total\{method="GET",route="\/healthz",status_code="200"\} \d+/,
    );
    expect(text).toMatch(
      /edgegate_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/w\/:slug"/,
    );
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain(
      `edgegate_build_info{version="${serverPackage.version}",node_version="${process.version}"} 1`,
    );
  });

  it('answers unknown API paths with problem+json', async () => {
    const response = await fetch(`${server.url}/v1/nothing`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(await response.json()).toMatchObject({
      status: 404,
      type: 'https://edgegate.dev/problems/not_found',
    });
  });

  it('never logs the root secret', () => {
    const secret = loadConfig({ DATA_DIR: dataDir }).secret;
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.join('\n')).not.toContain(secret);
  });

  it('finishes an in-flight request when asked to stop, then refuses new ones', async () => {
    const body = 'email=slow%40example.com&password=still+typing+this';
    const { port } = new URL(server.url);
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/login',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': body.length,
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 300);
    });
    await new Promise((r) => setTimeout(r, 100));
    const closed = server.close(10_000);
    const answered = await response;
    expect(answered.status).toBe(403);
    expect(answered.text).toContain('This form has expired');
    await closed;
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
