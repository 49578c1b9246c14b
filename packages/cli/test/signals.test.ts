// What an operator's signals do to real `edgegate` processes: SIGHUP reloads (the edge then serves
// new sessions with the certificate now in its files) instead of killing, and SIGTERM first makes
// /readyz answer 503 for SHUTDOWN_DELAY_SECONDS while HTTP still serves, then stops; the edge stops
// accepting at once and drains its sessions (edge-drain.test.ts).
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../server/test/helpers/stores.ts';
import { spawnEdgegate, stopEdgegate, type Edgegate } from './helpers/spawn-edgegate.ts';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** A self-signed certificate and key for `name`, as PEM text. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'pipe' },
  );
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

/** Opens a Postgres-protocol TLS session with the edge (SSLRequest, then TLS) and reads its certificate. */
async function servedCertificate(port: number): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(SSL_REQUEST);
  const answer = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
  expect(answer.toString()).toBe('S');
  const secure = tls.connect({ socket, rejectUnauthorized: false, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  const fingerprint = secure.getPeerX509Certificate()?.fingerprint256 ?? '';
  secure.destroy();
  return fingerprint;
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

describe('signals', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let running: Edgegate | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'eg-signals-'));
  const certFile = join(dir, 'edge.crt');
  const keyFile = join(dir, 'edge.key');
  let first: { cert: string; key: string };
  let second: { cert: string; key: string };

  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
    first = selfSigned(dir, 'first.edge.test');
    second = selfSigned(dir, 'second.edge.test');
  });
  afterEach(async () => {
    await stopEdgegate(running);
    running = undefined;
  });
  afterAll(async () => {
    await database?.drop();
  });

  /** Puts a certificate and key in the edge's files the way an operator's tool would: renamed in. */
  function install(pem: { cert: string; key: string }) {
    writeFileSync(`${certFile}.new`, pem.cert);
    writeFileSync(`${keyFile}.new`, pem.key);
    renameSync(`${certFile}.new`, certFile);
    renameSync(`${keyFile}.new`, keyFile);
  }

  function start(command: 'start' | 'server' | 'edge', env: Record<string, string> = {}) {
    return spawnEdgegate(
      [
        command,
        '--database-url',
        database.url,
        '--data-dir',
        mkdtempSync(join(tmpdir(), 'eg-signals-data-')),
        '--port',
        '0',
        '--edge-pg-port',
        '0',
        '--edge-mysql-port',
        '0',
        ...(command === 'server' ? [] : ['--edge-tls-cert', certFile, '--edge-tls-key', keyFile]),
      ],
      env,
    );
  }

  async function edgePort(process: Edgegate): Promise<number> {
    const line = await process.logged(/edge listening on [^"]+?:(\d+) \(Postgres\)/);
    return Number(/:(\d+) \(Postgres\)/.exec(line)?.[1]);
  }

  it.each(['edge', 'start'] as const)(
    '`edgegate %s` reloads its TLS certificate on SIGHUP: new sessions get the new one',
    async (command) => {
      install(first);
      running = start(command, { EDGE_THREADS: command === 'edge' ? '2' : '1' });
      const base = await running.url;
      const port = await edgePort(running);
      expect(await servedCertificate(port)).toBe(fingerprintOf(first.cert));

      install(second);
      const from = running.output().length;
      running.child.kill('SIGHUP');
      const line = await running.logged(/"msg":"reloaded: [^"]*/, from);
      expect(line).toContain('edge TLS certificate reloaded');
      expect(line).toContain('second.edge.test');
      expect(await servedCertificate(port)).toBe(fingerprintOf(second.cert));
      // Still running and serving.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);

      // An unusable pair changes nothing: the previous certificate stays.
      writeFileSync(certFile, 'not a certificate');
      const again = running.output().length;
      running.child.kill('SIGHUP');
      await running.logged(/cannot be used \(.*\); new sessions keep the previous ones/, again);
      expect(await servedCertificate(port)).toBe(fingerprintOf(second.cert));
      expect(running.child.exitCode).toBeNull();
    },
    60_000,
  );

  it('`edgegate server` survives SIGHUP and says what it reloaded', async () => {
    running = start('server');
    const base = await running.url;
    running.child.kill('SIGHUP');
    await running.logged(/reloaded: nothing changed/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(running.child.exitCode).toBeNull();
  }, 30_000);

  it.each(['server', 'start', 'edge'] as const)(
    '`edgegate %s` answers /readyz 503 at once after SIGTERM, serves HTTP for SHUTDOWN_DELAY_SECONDS, then stops',
    async (command) => {
      install(first);
      running = start(command, { SHUTDOWN_DELAY_SECONDS: '2' });
      const base = await running.url;
      const port = command === 'server' ? null : await edgePort(running);
      const ready = await fetch(`${base}/readyz`);
      const body = await ready.json();
      expect(ready.status, JSON.stringify(body)).toBe(200);
      expect(body.checks.store).toBe('ok');
      if (command !== 'server') expect(body.checks.changeFeed).toBe('ok');

      const signalled = Date.now();
      running.child.kill('SIGTERM');
      const line = await running.logged(/SIGTERM received: [^"]*/);
      if (command === 'edge') {
        // The pre-stop delay is the HTTP side's: the edge stops accepting at once and drains.
        expect(line).toContain(
          '/readyz answers 503 (for at least 2 s, SHUTDOWN_DELAY_SECONDS); the edge stops accepting now',
        );
        expect(line).not.toContain('HTTP requests');
      } else if (command === 'start') {
        expect(line).toContain('/readyz answers 503 for 2 s');
        expect(line).toContain('in-flight HTTP requests');
        expect(line).toContain('the edge stops accepting now');
        expect(line).toContain('(EDGE_DRAIN_SECONDS)');
      } else {
        expect(line).toContain('/readyz answers 503 for 2 s');
        expect(line).toContain('finishing in-flight requests');
        expect(line).not.toContain('edge');
      }
      const draining = await fetch(`${base}/readyz`);
      expect(draining.status).toBe(503);
      expect(draining.headers.get('content-type')).toContain('application/problem+json');
      expect((await draining.json()).checks.shutdown).toContain('draining');
      // Liveness still answers; the edge no longer takes new sessions.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      if (port !== null) await expect(servedCertificate(port)).rejects.toThrow();

      expect(await running.exited).toBe(0);
      const took = Date.now() - signalled;
      expect(took).toBeGreaterThanOrEqual(1_900);
      // The delay, then closing, which is bounded at 15 s.
      expect(took).toBeLessThan(2_000 + 15_000);
    },
    60_000,
  );

  it('`edgegate start` stops at once on SIGINT (Ctrl-C): the pre-stop delay is for load balancers', async () => {
    install(first);
    running = start('start', { SHUTDOWN_DELAY_SECONDS: '30' });
    await running.url;
    const signalled = Date.now();
    running.child.kill('SIGINT');
    const line = await running.logged(/SIGINT received: [^"]*/);
    expect(line).not.toContain('/readyz answers 503');
    expect(await running.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5_000);
  }, 30_000);
});
