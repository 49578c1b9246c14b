// A client cannot hold the edge's descriptors for nothing: connections past EDGE_MAX_CONNECTIONS or
// EDGE_MAX_CONNECTIONS_PER_ADDRESS get Postgres' 53300 at once, for the whole process however many
// threads accept them, and a client that has not logged in by EDGE_LOGIN_TIMEOUT_SECONDS gets
// 08P01 and is closed, with its origin connection.
import { execFile, execFileSync } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConnectionCounts, EdgeThreads, type EdgeLogger } from '../src/index.ts';
import { BackendParser, serialize } from '../src/pg/protocol/index.ts';
import type { BackendMessage } from '../src/pg/protocol/index.ts';
import { cacheConfig, LOCAL_POSTGRES, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';
import { startThrowawayCluster, type ThrowawayCluster } from './helpers/throwaway-cluster.ts';

const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

// A client that sends the first bytes of a startup packet and no more: what a flood looks like.
class HalfOpen {
  readonly messages: BackendMessage[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  readonly #socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    const parser = new BackendParser();
    socket.on('data', (chunk: Buffer) => parser.parse(chunk, (m) => this.messages.push(m)));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  static async open(port: number, localAddress = '127.0.0.1'): Promise<HalfOpen> {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    socket.write(serialize.startupMessage({ user: 'postgres' }).subarray(0, 6));
    return new HalfOpen(socket);
  }

  /** The SQLSTATE of the error it was sent, if any. */
  get code(): string | undefined {
    const error = this.messages.find((m) => m.kind === 'errorResponse');
    return error?.kind === 'errorResponse' ? error.fields.C : undefined;
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

async function openMany(port: number, count: number, localAddress?: string): Promise<HalfOpen[]> {
  return Promise.all(Array.from({ length: count }, () => HalfOpen.open(port, localAddress)));
}

// Waits until `refused` of the clients have their 53300 and the edge holds `sessions` in all (a
// loaded machine may take a while to accept them all), then sorts the clients.
async function settle(
  clients: HalfOpen[],
  refused: number,
  sessions: () => number | Promise<number>,
  total: number,
): Promise<{ refused: HalfOpen[]; held: HalfOpen[] }> {
  const sorted = () => ({
    refused: clients.filter((client) => client.code === '53300' && client.isClosed),
    held: clients.filter((client) => client.messages.length === 0 && !client.isClosed),
  });
  await vi.waitFor(
    async () => {
      expect(sorted().refused).toHaveLength(refused);
      expect(await sessions()).toBe(total);
    },
    { timeout: 10_000, interval: 50 },
  );
  return sorted();
}

const id = newCacheId();
const source = new StaticConfigSource([cacheConfig(id, { defaultMode: 'off' })]);

describe('connection caps on one thread', () => {
  let edge: RunningEdge;
  const open: HalfOpen[] = [];

  beforeAll(async () => {
    edge = await startEdge({
      source,
      logger: silent,
      connections: new ConnectionCounts(ConnectionCounts.buffer(1), 0, {
        maxConnections: 5,
        maxPerAddress: 3,
      }),
    });
  });

  afterAll(async () => {
    for (const client of open) client.destroy();
    await edge?.close();
  });

  it('refuses connections past the per-address and the total cap with 53300, and admits again once they end', async () => {
    const first = await openMany(edge.port, 5, '127.0.0.1');
    open.push(...first);
    const fromOne = await settle(first, 2, () => edge.server.sessionCount, 3);
    expect(fromOne.held).toHaveLength(3);
    expect(fromOne.refused).toHaveLength(2);
    const error = fromOne.refused[0]?.messages[0];
    expect(error?.kind === 'errorResponse' && error.fields).toMatchObject({
      S: 'FATAL',
      C: '53300',
      M: expect.stringContaining('at most 3 per address'),
    });

    // Another address may still connect, up to the total.
    const second = await openMany(edge.port, 3, '127.0.0.2');
    open.push(...second);
    const fromTwo = await settle(second, 1, () => edge.server.sessionCount, 5);
    expect(fromTwo.held).toHaveLength(2);
    expect(fromTwo.refused).toHaveLength(1);
    expect(fromTwo.refused[0]?.messages[0]).toMatchObject({
      fields: { M: expect.stringContaining('maximum of 5 connections') },
    });

    // Real clients see the same error: pg, and psql, which asks for TLS first (sslmode=prefer).
    const driver = new pg.Client({ ...LOCAL_POSTGRES, port: edge.port, application_name: id });
    await expect(driver.connect()).rejects.toMatchObject({ code: '53300' });
    const psql = await new Promise<string>((resolve) =>
      execFile(
        'psql',
        [
          `postgres://postgres@127.0.0.1:${edge.port}/test?application_name=${id}&sslmode=prefer`,
          '-c',
          'select 1',
        ],
        { encoding: 'utf8', timeout: 10_000 },
        (_error, _stdout, stderr) => resolve(stderr),
      ),
    );
    expect(psql).toContain('FATAL:  sorry, too many clients already');

    // Connections that end no longer count.
    for (const client of fromOne.held) client.destroy();
    await vi.waitFor(() => expect(edge.server.sessionCount).toBe(2));
    const client = new pg.Client({ ...LOCAL_POSTGRES, port: edge.port, application_name: id });
    await client.connect();
    expect((await client.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
    await client.end();
  });
});

describe('the login deadline', () => {
  let edge: RunningEdge;
  let cluster: ThrowawayCluster;
  const scramId = newCacheId();

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    source.set(
      cacheConfig(scramId, { defaultMode: 'off', hostname: cluster.host, port: cluster.port }),
    );
    edge = await startEdge({ source, logger: silent, loginTimeoutMs: 1000 });
  }, 120_000);

  afterAll(async () => {
    await edge?.close();
    await cluster?.stop();
  });

  it('closes a client that sent only part of its startup packet, with 08P01', async () => {
    const client = await HalfOpen.open(edge.port);
    await sleep(500);
    expect(client.isClosed).toBe(false);
    await client.closed;
    expect(client.messages).toHaveLength(1);
    expect(client.messages[0]).toMatchObject({
      kind: 'errorResponse',
      fields: { S: 'FATAL', C: '08P01', M: expect.stringContaining('client_login_timeout') },
    });
    expect(edge.server.sessionCount).toBe(0);
  });

  it('closes a client that stops in the middle of authentication, and its origin connection', async () => {
    const originConnections = () =>
      execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${cluster.port} )`], {
        encoding: 'utf8',
      })
        .split('\n')
        .filter((line) => line.trim() !== '').length;
    const before = originConnections();
    const socket = net.connect({ host: '127.0.0.1', port: edge.port });
    const messages: BackendMessage[] = [];
    const parser = new BackendParser();
    socket.on('data', (chunk: Buffer) => parser.parse(chunk, (m) => messages.push(m)));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(
      serialize.startupMessage({
        user: cluster.users.scram,
        database: cluster.database,
        application_name: scramId,
      }),
    );
    // The origin asks for SCRAM; the client never answers.
    await vi.waitFor(() => expect(messages.map((m) => m.kind)).toEqual(['authenticationSASL']));
    expect(originConnections()).toBe(before + 1);
    await closed;
    expect(messages[1]).toMatchObject({ kind: 'errorResponse', fields: { C: '08P01' } });
    await vi.waitFor(() => expect(originConnections()).toBe(before));
    // Within the deadline a login works.
    const client = new pg.Client({
      host: '127.0.0.1',
      port: edge.port,
      user: cluster.users.scram,
      password: cluster.password(cluster.users.scram),
      database: cluster.database,
      application_name: scramId,
    });
    await client.connect();
    expect((await client.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
    await client.end();
  });
});

describe('connection caps across threads', () => {
  let edge: EdgeThreads;
  const open: HalfOpen[] = [];

  beforeAll(async () => {
    edge = await EdgeThreads.start({
      threads: 2,
      host: '127.0.0.1',
      port: 0,
      tls: null,
      cacheMaxBytes: 16 * 1024 * 1024,
      guard: null,
      source,
      logger: silent,
      connectionCaps: { maxConnections: 6, maxPerAddress: 4 },
      // Long enough for both floods to be counted on a loaded machine before the first expires.
      loginTimeoutMs: 5000,
    });
  });

  afterAll(async () => {
    for (const client of open) client.destroy();
    await edge?.close();
  });

  it('hold for the whole process, whichever thread the kernel gives each connection', async () => {
    const sessions = async () =>
      (await edge.collect()).reduce((sum, report) => sum + report.sessions, 0);
    const fromOne = await openMany(edge.port, 12, '127.0.0.1');
    open.push(...fromOne);
    const one = await settle(fromOne, 8, sessions, 4);
    expect(one.held).toHaveLength(4);
    expect(one.refused).toHaveLength(8);
    const fromTwo = await openMany(edge.port, 6, '127.0.0.2');
    open.push(...fromTwo);
    const two = await settle(fromTwo, 4, sessions, 6);
    expect(two.held).toHaveLength(2);
    expect(two.refused).toHaveLength(4);

    // The login deadline frees them all; then connections are admitted again.
    await Promise.all([...one.held, ...two.held].map((client) => client.closed));
    for (const client of [...one.held, ...two.held]) expect(client.code).toBe('08P01');
    const again = await openMany(edge.port, 4, '127.0.0.1');
    open.push(...again);
    expect((await settle(again, 0, sessions, 4)).held).toHaveLength(4);
  });
});
