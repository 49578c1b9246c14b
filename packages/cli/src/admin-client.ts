// Runs an operator command through a running server's admin socket, or directly on the store.
import { request } from 'node:http';
import { existsSync, rmSync } from 'node:fs';
import {
  adminSocketPath,
  DataDirBusyError,
  lockDataDir,
  migrateToLatest,
  openStore,
  type Config,
  type Db,
} from '@edgegate/server';
import { CliError } from './cli-error.ts';

interface SocketReply {
  status: number;
  body: unknown;
}

function callSocket(
  path: string,
  method: string,
  url: string,
  body?: unknown,
): Promise<SocketReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: path,
        method,
        path: url,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
          : {},
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
          } catch {
            reject(
              new CliError(
                `the admin socket answered something that is not JSON: ${text.slice(0, 200)}`,
              ),
            );
          }
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new CliError('the running server did not answer within 30 s')),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface AdminOperation<T> {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  /** Bring the store's schema up to date before `direct` (not for a command that reports it). */
  migrate?: boolean;
  direct(db: Db): Promise<T>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * With Postgres the CLI talks to the store itself. With the embedded store only one process may
 * open it, so a running server (its admin socket answers) does the work; otherwise the CLI takes
 * the data directory's lock and opens the store itself.
 */
export async function runAdmin<T>(
  config: Config,
  op: AdminOperation<T>,
): Promise<{ result: T; via: 'socket' | 'store' }> {
  if (config.databaseUrl) return { result: await direct(config, op), via: 'store' };
  const socket = adminSocketPath(config.dataDir);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (existsSync(socket)) {
      try {
        const reply = await callSocket(socket, op.method, op.path, op.body);
        if (reply.status >= 400) throw new CliError(problemDetail(reply.body));
        return { result: reply.body as T, via: 'socket' };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ECONNREFUSED' && code !== 'ENOENT') throw error;
      }
    }
    try {
      const unlock = lockDataDir(config.dataDir);
      try {
        rmSync(socket, { force: true });
        return { result: await direct(config, op), via: 'store' };
      } finally {
        unlock();
      }
    } catch (error) {
      // A server holds the store but its socket is not up yet: it is starting; wait for it.
      if (!(error instanceof DataDirBusyError) || Date.now() > deadline) throw error;
      await sleep(250);
    }
  }
}

/**
 * A command only the running process can answer (its edge's sessions): through its admin socket,
 * or a clear error naming where the CLI looked.
 */
export async function callRunningServer<T>(
  config: Config,
  method: 'GET' | 'DELETE',
  path: string,
): Promise<T> {
  const socket = adminSocketPath(config.dataDir);
  const absent = new CliError(
    `no running Edgegate process answers on ${socket}: run this on the machine of the \`edgegate start\` or \`edgegate edge\` process, with its DATA_DIR (--data-dir)`,
  );
  if (!existsSync(socket)) throw absent;
  let reply: SocketReply;
  try {
    reply = await callSocket(socket, method, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT') throw absent;
    throw error;
  }
  if (reply.status >= 400) throw new CliError(problemDetail(reply.body));
  return reply.body as T;
}

async function direct<T>(config: Config, op: AdminOperation<T>): Promise<T> {
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (op.migrate !== false) await migrateToLatest(store.db);
    return await op.direct(store.db);
  } finally {
    await store.close();
  }
}

function problemDetail(body: unknown): string {
  const problem = body as { detail?: string; title?: string } | undefined;
  return problem?.detail ?? problem?.title ?? 'the running server refused the command';
}
