// npm run bench:edge:replication (also run by npm run bench:edge): what following the origin's
// change stream costs and gives. A throwaway Postgres (wal_level=logical) and an Edgegate (both
// planes, embedded store) in this process; two caches on the same origin, one in `edge` mode and
// one in `replication` mode. While a direct writer inserts 1,000 rows/s into another table (which
// the replication cache's follower must read and decode), pgbench hammers the same cached point
// reads through each cache, alternated; then direct writes to a cached row measure the delay from
// the write's return to the first fresh read through the edge.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../packages/server/src/config.ts';
import { startServer } from '../packages/server/src/main.ts';
import { signUp } from '../packages/server/src/services/accounts.ts';
import { accessTokenFor, consentedGrant } from '../packages/server/test/helpers/tokens.ts';
import { freePort } from '../packages/server/test/helpers/listening-app.ts';
import { startThrowawayCluster } from '../packages/edge/test/helpers/throwaway-cluster.ts';

const { values: flags } = parseArgs({
  options: {
    help: { type: 'boolean', short: 'h' },
    seconds: { type: 'string', default: process.env.BENCH_SECONDS ?? '6' },
    rounds: { type: 'string', default: '4' },
    clients: { type: 'string', default: process.env.BENCH_CLIENTS ?? '8' },
    'write-rate': { type: 'string', default: '1000' },
    samples: { type: 'string', default: '200' },
  },
});
if (flags.help === true) {
  console.log(`Usage: npm run bench:edge:replication [-- options]

  --seconds N      each throughput phase (default 6, or BENCH_SECONDS)
  --rounds N       edge-mode / replication phases, alternated (default 4)
  --clients N      pgbench clients (default 8, or BENCH_CLIENTS)
  --write-rate N   rows per second written straight to the origin meanwhile (default 1000)
  --samples N      direct writes timed to a fresh read through the edge (default 200)

Needs: pgbench, initdb/pg_ctl of the machine's Postgres. Prints a table of ratios measured in
this run; the absolute numbers depend on the machine and its load.`);
  process.exit(0);
}
const SECONDS = Number(flags.seconds);
const ROUNDS = Number(flags.rounds);
const CLIENTS = Number(flags.clients);
const WRITE_RATE = Number(flags['write-rate']);
const SAMPLES = Number(flags.samples);
const KEYS = 1000;

function run(file: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file}: ${stderr || error.message}`)) : resolve(stdout),
    );
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

console.error('starting a throwaway Postgres (wal_level=logical) …');
const cluster = await startThrowawayCluster({ walLevel: 'logical' });
const superuser = () =>
  new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cluster.superuser,
    password: cluster.password('postgres'),
    database: cluster.database,
  });
const admin = superuser();
await admin.connect();
await admin.query(`CREATE ROLE bench_replicator LOGIN REPLICATION PASSWORD 'bench-replicator'`);
await admin.query('CREATE TABLE bench_items (id int PRIMARY KEY, v text NOT NULL)');
await admin.query(
  `INSERT INTO bench_items SELECT g, md5(g::text) FROM generate_series(1, ${KEYS}) g`,
);
await admin.query('CREATE TABLE churn (id bigserial PRIMARY KEY, payload text NOT NULL)');
await admin.query(`GRANT SELECT ON bench_items TO ${cluster.users.scram}`);
await admin.query('CREATE PUBLICATION bench_pub FOR ALL TABLES');

console.error('starting Edgegate …');
const server = await startServer(
  loadConfig({
    DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-bench-repl-')),
    PORT: '0',
    EDGE_PG_PORT: String(await freePort()),
    EDGE_MYSQL_PORT: '0',
    EDGEGATE_SECRET: 'b'.repeat(48),
    LOG_LEVEL: 'silent',
  }),
  { logger: pino({ level: 'silent' }) },
);
const { user, personalWorkspace } = await signUp(server.store.db, {
  email: 'bench@example.com',
  password: 'long enough pw',
});
const grant = await consentedGrant(server.app!, server.store.db, {
  userId: user.id,
  workspaceId: personalWorkspace.id,
  scopes: ['caches:read', 'caches:write'],
});
const token = (await accessTokenFor(server.app!, grant)).access_token;
const create = async (name: string, invalidation?: object): Promise<string> => {
  const created = await server.app!.inject({
    method: 'POST',
    url: '/v1/caches',
    headers: { authorization: `Bearer ${token}` },
    payload: {
      name,
      type: 'postgres',
      hostname: '127.0.0.1',
      port: cluster.port,
      originTls: 'disable',
      defaultTtlSeconds: 3600,
      ...(invalidation ? { invalidation } : {}),
    },
  });
  if (created.statusCode !== 201) throw new Error(`creating ${name}: ${created.body}`);
  return (created.json() as { data: { id: string } }).data.id;
};
const edgeMode = await create('Bench edge mode');
const replication = await create('Bench replication', {
  mode: 'replication',
  username: 'bench_replicator',
  password: 'bench-replicator',
  database: cluster.database,
  publication: 'bench_pub',
});
for (let i = 0; ; i++) {
  const shown = await server.app!.inject({
    method: 'GET',
    url: `/v1/caches/${replication}`,
    headers: { authorization: `Bearer ${token}` },
  });
  if (
    (shown.json() as { data: { invalidation: { status: string } } }).data.invalidation.status ===
    'following'
  )
    break;
  if (i > 300) throw new Error('the follower did not start');
  await new Promise((resolve) => setTimeout(resolve, 100));
}

// The direct writer: WRITE_RATE rows/s into `churn`, in batches every 20 ms.
const writer = superuser();
await writer.connect();
let writing = true;
let written = 0;
const writerDone = (async () => {
  const perTick = Math.max(1, Math.round(WRITE_RATE / 50));
  const started = Date.now();
  let ticks = 0;
  while (writing) {
    await writer.query(
      `INSERT INTO churn (payload) SELECT md5(random()::text) FROM generate_series(1, ${perTick})`,
    );
    written += perTick;
    ticks += 1;
    const next = started + ticks * 20;
    const wait = next - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
})();

const script = join(mkdtempSync(join(tmpdir(), 'eg-bench-pgbench-')), 'read.sql');
await writeFile(script, `\\set id random(1, ${KEYS})\nSELECT v FROM bench_items WHERE id = :id;\n`);
const pgbench = async (cacheId: string) => {
  const before = server.edge!.stats(cacheId);
  await server.edge!.collect();
  const hits0 = before.hits;
  const misses0 = before.misses;
  const out = await run(
    'pgbench',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(server.edge!.port),
      '-U',
      cluster.users.scram,
      '-n',
      '-M',
      'prepared',
      '-c',
      String(CLIENTS),
      '-j',
      '2',
      '-T',
      String(SECONDS),
      '-f',
      script,
      cluster.database,
    ],
    { PGPASSWORD: cluster.password(cluster.users.scram), PGAPPNAME: cacheId },
  );
  await server.edge!.collect();
  const after = server.edge!.stats(cacheId);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
  const hits = after.hits - hits0;
  const misses = after.misses - misses0;
  return { tps, hitRatio: hits / Math.max(1, hits + misses) };
};

console.error(
  `throughput: ${ROUNDS} × (edge mode, replication) × ${SECONDS} s, ${CLIENTS} clients, ${WRITE_RATE} rows/s written directly meanwhile …`,
);
// Warm both caches first (every key read once).
await pgbench(edgeMode);
await pgbench(replication);
const results = {
  edge: [] as { tps: number; hitRatio: number }[],
  replication: [] as { tps: number; hitRatio: number }[],
};
const writtenBefore = written;
const throughputStarted = Date.now();
for (let round = 0; round < ROUNDS; round++) {
  results.edge.push(await pgbench(edgeMode));
  results.replication.push(await pgbench(replication));
}
const achievedRate = (written - writtenBefore) / ((Date.now() - throughputStarted) / 1000);
writing = false;
await writerDone;

console.error(`invalidation delay: ${SAMPLES} direct writes …`);
const reader = new pg.Client({
  host: '127.0.0.1',
  port: server.edge!.port,
  user: cluster.users.scram,
  password: cluster.password(cluster.users.scram),
  database: cluster.database,
  application_name: replication,
});
await reader.connect();
const delays: number[] = [];
let stale = 0;
for (let i = 0; i < SAMPLES; i++) {
  const id = 1 + (i % KEYS);
  const sql = `SELECT v FROM bench_items WHERE id = ${id}`;
  await reader.query(sql);
  await reader.query(sql);
  const value = `w${i}`;
  await writer.query('UPDATE bench_items SET v = $1 WHERE id = $2', [value, id]);
  const wrote = performance.now();
  for (;;) {
    const { rows } = await reader.query<{ v: string }>(sql);
    if (rows[0]?.v === value) break;
    stale += 1;
    if (performance.now() - wrote > 5000) throw new Error(`write ${i} not seen within 5 s`);
  }
  delays.push(performance.now() - wrote);
}
delays.sort((a, b) => a - b);

const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
const edgeTps = median(results.edge.map((r) => r.tps));
const replTps = median(results.replication.map((r) => r.tps));
const fmt = (n: number, digits = 0) => n.toFixed(digits);
console.log(
  `\nbench:edge:replication — ${CLIENTS} pgbench clients, ${KEYS} cached point reads, ${fmt(achievedRate)} rows/s written straight to the origin meanwhile; median of ${ROUNDS} alternated ${SECONDS} s phases; load average ${loadavg()
    .map((n) => n.toFixed(1))
    .join(' ')}\n`,
);
console.log('| path                                   | tps (median) | hit ratio | vs edge mode |');
console.log('| -------------------------------------- | -----------: | --------: | -----------: |');
const hit = (list: { hitRatio: number }[]) => median(list.map((r) => r.hitRatio));
console.log(
  `| cache in \`edge\` mode                    | ${fmt(edgeTps).padStart(12)} | ${fmt(hit(results.edge), 3).padStart(9)} |        1.00× |`,
);
console.log(
  `| cache in \`replication\` mode, following  | ${fmt(replTps).padStart(12)} | ${fmt(hit(results.replication), 3).padStart(9)} | ${(replTps / edgeTps).toFixed(2).padStart(11)}× |`,
);
console.log(
  `\nDirect write → first fresh read through the edge (${SAMPLES} writes, one reader polling): p50 ${fmt(percentile(delays, 50), 1)} ms, p99 ${fmt(percentile(delays, 99), 1)} ms, max ${fmt(delays.at(-1)!, 1)} ms (${stale} stale reads while waiting). Target: replication ≥ 0.90× edge mode.`,
);

await reader.end();
await writer.end();
await admin.end();
await server.close();
await cluster.stop();
