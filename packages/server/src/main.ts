// Starts the control plane: config → store → migrations → HTTP listener → admin socket.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { buildApp } from './app.ts';
import { migrateToLatest, openStore, type Store } from './db/store.ts';
import { createLogger } from './logger.ts';
import { lockDataDir } from './admin/data-dir-lock.ts';
import { startAdminSocket } from './admin/socket.ts';
import { listAppliedMigrations } from './db/migrations/status.ts';

export interface RunningServer {
  app: FastifyInstance;
  store: Store;
  url: string;
  logger: Logger;
  /** Stops accepting, lets in-flight requests finish (at most `graceMs`), then closes the store. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(
  config: Config,
  options: { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const unlock = config.databaseUrl ? () => {} : lockDataDir(config.dataDir);
  let store: Store | undefined;
  try {
    store = await openStore({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      onIdleError: (error) =>
        logger.warn({ err: error }, 'an idle store connection failed; it will be replaced'),
    });
    await migrateToLatest(store.db);
    const migrations = await listAppliedMigrations(store.db);
    const app = await buildApp({ config, store, logger });
    await app.listen({ port: config.port, host: config.host });
    // With Postgres the CLI reaches the store itself; the socket serves the embedded store only.
    const admin = config.databaseUrl
      ? undefined
      : await startAdminSocket(config.dataDir, store.db, logger, { migrations });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    logger.info(
      { url, publicUrl: config.publicUrl, store: store.kind, secret: config.secretSource },
      `Edgegate control plane listening on ${url}`,
    );
    const opened = store;
    let closing: Promise<void> | undefined;
    return {
      app,
      store: opened,
      url,
      logger,
      close(graceMs = 10_000) {
        closing ??= (async () => {
          const deadline = setTimeout(() => app.server.closeAllConnections(), graceMs);
          // Keep-alive sockets that finish a request while we wait become idle; close them then.
          const sweeper = setInterval(() => app.server.closeIdleConnections(), 100);
          try {
            await Promise.all([app.close(), admin?.close()]);
          } finally {
            clearTimeout(deadline);
            clearInterval(sweeper);
            await opened.close();
            unlock();
          }
        })();
        return closing;
      },
    };
  } catch (error) {
    await store?.close();
    unlock();
    throw error;
  }
}
