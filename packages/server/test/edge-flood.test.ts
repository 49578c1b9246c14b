// A flood of half-open connections on the edge port of `edgegate start` (edge and control plane in
// one process) takes neither plane down: past EDGE_MAX_CONNECTIONS_PER_ADDRESS and
// EDGE_MAX_CONNECTIONS the edge answers 53300 at once, the control plane keeps answering, a
// legitimate client from another address still connects, and the login deadline
// (EDGE_LOGIN_TIMEOUT_SECONDS) closes what the flood left open.
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pg as protocol } from '@edgegate/edge';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { signUp } from '../src/services/accounts.ts';
import { freePort } from './helpers/listening-app.ts';
import { createTestDatabase } from './helpers/stores.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';

const MAX_CONNECTIONS = 300;
const PER_ADDRESS = 100;
// Long enough for the flood phases below to finish on a loaded machine before the first expires.
const LOGIN_TIMEOUT_SECONDS = 10;

// A socket that sends six bytes of a startup packet and nothing more, from `localAddress`.
class Flooder {
  readonly messages: protocol.BackendMessage[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  readonly socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    const parser = new protocol.BackendParser();
    socket.on('data', (chunk: Buffer) => parser.parse(chunk, (m) => this.messages.push(m)));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  get code(): string | undefined {
    const error = this.messages.find((m) => m.kind === 'errorResponse');
    return error?.kind === 'errorResponse' ? error.fields.C : undefined;
  }
}

async function flood(port: number, count: number, localAddress: string): Promise<Flooder[]> {
  const startup = protocol.serialize.startupMessage({ user: 'postgres', database: 'test' });
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Flooder>((resolve, reject) => {
          const socket = net.connect({ host: '127.0.0.1', port, localAddress });
          socket.once('error', reject);
          socket.once('connect', () => {
            socket.off('error', reject);
            socket.write(startup.subarray(0, 6));
            resolve(new Flooder(socket));
          });
        }),
    ),
  );
}

function tally(flooders: Flooder[]): { refused: number; held: number; other: number } {
  const counts = { refused: 0, held: 0, other: 0 };
  for (const flooder of flooders) {
    if (flooder.code === '53300' && flooder.isClosed) counts.refused += 1;
    else if (flooder.messages.length === 0 && !flooder.isClosed) counts.held += 1;
    else counts.other += 1;
  }
  return counts;
}

describe('a connection flood on the edge port of `edgegate start`', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: RunningServer;
  let token: string;
  let edgeUrl: string;
  const flooders: Flooder[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({
      DATABASE_URL: database.url,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-flood-')),
      PORT: '0',
      EDGE_PG_PORT: String(await freePort()),
      EDGE_MYSQL_PORT: '0',
      EDGE_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      EDGE_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
      EDGE_LOGIN_TIMEOUT_SECONDS: String(LOGIN_TIMEOUT_SECONDS),
      EDGEGATE_SECRET: 'f'.repeat(48),
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, { logger: pino({ level: 'silent' }), planes: 'all' });
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email: 'flood@example.com',
      password: 'long enough pw',
    });
    const grant = await consentedGrant(server.app!, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read', 'caches:write'],
    });
    token = (await accessTokenFor(server.app!, grant)).access_token;
    const created = await fetch(`${server.url}/v1/caches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'Flooded',
        type: 'postgres',
        hostname: '127.0.0.1',
        port: 5432,
        originTls: 'disable',
      }),
    });
    expect(created.status).toBe(201);
    const cacheId = ((await created.json()) as { data: { id: string } }).data.id;
    edgeUrl = `postgres://postgres@127.0.0.1:${server.edge!.port}/test?application_name=${cacheId}`;
  }, 60_000);

  afterAll(async () => {
    for (const flooder of flooders) flooder.socket.destroy();
    await server?.close();
    await database?.drop();
  });

  // What must keep working whatever the edge port goes through.
  async function controlPlaneAnswers(): Promise<void> {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const caches = await fetch(`${server.url}/v1/caches`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(caches.status).toBe(200);
    expect(((await caches.json()) as { data: unknown[] }).data).toHaveLength(1);
  }

  // Waits until the flood's sockets are sorted as expected and the edge holds `sessions` (a loaded
  // machine may take a while to accept hundreds of connections).
  async function settled(actual: () => unknown, expected: unknown, sessions: number) {
    await vi.waitFor(
      async () => {
        expect(actual()).toEqual(expected);
        const reports = await server.edge!.collect();
        expect(reports.reduce((sum, report) => sum + report.sessions, 0)).toBe(sessions);
      },
      { timeout: 15_000, interval: 100 },
    );
  }

  async function query(): Promise<unknown[]> {
    const client = new pg.Client({ connectionString: edgeUrl });
    await client.connect();
    try {
      return (await client.query('select 42 as answer')).rows;
    } finally {
      await client.end();
    }
  }

  it('refuses what is over the caps with 53300, keeps both planes serving, and closes the rest at the login deadline', async () => {
    // One address floods: it gets its share, the rest is refused.
    const fromOne = await flood(server.edge!.port, 500, '127.0.0.3');
    flooders.push(...fromOne);
    await settled(() => tally(fromOne), { refused: 400, held: PER_ADDRESS, other: 0 }, PER_ADDRESS);
    await controlPlaneAnswers();
    // A client from another address (pg connects from 127.0.0.1) is not affected.
    expect(await query()).toEqual([{ answer: 42 }]);

    // More addresses fill the edge: past the total, everyone is refused; the control plane is not.
    const fromMore = [
      ...(await flood(server.edge!.port, PER_ADDRESS, '127.0.0.4')),
      ...(await flood(server.edge!.port, PER_ADDRESS, '127.0.0.5')),
    ];
    flooders.push(...fromMore);
    const pastTotal = await flood(server.edge!.port, 50, '127.0.0.6');
    flooders.push(...pastTotal);
    await settled(
      () => [tally(fromMore), tally(pastTotal)],
      [
        { refused: 0, held: 2 * PER_ADDRESS, other: 0 },
        { refused: 50, held: 0, other: 0 },
      ],
      MAX_CONNECTIONS,
    );
    await expect(query()).rejects.toMatchObject({ code: '53300' });
    await controlPlaneAnswers();
    // Prometheus tells the operator: refusals by the cap reached, and the connections held.
    const scraped = await (await fetch(`${server.url}/metrics`)).text();
    expect(scraped).toContain('edgegate_edge_connections_refused_total{cap="address"} 400');
    expect(scraped).toContain('edgegate_edge_connections_refused_total{cap="total"} 51');
    expect(scraped).toContain(`edgegate_edge_client_connections ${MAX_CONNECTIONS}`);

    // The login deadline closes every half-open socket, with 08P01; then clients get in again.
    const held = [...fromOne, ...fromMore].filter((flooder) => flooder.code === undefined);
    expect(held).toHaveLength(MAX_CONNECTIONS);
    const deadline = sleep((LOGIN_TIMEOUT_SECONDS + 3) * 1000).then(() => 'late');
    expect(await Promise.race([Promise.all(held.map((f) => f.closed)), deadline])).not.toBe('late');
    expect(new Set(held.map((flooder) => flooder.code))).toEqual(new Set(['08P01']));
    expect(await query()).toEqual([{ answer: 42 }]);
    await controlPlaneAnswers();
  }, 60_000);
});
