// Edgegate's control plane on a chosen store, with a user, a workspace, a confidential app and a
// consented grant; answers requests for fresh authorization codes (minted through the engine).
import { createHash, randomBytes } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { buildApp } from '../../packages/server/src/app.ts';
import { migrateToLatest, openStore } from '../../packages/server/src/db/store.ts';
import { signUp } from '../../packages/server/src/services/accounts.ts';
import { createApp } from '../../packages/server/src/services/oauth-apps.ts';
import { bindGrantToWorkspace } from '../../packages/server/src/services/grants.ts';
import { freePort } from '../../packages/server/test/helpers/listening-app.ts';

const { databaseUrl } = workerData as { databaseUrl?: string };
const store = await openStore({ databaseUrl, dataDir: 'memory://' });
await migrateToLatest(store.db);
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const app = await buildApp({
  config: { publicUrl: url, secret: 'bench-secret-bench-secret-bench-secret-0123' },
  store,
  logger: pino({ level: 'silent' }),
});
await app.listen({ port, host: '127.0.0.1' });

const { user, personalWorkspace } = await signUp(store.db, {
  email: 'bench@example.com',
  password: 'bench password 1',
});
const redirectUri = 'https://partner.example/callback';
const created = await createApp(
  store.db,
  user.id,
  { kind: 'user', userId: user.id },
  {
    name: 'Bench Partner',
    redirectUris: [redirectUri],
    scopes: ['caches:read', 'metrics:read'],
  },
);
const { provider, resource } = app.oauth;
const grant = new provider.Grant({ accountId: user.id, clientId: created.clientId });
grant.addResourceScope(resource, 'caches:read metrics:read');
const grantId = await grant.save();
await bindGrantToWorkspace(store.db, grantId, personalWorkspace.id);
const client = await provider.Client.find(created.clientId);

async function mintCode() {
  const verifier = randomBytes(32).toString('base64url');
  const code = new provider.AuthorizationCode({
    accountId: user.id,
    client: client!,
    gty: 'authorization_code',
    codeChallenge: createHash('sha256').update(verifier).digest('base64url'),
    codeChallengeMethod: 'S256',
    grantId,
    redirectUri,
    resource,
    scope: 'caches:read metrics:read',
    authTime: Math.floor(Date.now() / 1000),
  });
  return { code: await code.save(), verifier };
}

parentPort!.postMessage({ url });
parentPort!.on('message', async (message: { stop?: boolean; mintCodes?: number }) => {
  if (message.stop) {
    await app.close();
    await store.close();
    process.exit(0);
  }
  if (message.mintCodes) {
    const codes = [];
    for (let i = 0; i < message.mintCodes; i++) codes.push(await mintCode());
    parentPort!.postMessage({
      codes,
      clientId: created.clientId,
      clientSecret: created.clientSecret,
      redirectUri,
    });
  }
});
