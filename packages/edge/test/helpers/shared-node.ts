// Edge nodes that share results through a real Redis, for tests: each node is a real edge (the
// Postgres and MySQL listeners on one runtime) with its own local store and epochs, as separate
// edge processes have. Writes bump the versions in Redis as the invalidation bus does: HINCRBY of
// each written table's field (or `*`) in the cache's version hash, before the writer's answer.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Redis } from 'ioredis';
import {
  SharedResults,
  type EdgeConfigSource,
  type EdgeLogger,
  type InvalidationBus,
  type SharedResultsSettings,
} from '../../src/index.ts';
import { versionsKey } from '../../src/cluster/shared-results.ts';
import { openPgEdge } from '../../src/threads/start.ts';

const silent: EdgeLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

// The bus's version bump, as one script: every field of the write, or `*` for "every table".
const BUMP = `for i = 1, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end return 1`;

export class VersionBus implements InvalidationBus {
  serving = true;
  readonly #redis: Redis;

  constructor(redis: Redis) {
    this.#redis = redis;
  }

  /** While set, a publish waits for it before bumping (a slow Redis, as far as writers see). */
  gate: Promise<void> | null = null;
  /** Publishes called so far. */
  published = 0;

  async publish(cacheId: string, tables: readonly string[] | 'all'): Promise<void> {
    this.published += 1;
    if (this.gate !== null) await this.gate;
    await bumpVersions(this.#redis, cacheId, tables);
  }
}

export async function bumpVersions(
  redis: Redis,
  cacheId: string,
  tables: readonly string[] | 'all',
): Promise<void> {
  const fields = tables === 'all' ? ['*'] : [...tables];
  await redis.eval(BUMP, 1, versionsKey(cacheId), ...fields);
}

export interface SharedNode {
  pgPort: number;
  mysqlPort: number;
  shared: SharedResults;
  bus: VersionBus;
  runtime: Awaited<ReturnType<typeof openPgEdge>>['runtime'];
  close(): Promise<void>;
}

/** A fresh edge node: empty local store, its own Redis client for the second level. */
export async function startSharedNode(options: {
  source: EdgeConfigSource;
  redis: Redis;
  shared: SharedResultsSettings;
  /** Wait for the second level's client to connect (default true). */
  connected?: boolean;
}): Promise<SharedNode> {
  const shared = (await SharedResults.open(options.shared)) as SharedResults;
  if (options.connected !== false) await shared.ready();
  const bus = new VersionBus(options.redis);
  const edge = await openPgEdge(
    {
      source: options.source,
      cacheMaxBytes: 16 * 1024 * 1024,
      guard: null,
      logger: silent,
      bus,
      sharedResults: shared,
    },
    { host: '127.0.0.1', port: 0, mysqlPort: 0, tls: null },
  );
  return {
    pgPort: edge.port,
    mysqlPort: edge.mysqlPort as number,
    shared,
    bus,
    runtime: edge.runtime,
    close: () => edge.close(),
  };
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A Redis of the test's own (to pause or stop), on a free port, without persistence. */
export async function startThrowawayRedis(): Promise<{ port: number; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => undefined);
  for (let attempt = 0; ; attempt++) {
    try {
      await probe.connect();
      break;
    } catch (error) {
      if (attempt === 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  probe.disconnect();
  return { port, process: child };
}

/** Waits until `check` holds (polling), or fails after `ms`. */
export async function until(check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
