// The admin socket: a running server answers operator commands over a Unix socket in DATA_DIR,
// so `edgegate users create` works while PGlite is held by that server. Access is the file's
// permissions (0600, owner only), like the Docker or PostgreSQL sockets.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from '../db/store.ts';
import { registerProblemHandler } from '../plugins/problem-handler.ts';
import { createApp, createUser, createWorkspace } from './commands.ts';
import { rotateKeys, type Keyring } from '../connect/keyring.ts';

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, 'admin.sock');
}

export async function startAdminSocket(
  dataDir: string,
  db: Db,
  logger: Logger,
  info: { migrations: string[]; keyring: Keyring },
): Promise<FastifyInstance> {
  const path = adminSocketPath(dataDir);
  const app = Fastify({
    loggerInstance: logger.child({ component: 'admin-socket' }) as FastifyBaseLogger,
  });
  registerProblemHandler(app);
  app.get('/status', async () => ({ pid: process.pid, migrations: info.migrations }));
  app.post('/users', async (request, reply) =>
    reply.code(201).send(await createUser(db, request.body as Parameters<typeof createUser>[1])),
  );
  app.post('/workspaces', async (request, reply) =>
    reply
      .code(201)
      .send(await createWorkspace(db, request.body as Parameters<typeof createWorkspace>[1])),
  );
  app.post('/keys/rotate', async () => rotateKeys(db, info.keyring, (m) => logger.info(m)));
  app.post('/apps', async (request, reply) =>
    reply.code(201).send(await createApp(db, request.body as Parameters<typeof createApp>[1])),
  );
  rmSync(path, { force: true });
  // Created owner-only from the start: no moment where another user could connect.
  const umask = process.umask(0o077);
  try {
    await app.listen({ path });
  } finally {
    process.umask(umask);
  }
  return app;
}
