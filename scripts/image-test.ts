// npm run image:test: builds the container image with podman and smoke-tests it the way an
// operator would run it: `start` against a Postgres store, ready, a user and a cache, a query
// through the edge with psql, then SIGTERM and a clean exit; then compose.yaml's topology (two
// control planes, two edges, one store and Redis). Bounded in time; prints each step.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const HELP = `Usage: npm run image:test [-- options]

Builds the Edgegate image (Dockerfile) with podman and smoke-tests it with host networking:
  1. base image: made with \`debootstrap --variant=minbase bookworm\` + \`podman import\` when missing
  2. image: podman build --build-arg BASE_IMAGE=<base>
  3. store and origin: two fresh databases on the machine's Postgres (dropped at the end)
  4. \`start\` in a container: waits for /readyz, runs the image's HEALTHCHECK
  5. a user and an API key with the CLI inside the container, a cache through the API
  6. psql through the edge port: the same query twice, the second a cache hit (/metrics);
     then pgbench -S for a few seconds direct and through the edge, with the container's memory
  7. SIGTERM: the container must exit with status 0 within the shutdown bound
  8. compose.yaml's topology: two \`server\` and two \`edge\` containers on a new store and Redis;
     a cache made through one control plane answers through both edges; SIGTERM to each

Options:
  --base IMAGE     base image (default localhost/debian-bookworm-min, built when missing)
  --tag IMAGE      image to build and test (default localhost/edgegate:test)
  --mirror URL     Debian mirror for debootstrap (default http://deb.debian.org/debian)
  --no-build       test the existing --tag image without building it
  --keep           leave the container and databases behind for inspection
  --skip-topology  stop after step 7
  --help           this text

Environment:
  TEST_POSTGRES_URL           admin URL of the Postgres (default postgres://postgres@127.0.0.1:5432/postgres)
  TEST_REDIS_URL              Redis of the topology (default redis://127.0.0.1:6379)
  IMAGE_TEST_TIMEOUT_SECONDS  the whole run's bound (default 1200)
  NODE_EXTRA_CA_CERTS         a CA bundle passed to the build as the npm_ca secret (TLS-inspecting proxies)

Runs as root with podman, runc and debootstrap installed (apt-get install podman runc debootstrap).
Not part of CI: a cold build takes minutes.`;

const { values: options } = parseArgs({
  options: {
    base: { type: 'string', default: 'localhost/debian-bookworm-min' },
    tag: { type: 'string', default: 'localhost/edgegate:test' },
    mirror: { type: 'string', default: 'http://deb.debian.org/debian' },
    'no-build': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'skip-topology': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (options.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}

const ROOT = resolve(import.meta.dirname, '..');
const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const TIMEOUT_S = Number(process.env.IMAGE_TEST_TIMEOUT_SECONDS ?? 1200);
// This machine's hybrid cgroups need runc (crun refuses them) and limits it may not raise.
const PODMAN = ['--runtime', '/usr/sbin/runc'];
const LIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
const SHUTDOWN_BOUND_S = 20;
const LOAD_SECONDS = 5;

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s`;
const step = (message: string) => process.stdout.write(`[${elapsed()}] ${message}\n`);

const cleanups: (() => void)[] = [];
function cleanUp() {
  for (const cleanup of cleanups.reverse()) {
    try {
      cleanup();
    } catch (error) {
      console.error(`cleanup: ${(error as Error).message}`);
    }
  }
  cleanups.length = 0;
}

setTimeout(() => {
  console.error(`image:test: not done within ${TIMEOUT_S} s; stopping`);
  cleanUp();
  process.exit(1);
}, TIMEOUT_S * 1000).unref();

/** Runs a command; rejects with its output when it fails or outlives `timeoutS`. */
function run(
  command: string,
  args: string[],
  { timeoutS = 60, input }: { timeoutS?: number; input?: string } = {},
): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: timeoutS * 1000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          const tail = `${stdout}${stderr}`.trim().split('\n').slice(-20).join('\n');
          reject(
            new Error(
              `${command} ${args.slice(0, 3).join(' ')} … failed: ${error.message}\n${tail}`,
            ),
          );
        } else resolvePromise(stdout);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

const podman = (args: string[], timeoutS?: number) =>
  run('podman', [...PODMAN, ...args], { timeoutS });
const psql = (url: string, sql: string) =>
  run('psql', [url, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-c', sql]);

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePromise(port));
    });
  });
}

async function waitFor(what: string, timeoutS: number, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutS * 1000;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${timeoutS} s`);
}

function requireTools(tools: string[]) {
  const missing = tools.filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  if (missing.length > 0)
    throw new Error(
      `missing ${missing.join(', ')}: apt-get install podman runc debootstrap postgresql-client`,
    );
}

async function ensureBase() {
  if (spawnSync('podman', ['image', 'exists', options.base]).status === 0) {
    step(`base image ${options.base} present`);
    return;
  }
  if (options.base !== 'localhost/debian-bookworm-min')
    throw new Error(`base image ${options.base} is missing (only the default one is built here)`);
  requireTools(['debootstrap']);
  const dir = mkdtempSync(join(tmpdir(), 'edgegate-rootfs-'));
  try {
    step(`debootstrap --variant=minbase bookworm from ${options.mirror} …`);
    await run(
      'debootstrap',
      ['--variant=minbase', 'bookworm', join(dir, 'rootfs'), options.mirror],
      {
        timeoutS: 600,
      },
    );
    step(`podman import → ${options.base}`);
    await run(
      'sh',
      ['-c', `tar -C "${join(dir, 'rootfs')}" -c . | podman import - "${options.base}"`],
      {
        timeoutS: 120,
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function buildImage() {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  const secret = ca && existsSync(ca) ? ['--secret', `id=npm_ca,src=${ca}`] : [];
  step(`podman build ${options.tag} (BASE_IMAGE=${options.base}) …`);
  await podman(
    [
      'build',
      ...LIMITS,
      '--format',
      'docker',
      '--build-arg',
      `BASE_IMAGE=${options.base}`,
      ...secret,
      '-t',
      options.tag,
      ROOT,
    ],
    600,
  );
  const size = (await podman(['image', 'inspect', '--format', '{{.Size}}', options.tag])).trim();
  step(`built ${options.tag} (${Math.round(Number(size) / 1e6)} MB)`);
}

async function api(baseUrl: string, path: string, init: RequestInit & { key: string }) {
  const response = await fetch(`${baseUrl}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${init.key}`, 'content-type': 'application/json' },
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${response.status} ${body}`);
  return JSON.parse(body) as { data: Record<string, unknown> };
}

/** A pino JSON line as its message, for the progress output. */
function logMessage(line: string): string {
  try {
    const { msg, req, res } = JSON.parse(line) as {
      msg?: string;
      req?: { method: string; url: string };
      res?: { statusCode: number };
    };
    return [msg, req && `${req.method} ${req.url}`, res && res.statusCode]
      .filter(Boolean)
      .join(' ');
  } catch {
    return line.slice(0, 160);
  }
}

/** The resident memory the container's process reports on /metrics, in MB. */
async function residentMb(baseUrl: string): Promise<number> {
  const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
  const bytes = metrics.match(/^process_resident_memory_bytes (\d+)/m);
  if (bytes === null) throw new Error('no process_resident_memory_bytes in /metrics');
  return Math.round(Number(bytes[1]) / 1e6);
}

/** pgbench -S for a few seconds, direct and through the edge: throughput and memory figures. */
async function measureLoad(baseUrl: string, edgeUrl: string, originUrl: string) {
  const idle = await residentMb(baseUrl);
  await run('pgbench', ['-i', '-s', '1', '-q', originUrl], { timeoutS: 60 });
  const tps = async (url: string) => {
    const out = await run(
      'pgbench',
      ['-S', '-n', '-T', String(LOAD_SECONDS), '-c', '4', '-j', '2', url],
      {
        timeoutS: LOAD_SECONDS + 30,
      },
    );
    return Math.round(Number(out.match(/tps = ([\d.]+)/)?.[1] ?? Number.NaN));
  };
  const direct = await tps(originUrl);
  const edge = await tps(edgeUrl);
  step(
    `pgbench -S, 4 clients, ${LOAD_SECONDS} s, cold cache: direct ${direct} tps, through the edge ${edge} tps (${(edge / direct).toFixed(2)}×); ` +
      `container RSS ${idle} MB before, ${await residentMb(baseUrl)} MB after`,
  );
}

/** Two fresh databases on the machine's Postgres: a store, and an origin with a small table. */
async function createDatabases(suffix: string) {
  const store = `eg_image_store_${suffix}`;
  const origin = `eg_image_origin_${suffix}`;
  step(`store ${store} and origin ${origin} on ${new URL(ADMIN_URL).host}`);
  for (const db of [store, origin]) {
    await psql(ADMIN_URL, `CREATE DATABASE ${db}`);
    if (!options.keep)
      cleanups.push(() => {
        spawnSync('psql', [
          ADMIN_URL,
          '-X',
          '-q',
          '-c',
          `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`,
        ]);
      });
  }
  await psql(
    databaseUrl(origin),
    "CREATE TABLE products (id int PRIMARY KEY, name text); INSERT INTO products VALUES (1, 'teapot'), (2, 'kettle')",
  );
  return { storeUrl: databaseUrl(store), originUrl: databaseUrl(origin) };
}

/** Starts the image's `command` with host networking and the given settings. */
async function runContainer(name: string, command: string, env: Record<string, string>) {
  const settings = Object.entries({ HOST: '127.0.0.1', ...env }).flatMap(([k, v]) => [
    '-e',
    `${k}=${v}`,
  ]);
  const args = ['run', '--detach', '--name', name, '--network', 'host', ...LIMITS];
  await podman([...args, '--health-interval', 'disable', ...settings, options.tag, command]);
  if (!options.keep)
    cleanups.push(() => spawnSync('podman', [...PODMAN, 'rm', '--force', '--time', '0', name]));
}

async function waitUntilAnswering(container: string, url: string) {
  try {
    await waitFor(`${url} answering 200`, 90, async () => (await fetch(url)).ok);
  } catch (error) {
    process.stdout.write(await podman(['logs', container]).catch(() => ''));
    throw error;
  }
}

/** A user and an API key made with the CLI inside `container`, and a cache made through the API. */
async function createCache(container: string, apiUrl: string, originUrl: string, suffix: string) {
  const exec = (args: string[]) =>
    podman(['exec', container, 'node', '/app/packages/cli/bin/edgegate.js', ...args], 60);
  const email = `smoke-${suffix}@example.com`;
  const password = randomBytes(12).toString('hex');
  const user = JSON.parse(
    await exec(['users', 'create', '--email', email, '--password', password, '--json']),
  ) as {
    personalWorkspace: { slug: string };
  };
  const slug = user.personalWorkspace.slug;
  step(`edgegate users create (in ${container}): ${email}, workspace ${slug}`);
  const scopes = 'caches:read caches:write';
  const apiKey = JSON.parse(
    await exec([
      'apikeys',
      'create',
      '--workspace',
      slug,
      '--user',
      email,
      '--scopes',
      scopes,
      '--json',
    ]),
  ) as { key: string };
  step(`edgegate apikeys create (in ${container}): ${scopes}`);
  const origin = new URL(originUrl);
  const cache = await api(apiUrl, '/v1/caches', {
    method: 'POST',
    key: apiKey.key,
    body: JSON.stringify({
      name: 'smoke',
      type: 'postgres',
      hostname: origin.hostname,
      port: Number(origin.port || 5432),
    }),
  });
  const cacheId = String(cache.data.id);
  const converted = await api(apiUrl, '/v1/connection-strings', {
    method: 'POST',
    key: apiKey.key,
    body: JSON.stringify({ cacheId, connectionString: originUrl }),
  });
  const edgeUrl = String(converted.data.connectionString);
  step(`POST ${apiUrl}/v1/caches → ${cacheId}; connection string ${edgeUrl}`);
  return { cacheId, edgeUrl };
}

/** The same read twice through an edge: both right, the second a hit on that edge's /metrics. */
async function queryTwice(edgeUrl: string, metricsUrl: string, cacheId: string) {
  const query = 'SELECT name FROM products ORDER BY id';
  await waitFor(`the edge at ${new URL(edgeUrl).host} to know ${cacheId}`, 15, async () => {
    await psql(edgeUrl, 'SELECT 1');
    return true;
  });
  const first = (await psql(edgeUrl, query)).trim();
  const second = (await psql(edgeUrl, query)).trim();
  if (first !== 'teapot\nkettle' || second !== first)
    throw new Error(`unexpected results through the edge: ${JSON.stringify([first, second])}`);
  const metrics = await (await fetch(metricsUrl)).text();
  const hits = metrics.match(
    new RegExp(`edgegate_edge_queries_total\\{cache_id="${cacheId}",result="hit"\\} (\\d+)`),
  );
  if (hits === null || Number(hits[1]) < 1)
    throw new Error(`no cache hit on ${metricsUrl} for ${cacheId}`);
  step(
    `psql through ${new URL(edgeUrl).host}: ${first.replace('\n', ', ')} (twice); ${metricsUrl}: hits ${hits[1]}`,
  );
}

/** SIGTERM, then the container must exit with status 0 within the bound, having said so. */
async function stopContainer(container: string) {
  const signalled = Date.now();
  await podman(['kill', '--signal', 'TERM', container]);
  const status = (await podman(['wait', container], SHUTDOWN_BOUND_S)).trim();
  const took = ((Date.now() - signalled) / 1000).toFixed(1);
  const logs = await podman(['logs', container]);
  const lastLines = logs
    .trim()
    .split('\n')
    .slice(-2)
    .map((line) => `    ${logMessage(line)}`);
  if (status !== '0')
    throw new Error(`${container}: exit status ${status} after SIGTERM\n${lastLines.join('\n')}`);
  if (!logs.includes('SIGTERM received'))
    throw new Error(`${container}: no "SIGTERM received" line in the logs`);
  step(
    `SIGTERM ${container}: exited with status 0 after ${took} s; last log lines:\n${lastLines.join('\n')}`,
  );
}

/** `start`: the control plane and the edge in one container. */
async function smokeTest() {
  const suffix = randomBytes(4).toString('hex');
  const { storeUrl, originUrl } = await createDatabases(suffix);
  const container = `edgegate-image-test-${suffix}`;
  const [port, edgePort] = [await freePort(), await freePort()];
  step(`podman run ${options.tag} start (host network, PORT=${port}, EDGE_PG_PORT=${edgePort})`);
  await runContainer(container, 'start', {
    DATABASE_URL: storeUrl,
    EDGEGATE_SECRET: randomBytes(36).toString('base64'),
    PORT: String(port),
    EDGE_PG_PORT: String(edgePort),
    EDGE_HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntilAnswering(container, `${baseUrl}/readyz`);
  step(`/readyz: ${await (await fetch(`${baseUrl}/readyz`)).text()}`);
  await podman(['healthcheck', 'run', container], 30);
  step("HEALTHCHECK (the image's own command): healthy");
  const { cacheId, edgeUrl } = await createCache(container, baseUrl, originUrl, suffix);
  await queryTwice(edgeUrl, `${baseUrl}/metrics`, cacheId);
  await measureLoad(baseUrl, edgeUrl, originUrl);
  await stopContainer(container);
}

/**
 * compose.yaml's topology with host networking: two `server` and two `edge` containers on one store
 * and the machine's Redis; a cache made on one control plane is served by both edges.
 */
async function topologyTest() {
  const suffix = randomBytes(4).toString('hex');
  const { storeUrl, originUrl } = await createDatabases(suffix);
  const shared = {
    DATABASE_URL: storeUrl,
    REDIS_URL: REDIS_URL,
    EDGEGATE_SECRET: randomBytes(36).toString('base64'),
    EDGE_HOST: '127.0.0.1',
  };
  const planes = [];
  for (const [kind, index] of [
    ['server', 1],
    ['server', 2],
    ['edge', 1],
    ['edge', 2],
  ] as const) {
    const [port, edgePort, mysqlPort] = [await freePort(), await freePort(), await freePort()];
    planes.push({
      kind,
      name: `edgegate-image-test-${suffix}-${kind}-${index}`,
      port,
      edgePort,
      mysqlPort,
    });
  }
  const [cp1, cp2, edge1, edge2] = planes as [
    (typeof planes)[0],
    (typeof planes)[0],
    (typeof planes)[0],
    (typeof planes)[0],
  ];
  // The control planes hand out edge 1's port; edge 2 is reached by the same string on its own port.
  for (const plane of planes) {
    await runContainer(plane.name, plane.kind, {
      ...shared,
      PORT: String(plane.port),
      EDGE_PG_PORT: String(plane.kind === 'edge' ? plane.edgePort : edge1.edgePort),
      // Host networking: each edge listens on its own MySQL port too.
      EDGE_MYSQL_PORT: String(plane.kind === 'edge' ? plane.mysqlPort : edge1.mysqlPort),
      PUBLIC_URL: `http://127.0.0.1:${plane.port}`,
    });
  }
  step(
    `topology: server on :${cp1.port} and :${cp2.port}, edge on :${edge1.edgePort} and :${edge2.edgePort} ` +
      `(status :${edge1.port}, :${edge2.port}), one store, Redis ${REDIS_URL}`,
  );
  for (const plane of planes)
    await waitUntilAnswering(
      plane.name,
      `http://127.0.0.1:${plane.port}/${plane.kind === 'server' ? 'readyz' : 'healthz'}`,
    );
  step('topology: both control planes ready (/readyz), both edges live (/healthz)');
  // The user is made through control plane 1, the cache through control plane 2's API.
  const { cacheId, edgeUrl } = await createCache(
    cp1.name,
    `http://127.0.0.1:${cp2.port}`,
    originUrl,
    suffix,
  );
  await queryTwice(edgeUrl, `http://127.0.0.1:${edge1.port}/metrics`, cacheId);
  const secondEdge = new URL(edgeUrl);
  secondEdge.port = String(edge2.edgePort);
  await queryTwice(secondEdge.toString(), `http://127.0.0.1:${edge2.port}/metrics`, cacheId);
  for (const plane of planes) await stopContainer(plane.name);
}

try {
  if (process.getuid?.() !== 0)
    throw new Error('run as root (podman with host networking and runc)');
  requireTools(['podman', 'runc', 'psql', 'pgbench']);
  if (!options['no-build']) {
    await ensureBase();
    await buildImage();
  }
  await smokeTest();
  if (options['skip-topology']) step('topology: skipped (--skip-topology)');
  else await topologyTest();
  cleanUp();
  step('image:test passed');
  process.exit(0);
} catch (error) {
  console.error(`image:test FAILED: ${(error as Error).message}`);
  cleanUp();
  process.exit(1);
}
