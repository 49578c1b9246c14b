// /metrics of a real edge (two threads) with METRICS_MAX_CACHES=2 and three caches: the two most
// queried keep their cache_id, the third is summed under cache_id="other", nothing is lost from
// the totals and "other" never goes down when the ranking changes. Also the edge's evictions,
// entries and failed logins by protocol.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { insertCache } from '../src/db/queries/caches.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { signUp } from '../src/services/accounts.ts';
import { newId } from '../src/services/crypto.ts';
import { createTestDatabase } from './helpers/stores.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`not a sample: ${line}`);
      const labels = Object.fromEntries(
        [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
      );
      return { name: match[1] as string, labels, value: Number(match[3]) };
    });
}

describe('per-cache metric series are capped by METRICS_MAX_CACHES', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: RunningServer;
  const caches: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({
      DATABASE_URL: database.url,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-metrics-cap-')),
      PORT: '0',
      EDGE_PG_PORT: '0',
      EDGE_MYSQL_PORT: '0',
      EDGE_THREADS: '2',
      EDGE_CACHE_MAX_MB: '1',
      METRICS_MAX_CACHES: '2',
      EDGEGATE_SECRET: 'm'.repeat(48),
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, { logger: pino({ level: 'silent' }), planes: 'all' });
    const { personalWorkspace } = await signUp(server.store.db, {
      email: 'metrics-cap@example.com',
      password: 'long enough pw',
    });
    for (const name of ['a', 'b', 'c']) {
      const row = await insertCache(server.store.db, {
        id: newId('cch'),
        workspaceId: personalWorkspace.id,
        name,
        description: '',
        type: 'postgres',
        hostname: '127.0.0.1',
        port: 5432,
        defaultMode: 'auto',
        defaultTtlSeconds: 60,
        originTls: 'disable',
      });
      caches.push(row.id);
    }
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  async function queries(cacheId: string, sqls: string[]): Promise<void> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: server.edge!.port,
      user: 'postgres',
      database: 'test',
      application_name: cacheId,
    });
    await client.connect();
    try {
      for (const sql of sqls) await client.query(sql);
    } finally {
      await client.end();
    }
  }

  async function scrape(): Promise<Sample[]> {
    const response = await server.app!.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    return parse(response.body);
  }

  const byCache = (samples: Sample[], name: string) => {
    const totals = new Map<string, number>();
    for (const s of samples.filter((s) => s.name === name)) {
      const id = s.labels.cache_id as string;
      totals.set(id, (totals.get(id) ?? 0) + s.value);
    }
    return totals;
  };

  it('keeps the top caches by traffic, sums the rest as "other", and never takes from "other"', async () => {
    const [a, b, c] = caches as [string, string, string];
    await queries(
      a,
      Array.from({ length: 6 }, () => 'SELECT 1 AS one'),
    );
    await queries(
      b,
      Array.from({ length: 4 }, () => 'SELECT 2 AS two'),
    );
    await queries(c, ['SELECT 3 AS three', 'SELECT 3 AS three']);

    const first = byCache(await scrape(), 'edgegate_edge_queries_total');
    expect([...first.keys()].sort()).toEqual([a, b, 'other'].sort());
    expect(first.get(a)).toBe(6);
    expect(first.get(b)).toBe(4);
    expect(first.get('other')).toBe(2);
    const firstLatency = byCache(await scrape(), 'edgegate_edge_query_duration_seconds_count');
    expect([...firstLatency.keys()].sort()).toEqual([a, b, 'other'].sort());
    expect(firstLatency.get('other')).toBe(2);

    // c now has the most traffic: it gets its own series, b's are summed under "other" from now.
    await queries(
      c,
      Array.from({ length: 10 }, () => 'SELECT 3 AS three'),
    );
    await queries(b, ['SELECT 2 AS two']);
    const samples = await scrape();
    const second = byCache(samples, 'edgegate_edge_queries_total');
    expect([...second.keys()].sort()).toEqual([a, c, 'other'].sort());
    expect(second.get(c)).toBe(10);
    // "other" kept c's first two and gained b's new query: a counter never goes down.
    expect(second.get('other')).toBe(3);
    expect([...second.values()].reduce((x, y) => x + y, 0)).toBe(6 + 4 + 2 + 10 + 1 - 4);
    const latency = byCache(samples, 'edgegate_edge_query_duration_seconds_count');
    expect([...latency.keys()].sort()).toEqual([a, c, 'other'].sort());
    expect(latency.get('other')).toBe(3);
    const bytes = byCache(samples, 'edgegate_edge_bytes_served_total');
    expect(bytes.has(b)).toBe(false);
    expect(bytes.size).toBeLessThanOrEqual(3);
  });

  it('counts evictions, entries and failed logins by protocol', async () => {
    const [a] = caches as [string];
    // 1 MiB of results over two threads, 20 KB each: the later ones push the earlier out.
    await queries(
      a,
      Array.from({ length: 60 }, (_, i) => `SELECT repeat('x', 20000) AS filler, ${i} AS n`),
    );
    const denied = new pg.Client({
      host: '127.0.0.1',
      port: server.edge!.port,
      user: 'no_such_role_for_metrics',
      database: 'test',
      application_name: a,
    });
    await expect(denied.connect()).rejects.toThrow(/no_such_role_for_metrics/);
    const mysqlCache = await insertCache(server.store.db, {
      id: newId('cch'),
      workspaceId: (
        await server.store.db
          .selectFrom('caches')
          .select('workspace_id')
          .where('id', '=', a)
          .executeTakeFirstOrThrow()
      ).workspace_id,
      name: 'm',
      description: '',
      type: 'mariadb',
      hostname: '127.0.0.1',
      port: 3306,
      defaultMode: 'auto',
      defaultTtlSeconds: 60,
      originTls: 'disable',
    });
    await expect(
      mysql.createConnection({
        host: '127.0.0.1',
        port: server.edge!.mysqlPort,
        user: `${mysqlCache.id}-root`,
        password: 'not the password',
      }),
    ).rejects.toThrow(/Access denied/);

    const samples = await scrape();
    const one = (name: string, labels: Record<string, string> = {}) =>
      samples.find(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )?.value;
    expect(one('edgegate_edge_cache_evictions_total')).toBeGreaterThan(0);
    expect(one('edgegate_edge_cache_entries')).toBeGreaterThan(0);
    expect(one('edgegate_edge_cache_bytes')).toBeLessThanOrEqual(1024 * 1024);
    expect(one('edgegate_edge_auth_failures_total', { protocol: 'postgres' })).toBe(1);
    expect(one('edgegate_edge_auth_failures_total', { protocol: 'mysql' })).toBe(1);
  });
});
