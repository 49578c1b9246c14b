// npm run bench:api: reading caches through the API with a bearer token, on both stores, beside a
// bare Fastify route measured in the same run.
import { createTestDatabase } from '../packages/server/test/helpers/stores.ts';
import { printTable, readingCpuOf, runLoad, type LoadResult } from './support/load.ts';
import { startWorker } from './support/workers.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const options = { concurrency: CONCURRENCY, durationMs: SECONDS * 1000, warmupMs: 1000 };

async function ok(response: {
  statusCode: number;
  body: { dump(): Promise<void> };
}): Promise<boolean> {
  await response.body.dump();
  return response.statusCode === 200;
}

async function bareBaseline(name: string) {
  console.error(`baseline: ${name} …`);
  const bare = await startWorker(new URL('./support/bare-server.ts', import.meta.url), {});
  const result = await runLoad(name, bare.url, readingCpuOf(bare, options), async (pool) =>
    ok(await pool.request({ path: '/hello', method: 'GET' })),
  );
  await bare.stop();
  return result;
}

// The baseline runs first and again last, and ratios divide by the mean of the two: what the
// machine is doing drifts over the minutes between them.
const bareFirst = await bareBaseline('bare Fastify GET /hello');
const measured: LoadResult[] = [];

const pg = await createTestDatabase();
try {
  const stores = (process.env.BENCH_STORES ?? 'pglite,postgres').split(',');
  for (const [name, databaseUrl] of [
    ['pglite', undefined],
    ['postgres', pg.url],
  ] as const) {
    if (!stores.includes(name)) continue;
    console.error(`edgegate on ${name}: 50 caches …`);
    const server = await startWorker(new URL('./support/edgegate-server.ts', import.meta.url), {
      databaseUrl,
    });
    const { cacheIds, accessToken } = await server.ask<{ cacheIds: string[]; accessToken: string }>(
      { caches: 50 },
    );
    const headers = { authorization: `Bearer ${accessToken}` };
    measured.push(
      await runLoad(
        `${name}: GET /v1/caches/{id}`,
        server.url,
        readingCpuOf(server, options),
        async (pool, worker) =>
          ok(
            await pool.request({
              path: `/v1/caches/${cacheIds[worker % cacheIds.length]}`,
              method: 'GET',
              headers,
            }),
          ),
      ),
    );
    if (process.env.BENCH_ONLY !== 'single')
      measured.push(
        await runLoad(
          `${name}: GET /v1/caches?limit=50`,
          server.url,
          readingCpuOf(server, options),
          async (pool) =>
            ok(await pool.request({ path: '/v1/caches?limit=50', method: 'GET', headers })),
        ),
      );
    await server.stop();
  }
} finally {
  await pg.drop();
}
const bareAgain = await bareBaseline('bare Fastify GET /hello (again)');
const bareRps = (bareFirst.rps + bareAgain.rps) / 2;
const rows: (LoadResult & { ratio?: number; baseline?: string })[] = [
  bareFirst,
  ...measured.map((r) => ({ ...r, ratio: r.rps / bareRps, baseline: 'bare route' })),
  bareAgain,
];

console.log(
  `\nbench:api — ${CONCURRENCY} concurrent clients, ${SECONDS} s per row, loopback, one server core (worker thread)\n`,
);
printTable(rows);
console.log('\nTarget on Postgres: GET /v1/caches/{id} ≥ 0.25× the bare route.');
console.log("Ratios divide by the mean of the bare route's two runs (first and again).");
