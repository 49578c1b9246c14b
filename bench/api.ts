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

console.error('baseline: bare Fastify route …');
const bare = await startWorker(new URL('./support/bare-server.ts', import.meta.url), {});
const bareResult = await runLoad(
  'bare Fastify GET /hello',
  bare.url,
  readingCpuOf(bare, options),
  async (pool) => ok(await pool.request({ path: '/hello', method: 'GET' })),
);
await bare.stop();

const rows: (LoadResult & { ratio?: number; baseline?: string })[] = [bareResult];
const vsBare = (r: LoadResult) => ({ ...r, ratio: r.rps / bareResult.rps, baseline: 'bare route' });

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
    rows.push(
      vsBare(
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
      ),
    );
    if (process.env.BENCH_ONLY !== 'single')
      rows.push(
        vsBare(
          await runLoad(
            `${name}: GET /v1/caches?limit=50`,
            server.url,
            readingCpuOf(server, options),
            async (pool) =>
              ok(await pool.request({ path: '/v1/caches?limit=50', method: 'GET', headers })),
          ),
        ),
      );
    await server.stop();
  }
} finally {
  await pg.drop();
}

console.log(
  `\nbench:api — ${CONCURRENCY} concurrent clients, ${SECONDS} s per row, loopback, one server core (worker thread)\n`,
);
printTable(rows);
console.log('\nTarget on Postgres: GET /v1/caches/{id} ≥ 0.25× the bare route.');
