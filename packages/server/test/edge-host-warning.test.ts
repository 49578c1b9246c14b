// A control plane that runs no edge of its own (`edgegate server`) hands out connection strings
// naming EDGE_HOST: when it is not set, the default (localhost) is almost never what applications
// reach, so the start says so.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer, type Planes } from '../src/main.ts';
import { createTestDatabase } from './helpers/stores.ts';

/** Starts and stops a server, returning the warnings it logged. */
async function warningsOf(url: string, planes: Planes, env: Record<string, string> = {}) {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig({
    ...env,
    DATABASE_URL: url,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-edge-host-')),
    PORT: '0',
    EDGE_PG_PORT: '0',
    EDGE_MYSQL_PORT: '0',
    EDGEGATE_SECRET: 'h'.repeat(48),
  });
  const server = await startServer(config, { logger: pino({ level: 'warn' }, sink), planes });
  await server.close();
  return lines.filter((line) => line.level === 40).map((line) => line.msg);
}

describe('EDGE_HOST at control-plane start', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('`edgegate server` without EDGE_HOST warns that connection strings name the default host', async () => {
    const warnings = await warningsOf(database.url, 'server');
    const warning = warnings.find((msg) => msg.startsWith('EDGE_HOST is not set'));
    expect(warning).toContain('connection strings it hands out name localhost:0 (Postgres)');
    expect(warning).toContain('EDGE_PG_PORT, EDGE_MYSQL_PORT and the edge TLS settings');
  });

  it('is quiet when EDGE_HOST is set, or when the edge runs in the same process', async () => {
    const set = await warningsOf(database.url, 'server', { EDGE_HOST: 'edge.example.com' });
    expect(set.filter((msg) => msg.includes('EDGE_HOST'))).toEqual([]);
    const together = await warningsOf(database.url, 'all');
    expect(together.filter((msg) => msg.includes('EDGE_HOST'))).toEqual([]);
  });
});
