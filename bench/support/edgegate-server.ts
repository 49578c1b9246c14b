// Edgegate's control plane on a chosen store, with a user, a workspace, a confidential app and a
// consented grant; answers requests for fresh authorization codes (minted through the engine).
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { buildApp } from '../../packages/server/src/app.ts';
import { migrateToLatest, openStore } from '../../packages/server/src/db/store.ts';
import { signUp } from '../../packages/server/src/services/accounts.ts';
import { accessTokenFor, consentedGrant } from '../../packages/server/test/helpers/tokens.ts';
import { insertCache } from '../../packages/server/src/db/queries/caches.ts';
import { newId } from '../../packages/server/src/services/crypto.ts';
import { freePort } from '../../packages/server/test/helpers/listening-app.ts';
import { answerCpuQueries } from './workers.ts';

const { databaseUrl } = workerData as { databaseUrl?: string };
const store = await openStore({ databaseUrl, dataDir: 'memory://' });
await migrateToLatest(store.db);
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const app = await buildApp({
  // The limiter still runs on every request; its ceiling is raised so the bench measures throughput.
  config: {
    publicUrl: url,
    secret: 'bench-secret-bench-secret-bench-secret-0123',
    apiRateLimit: 1_000_000_000,
  },
  store,
  logger: pino({ level: 'silent' }),
});
await app.listen({ port, host: '127.0.0.1' });

const { user, personalWorkspace } = await signUp(store.db, {
  email: 'bench@example.com',
  password: 'bench password 1',
});
const grant = await consentedGrant(app, store.db, {
  userId: user.id,
  workspaceId: personalWorkspace.id,
  scopes: ['caches:read', 'metrics:read'],
});

answerCpuQueries(parentPort!);
parentPort!.postMessage({ url });
parentPort!.on(
  'message',
  async (message: { stop?: boolean; mintCodes?: number; caches?: number }) => {
    if (message.caches) {
      const ids = [];
      for (let i = 0; i < message.caches; i++) {
        const cache = await insertCache(store.db, {
          id: newId('cch'),
          workspaceId: personalWorkspace.id,
          name: `Bench cache ${i}`,
          description: '',
          type: 'postgres',
          hostname: 'db.example.com',
          port: 5432,
          defaultMode: 'auto',
          defaultTtlSeconds: 60,
          originTls: 'prefer',
        });
        ids.push(cache.id);
      }
      const { access_token } = await accessTokenFor(app, grant);
      parentPort!.postMessage({ cacheIds: ids, accessToken: access_token });
      return;
    }
    if (message.stop) {
      await app.close();
      await store.close();
      process.exit(0);
    }
    if (message.mintCodes) {
      const codes = [];
      for (let i = 0; i < message.mintCodes; i++) codes.push(await grant.mintCode());
      parentPort!.postMessage({
        codes,
        clientId: grant.clientId,
        clientSecret: grant.clientSecret,
        redirectUri: grant.redirectUri,
      });
    }
  },
);
