// `npm test`'s first step (scripts/test-prerequisites.mjs), run for real: on this machine everything
// is there; pointed at ports where nothing listens, it names each missing service with its fix and
// fails before any test runs.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '../scripts/test-prerequisites.mjs');
const run = promisify(execFile);

async function prerequisites(env: Record<string, string>) {
  try {
    const { stderr } = await run(process.execPath, [SCRIPT], {
      env: { ...process.env, EDGEGATE_PREREQUISITES: 'check', ...env },
      timeout: 120_000,
    });
    return { code: 0, stderr };
  } catch (error) {
    const e = error as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

/** A port nothing listens on: taken from the kernel, then released. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('test prerequisites', { timeout: 180_000 }, () => {
  it('passes on a machine that has every service and tool', async () => {
    const result = await prerequisites({});
    expect(result.stderr).toContain('are ready');
    expect(result.code).toBe(0);
  });

  it('stops with one message and fix per service that does not answer', async () => {
    const [postgres, mariadb, redis] = [await deadPort(), await deadPort(), await deadPort()];
    const result = await prerequisites({
      EDGEGATE_TEST_POSTGRES_PORT: String(postgres),
      EDGEGATE_TEST_MARIADB_PORT: String(mariadb),
      EDGEGATE_TEST_REDIS_PORT: String(redis),
    });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^test prerequisites: PostgreSQL on 127\\.0\\.0\\.1:${postgres} does not answer; fix: .*pg_ctlcluster`,
        ),
      ),
      expect.stringMatching(
        new RegExp(
          `^test prerequisites: MariaDB on 127\\.0\\.0\\.1:${mariadb} does not answer; fix: .*mariadbd`,
        ),
      ),
      expect.stringMatching(
        new RegExp(
          `^test prerequisites: Redis on 127\\.0\\.0\\.1:${redis} does not answer; fix: .*redis-server .*--port ${redis}`,
        ),
      ),
      expect.stringMatching(/^test prerequisites: 3 missing: the tests need them/),
    ]);
  });

  it('a port that answers but is not the service counts as down', async () => {
    // A listener that is not MariaDB: the port answers, the server check fails, one message.
    const impostor = createServer((socket) => socket.end());
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
    const { port } = impostor.address() as { port: number };
    try {
      const result = await prerequisites({ EDGEGATE_TEST_MARIADB_PORT: String(port) });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`MariaDB on 127.0.0.1:${port} does not answer`);
      expect(result.stderr).toContain('1 missing');
    } finally {
      await new Promise((r) => impostor.close(r));
    }
  });

  it('finds PyMySQL in the system Python when `python3` on PATH is another interpreter', async () => {
    // CI's machine has a pyenv shim first on PATH: apt's python3-pymysql is in /usr/bin/python3
    // only. A `python3` that cannot import anything stands in for the shim.
    const shims = await mkdtemp(join(tmpdir(), 'edgegate-python-shim-'));
    try {
      await writeFile(join(shims, 'python3'), '#!/bin/sh\necho "no module" >&2\nexit 1\n');
      await chmod(join(shims, 'python3'), 0o755);
      const result = await prerequisites({ PATH: `${shims}:${process.env.PATH ?? ''}` });
      expect(result.stderr).toContain('are ready');
      expect(result.code).toBe(0);
    } finally {
      await rm(shims, { recursive: true, force: true });
    }
  });
});
