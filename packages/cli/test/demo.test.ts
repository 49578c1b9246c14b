// `edgegate demo` as a new partner runs it: a real process that starts its own server, a sample
// origin served from PGlite over the Postgres protocol, and `pg` and `psql` through the edge.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
const run = promisify(execFile);

interface DemoOutput {
  email: string;
  password: string;
  clientId: string;
  clientSecret: string;
  cacheId: string;
  connectionString: string;
}

/** Starts `edgegate demo --json` and resolves with its JSON line and the server's URL. */
function startDemo(dataDir: string): { child: ChildProcess; ready: Promise<[DemoOutput, string]> } {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'demo',
      '--json',
      '--data-dir',
      dataDir,
      '--port',
      '0',
      '--edge-pg-port',
      '0',
      '--edge-mysql-port',
      '0',
    ],
    { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  let errors = '';
  const ready = new Promise<[DemoOutput, string]>((resolveReady, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = /"url":"(http:\/\/[^"]+)"/.exec(output)?.[1];
      const line = output.split('\n').find((l) => l.startsWith('{"email"'));
      if (url && line) resolveReady([JSON.parse(line) as DemoOutput, url]);
    });
    child.on('exit', (code) => reject(new Error(`demo exited (${code}): ${output}${errors}`)));
  });
  return { child, ready };
}

describe('edgegate demo', { timeout: 240_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'eg-demo-'));
  const demo = startDemo(dataDir);
  const clients: pg.Client[] = [];

  afterAll(async () => {
    for (const client of clients) await client.end().catch(() => {});
    if (demo.child.exitCode === null) {
      demo.child.kill('SIGTERM');
      await new Promise((r) => demo.child.once('exit', r));
    }
  });

  it('prints the six fields, and its edge string reaches the sample rows, then from the cache', async () => {
    const [shown, url] = await demo.ready;
    expect(Object.keys(shown).sort()).toEqual(
      ['cacheId', 'clientId', 'clientSecret', 'connectionString', 'email', 'password'].sort(),
    );
    expect(shown.cacheId).toMatch(/^cch_/);
    expect(shown.clientId).toMatch(/^egc_/);
    expect(shown.clientSecret).toMatch(/^egcs_/);

    const client = new pg.Client({ connectionString: shown.connectionString });
    clients.push(client);
    await client.connect();
    const sql = 'SELECT id, name FROM products WHERE price_cents < $1 ORDER BY id';
    const first = await client.query(sql, [3000]);
    expect(first.rows).toEqual([
      { id: 1, name: 'Espresso cup' },
      { id: 4, name: 'Coffee scale' },
      { id: 5, name: 'Paper filters (100)' },
    ]);
    expect((await client.query(sql, [3000])).rows).toEqual(first.rows);

    const { stdout } = await run(
      'psql',
      [shown.connectionString, '-XAtc', 'SELECT count(*) FROM orders'],
      { timeout: 60_000 },
    );
    expect(stdout.trim()).toBe('4');

    const metrics = await (await fetch(`${url}/metrics`)).text();
    const count = (result: string) =>
      Number(
        new RegExp(
          `edgegate_edge_queries_total\\{cache_id="${shown.cacheId}",result="${result}"\\} (\\d+)`,
        ).exec(metrics)?.[1] ?? 0,
      );
    expect(count('hit')).toBeGreaterThanOrEqual(1);
    expect(count('miss')).toBeGreaterThanOrEqual(1);

    const login = await fetch(`${url}/login`);
    expect(login.status).toBe(200);
  });

  it('a second demo next to the running one works through its admin socket', async () => {
    await demo.ready;
    const second = spawn(process.execPath, [BIN, 'demo', '--data-dir', dataDir], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    try {
      await new Promise<void>((resolveDone, reject) => {
        second.stdout.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes('Serving until you stop it')) resolveDone();
        });
        second.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
        second.on('exit', (code) => reject(new Error(`second demo exited (${code}): ${text}`)));
      });
      expect(text).toContain('on the running server');
      expect(text).toMatch(/1\. Log in at http:\/\/localhost:\d+\/login as demo-\w+@example\.com/);
      expect(text).toMatch(/client id egc_\w+, client secret egcs_\S+/);
      const edgeString = /psql '([^']+)'/.exec(text)?.[1] as string;
      const { stdout } = await run(
        'psql',
        [edgeString, '-XAtc', 'SELECT name FROM products WHERE id = 3'],
        { timeout: 60_000 },
      );
      expect(stdout.trim()).toBe('Burr grinder');
    } finally {
      second.kill('SIGTERM');
    }
  });
});
