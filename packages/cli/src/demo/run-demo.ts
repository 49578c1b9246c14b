// `edgegate demo`: the sample origin, then the demo's user, app and cache through the admin socket
// of the server that owns the embedded store (the running one, or one started here).
import { existsSync } from 'node:fs';
import { adminSocketPath, startServer, type Config, type Demo } from '@edgegate/server';
import { runAdmin } from '../admin-client.ts';
import { CliError } from '../cli-error.ts';
import { startDemoOrigin } from './demo-origin.ts';

export async function runDemo(
  config: Config,
  options: { json: boolean; originPort: number },
): Promise<void> {
  if (config.databaseUrl)
    throw new CliError(
      'the demo runs on the embedded store: unset DATABASE_URL (--database-url) and run it next to `npm start`',
    );
  const origin = await startDemoOrigin(options.originPort);
  const running = existsSync(adminSocketPath(config.dataDir));
  const server = running ? undefined : await startServer(config, { planes: 'all' });
  const consoleUrl = config.publicUrl;
  let demo: Demo;
  try {
    ({ result: demo } = await runAdmin<Demo>(config, {
      method: 'POST',
      path: '/demo',
      body: { originPort: origin.port },
      direct: () => {
        throw new CliError(`no server answers on ${adminSocketPath(config.dataDir)}`);
      },
    }));
  } catch (error) {
    await origin.close();
    await server?.close();
    throw error;
  }
  const { workspace: _workspace, ...shown } = demo;
  process.stdout.write(
    options.json
      ? JSON.stringify(shown) + '\n'
      : [
          `Demo ready: a sample shop database on 127.0.0.1:${origin.port} (PGlite, in memory), cached`,
          `by ${demo.cacheId}${running ? ' on the running server' : ` on a server started here (${server?.url})`}.`,
          '',
          `1. Log in at ${consoleUrl}/login as ${demo.email} with password ${demo.password}`,
          `   (the cache's page shows hits and misses: ${consoleUrl}/w/${demo.workspace}/caches/${demo.cacheId}).`,
          `2. Try the OAuth flow with the demo app: client id ${demo.clientId}, client secret ${demo.clientSecret}`,
          '   (redirect URI http://localhost:3000/callback).',
          '3. Query through the edge (run it twice: the second answer comes from the cache):',
          `   psql '${demo.connectionString}' -c 'SELECT * FROM products'`,
          '',
          'Serving until you stop it (Ctrl-C).',
        ].join('\n') + '\n',
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await origin.close();
  await server?.close(5_000);
}
