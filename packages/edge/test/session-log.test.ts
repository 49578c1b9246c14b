// What the edge tells an operator about sessions: each end at info with cache, user, database,
// client address, duration, bytes, queries and why; refused routing and failed logins said as
// such; and a flood of them sampled instead of flooding the log.
import net from 'node:net';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionLog, type SessionRecord } from '../src/core/session-log.ts';
import type { EdgeLogger } from '../src/index.ts';
import { cacheConfig, LOCAL_POSTGRES, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { mariadbCache, startMysqlEdge, type RunningMysqlEdge } from './helpers/mysql-edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';
import { startThrowawayCluster, type ThrowawayCluster } from './helpers/throwaway-cluster.ts';

interface Line {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recorder(): { lines: Line[]; logger: EdgeLogger } {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return {
    lines,
    logger: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') },
  };
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a log line');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('edge session logs', () => {
  const id = newCacheId();
  const scramCache = newCacheId();
  const { lines, logger } = recorder();
  let edge: RunningEdge;
  let origin: ThrowawayCluster;

  beforeAll(async () => {
    origin = await startThrowawayCluster();
    edge = await startEdge({
      source: new StaticConfigSource([
        cacheConfig(id),
        cacheConfig(scramCache, { port: origin.port }),
      ]),
      logger,
    });
  }, 60_000);
  afterAll(async () => {
    await edge?.close();
    await origin?.stop();
  });

  const ended = (cacheId: string) =>
    lines.filter((line) => line.obj.cacheId === cacheId && line.level === 'info');

  it('logs a session’s end with who, where, how long, how much and why', async () => {
    const client = new pg.Client({
      host: edge.host,
      port: edge.port,
      user: LOCAL_POSTGRES.user,
      database: LOCAL_POSTGRES.database,
      application_name: id,
    });
    await client.connect();
    await client.query('SELECT 1');
    await client.query('SELECT 2');
    await client.end();
    await until(() => ended(id).length > 0);
    const [line] = ended(id);
    expect(line?.msg).toBe('edge session ended');
    expect(line?.obj).toMatchObject({
      protocol: 'postgres',
      cacheId: id,
      user: LOCAL_POSTGRES.user,
      database: LOCAL_POSTGRES.database,
      client: '127.0.0.1',
      queries: 2,
      reason: 'client terminated',
    });
    expect(line?.obj.bytesIn).toBeGreaterThan(0);
    expect(line?.obj.bytesOut).toBeGreaterThan(0);
    expect(line?.obj.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('says a refused cache id and a failed login as such, with the reason', async () => {
    const unknown = newCacheId();
    const refused = new pg.Client({
      host: edge.host,
      port: edge.port,
      user: 'postgres',
      database: 'test',
      application_name: unknown,
    });
    await expect(refused.connect()).rejects.toThrow(/there is no cache/);
    await until(() => ended(unknown).length > 0);
    expect(ended(unknown)[0]?.msg).toBe('edge session refused');
    expect(String(ended(unknown)[0]?.obj.reason)).toMatch(/^refused 08004: there is no cache/);

    const wrong = new pg.Client({
      host: edge.host,
      port: edge.port,
      user: origin.users.scram,
      password: 'not the password',
      database: origin.database,
      application_name: scramCache,
    });
    await expect(wrong.connect()).rejects.toThrow(/password authentication failed/);
    await until(() => ended(scramCache).length > 0);
    expect(ended(scramCache)[0]?.msg).toBe('edge login failed');
    expect(ended(scramCache)[0]?.obj).toMatchObject({
      user: origin.users.scram,
      reason: 'authentication failed: 28P01',
    });
  });

  it('a flood of sessions logs a bounded number of lines, then how many it left out', async () => {
    const before = lines.length;
    const sockets = await Promise.all(
      Array.from(
        { length: 120 },
        () =>
          new Promise<void>((resolve) => {
            const socket = net.connect(edge.port, edge.host, () => socket.end());
            socket.on('close', () => resolve());
            socket.on('error', () => resolve());
          }),
      ),
    );
    expect(sockets).toHaveLength(120);
    await until(() => lines.slice(before).some((line) => line.obj.skipped !== undefined));
    const flood = lines.slice(before);
    const single = flood.filter((line) => line.msg === 'edge session ended');
    const summary = flood.find((line) => line.obj.skipped !== undefined);
    expect(single.length).toBeLessThanOrEqual(50);
    expect(single.length + Number(summary?.obj.skipped)).toBeGreaterThanOrEqual(120 - 50);
  });
});

describe('MySQL edge session logs', () => {
  const { lines, logger } = recorder();
  let edge: RunningMysqlEdge;
  beforeAll(async () => {
    edge = await startMysqlEdge({ caches: [mariadbCache({ id: 'cch_logged' })], logger });
  });
  afterAll(async () => {
    await edge?.close();
  });
  const of = (cacheId: string) => lines.filter((line) => line.obj.cacheId === cacheId);
  const connect = (user: string, password?: string) =>
    mysql.createConnection({ host: edge.host, port: edge.port, user, password, database: 'test' });

  it('logs the end, a refused cache and a failed login', async () => {
    const client = await connect('cch_logged-root');
    await client.query('SELECT 1');
    await client.end();
    await until(() => of('cch_logged').length > 0);
    expect(of('cch_logged')[0]?.msg).toBe('edge session ended');
    expect(of('cch_logged')[0]?.obj).toMatchObject({
      protocol: 'mysql',
      user: 'root',
      database: 'test',
      client: '127.0.0.1',
      // Every command counts: the SELECT and COM_QUIT.
      queries: 2,
      reason: 'client quit',
    });

    await expect(connect('cch_nothere-root')).rejects.toThrow(/there is no cache/);
    await until(() => of('cch_nothere').length > 0);
    expect(of('cch_nothere')[0]?.msg).toBe('edge session refused');

    // root has no password on this machine's MariaDB: giving one is refused with 1045.
    const before = of('cch_logged').length;
    await expect(connect('cch_logged-root', 'not the password')).rejects.toThrow(/Access denied/);
    await until(() => of('cch_logged').length > before);
    expect(of('cch_logged')[before]?.msg).toBe('edge login failed');
    expect(of('cch_logged')[before]?.obj.reason).toBe('authentication failed: 1045');
  });
});

describe('SessionLog', () => {
  it('admits a budget per second and counts the rest', () => {
    const { lines, logger } = recorder();
    const log = new SessionLog(logger, 3);
    const record: SessionRecord = {
      protocol: 'mysql',
      cacheId: 'cch_x',
      user: 'u',
      database: 'd',
      client: '127.0.0.1',
      durationMs: 1.4,
      bytesIn: 1,
      bytesOut: 2,
      queries: 0,
      reason: 'client closed',
    };
    for (let i = 0; i < 5; i += 1) log.ended(record);
    expect(lines.map((line) => line.msg)).toEqual([
      'edge session ended',
      'edge session ended',
      'edge session ended',
    ]);
    expect(lines[0]?.obj.durationMs).toBe(1);
  });
});
