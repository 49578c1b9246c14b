// Redis servers of a test's own, on free loopback ports, that it may stop, pause, restart or join
// into a Redis Cluster: the machine's Redis stays untouched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function waitForRedis(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      probe.disconnect();
    }
  }
}

export class ThrowawayRedis {
  readonly port: number;
  readonly dir: string;
  readonly #extra: string[];
  #process: ChildProcess | null = null;

  private constructor(port: number, dir: string, extra: string[]) {
    this.port = port;
    this.dir = dir;
    this.#extra = extra;
  }

  static async start(extra: string[] = []): Promise<ThrowawayRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'eg-redis-'));
    const redis = new ThrowawayRedis(await freePort(), dir, extra);
    await redis.#spawn();
    return redis;
  }

  /** On a port the caller chose (a node was told of it before it answered). */
  static async startOn(port: number): Promise<ThrowawayRedis> {
    const redis = new ThrowawayRedis(port, mkdtempSync(join(tmpdir(), 'eg-redis-')), []);
    await redis.#spawn();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.#process?.pid ?? 0;
  }

  /** SIGSTOP: it keeps its connections and answers nothing. */
  pause(): void {
    this.#process?.kill('SIGSTOP');
  }

  resume(): void {
    this.#process?.kill('SIGCONT');
  }

  /** Kills it (its data with it) and starts a fresh one on the same port. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  async kill(): Promise<void> {
    const child = this.#process;
    this.#process = null;
    if (child === null || child.exitCode !== null) return;
    child.kill('SIGCONT');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async #spawn(): Promise<void> {
    this.#process = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        ...this.#extra,
      ],
      { stdio: 'ignore' },
    );
    await waitForRedis(this.port);
  }
}

/** Three masters joined into a Redis Cluster (no replicas). */
export async function startRedisCluster(): Promise<{
  nodes: ThrowawayRedis[];
  stop(): Promise<void>;
}> {
  const nodes: ThrowawayRedis[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await ThrowawayRedis.start([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${i}.conf`,
          '--cluster-node-timeout',
          '2000',
        ]),
      );
    }
    const created = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`);
    // The cluster is usable once every node agrees all slots are covered.
    const deadline = Date.now() + 10_000;
    for (const node of nodes) {
      for (;;) {
        const info = spawnSync('redis-cli', ['-p', String(node.port), 'cluster', 'info'], {
          encoding: 'utf8',
        });
        if (info.stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline)
          throw new Error(`the cluster did not become ready: ${info.stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()));
    throw error;
  }
  return { nodes, stop: async () => void (await Promise.all(nodes.map((node) => node.stop()))) };
}
