// Configuration: every SPEC §1 variable validated with a message naming it; the root secret.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../src/config.ts';

describe('configuration', () => {
  it('has working embedded defaults', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      port: 8080,
      edgePgPort: 6432,
      edgeMysqlPort: 6033,
      edgeHost: 'localhost',
      publicUrl: 'http://localhost:8080',
      databaseUrl: undefined,
      logLevel: 'info',
    });
    expect(config.dataDir).toMatch(/\/data$/);
  });

  it('caps edge connections from the open-file limit unless told, and gives logins 15 s', () => {
    expect(parseConfig({})).toMatchObject({
      edgeMaxConnections: null,
      edgeMaxConnectionsPerAddress: null,
      edgeLoginTimeoutSeconds: 15,
    });
    expect(
      parseConfig(
        { EDGE_MAX_CONNECTIONS: '500', EDGE_LOGIN_TIMEOUT_SECONDS: '5' },
        { EDGE_MAX_CONNECTIONS_PER_ADDRESS: '20' },
      ),
    ).toMatchObject({
      edgeMaxConnections: 500,
      edgeMaxConnectionsPerAddress: 20,
      edgeLoginTimeoutSeconds: 5,
    });
  });

  it('lets flags win over the environment', () => {
    expect(parseConfig({ PORT: '9000' }, { PORT: '9100' }).port).toBe(9100);
  });

  it.each([
    ['PORT', 'eighty', /^PORT \(--port\) must be a port number \(got "eighty"\)$/],
    ['EDGE_PG_PORT', '70000', /^EDGE_PG_PORT \(--edge-pg-port\) must be between 0 and 65535/],
    [
      'DATABASE_URL',
      'mysql://x',
      /^DATABASE_URL \(--database-url\) must be a URL starting with postgres:\/\/ or postgresql:\/\/$/,
    ],
    ['REDIS_URL', 'http://x', /^REDIS_URL \(--redis-url\) must be a URL/],
    [
      'PUBLIC_URL',
      'localhost:8080',
      /^PUBLIC_URL \(--public-url\) must be a URL starting with http:\/\/ or https:\/\/$/,
    ],
    ['LOG_LEVEL', 'loud', /^LOG_LEVEL \(--log-level\)/],
    [
      'EDGE_MAX_CONNECTIONS',
      '0',
      /^EDGE_MAX_CONNECTIONS \(--edge-max-connections\) must be at least 1/,
    ],
    [
      'EDGE_MAX_CONNECTIONS_PER_ADDRESS',
      'many',
      /^EDGE_MAX_CONNECTIONS_PER_ADDRESS \(--edge-max-connections-per-address\) must be a number/,
    ],
    [
      'EDGE_LOGIN_TIMEOUT_SECONDS',
      '0.5',
      /^EDGE_LOGIN_TIMEOUT_SECONDS \(--edge-login-timeout-seconds\) must be a whole number/,
    ],
    ['EDGEGATE_SECRET', 'short', /^EDGEGATE_SECRET \(--secret\) must be at least 32 characters/],
  ])('names %s when it is invalid', (name, value, message) => {
    expect(() => parseConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => parseConfig({ [name]: value })).toThrow(message);
  });

  it('never repeats a bad secret or URL in the error', () => {
    try {
      parseConfig({ EDGEGATE_SECRET: 'hunter2' });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
    }
  });

  it('generates the root secret into DATA_DIR once, readable only by its owner', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-config-'));
    const first = loadConfig({ DATA_DIR: dir });
    expect(first.secretSource).toBe('generated');
    expect(first.secret.length).toBeGreaterThanOrEqual(48);
    expect(statSync(join(dir, 'secret')).mode & 0o777).toBe(0o600);
    const second = loadConfig({ DATA_DIR: dir });
    expect(second).toMatchObject({ secret: first.secret, secretSource: 'data-dir' });
    expect(readFileSync(join(dir, 'secret'), 'utf8').trim()).toBe(first.secret);
  });

  it('prefers EDGEGATE_SECRET and refuses a truncated secret file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-config-'));
    const given = 'x'.repeat(40);
    expect(loadConfig({ DATA_DIR: dir, EDGEGATE_SECRET: given })).toMatchObject({
      secret: given,
      secretSource: 'environment',
    });
    writeFileSync(join(dir, 'secret'), 'short\n');
    expect(() => loadConfig({ DATA_DIR: dir })).toThrow(/shorter than 32 characters/);
  });
});
