// The admin socket: a running server answers operator commands over a Unix socket in DATA_DIR,
// so `edgegate users create` works while PGlite is held by that server. Access is the file's
// permissions (0600, owner only), like the Docker or PostgreSQL sockets. A process running an edge
// also lists and ends its sessions there (`edgegate sessions`).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from '../db/store.ts';
import { registerProblemHandler } from '../plugins/problem-handler.ts';
import {
  createApp,
  createUser,
  createWorkspace,
  disableUser,
  enableUser,
  listUsers,
  listWorkspaces,
} from './commands.ts';
import {
  createApiKeyForMember,
  createServiceTokenForWorkspace,
  deleteApiKeyOfWorkspace,
  deleteServiceTokenOfWorkspace,
  listApiKeysForWorkspace,
  listServiceTokensForWorkspace,
} from './credentials.ts';
import { createCacheInWorkspace, deleteCacheOfWorkspace, listCachesOfWorkspace } from './caches.ts';
import { migrationStatus } from '../db/migrations/status.ts';
import { createDemo, type DemoDeps } from './demo.ts';
import { rotateKeys, type Keyring } from '../connect/keyring.ts';
import { Problem } from '../problem.ts';
import type { EdgeSessions } from '../services/edge-sessions.ts';

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, 'admin.sock');
}

/** Another live process answers on the socket (with Postgres, nothing else keeps two apart). */
export class AdminSocketBusyError extends Error {
  override name = 'AdminSocketBusyError';
}

function answers(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = net.connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startAdminSocket(
  dataDir: string,
  db: Db,
  logger: Logger,
  info: {
    migrations: string[];
    keyring: Keyring;
    demo: DemoDeps;
    /** The edge of this process, if it runs one. */
    edge?: EdgeSessions | null;
  },
): Promise<FastifyInstance> {
  const path = adminSocketPath(dataDir);
  // An edge on a Postgres store may run with a data directory nothing else created (its parent
  // must exist: a recursive mkdir can spin on pseudo file systems such as /proc).
  try {
    mkdirSync(dataDir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if (await answers(path)) {
    throw new AdminSocketBusyError(
      `another Edgegate process answers on ${path}: give each process on this machine its own DATA_DIR`,
    );
  }
  const app = Fastify({
    loggerInstance: logger.child({ component: 'admin-socket' }) as FastifyBaseLogger,
  });
  registerProblemHandler(app);
  app.get('/status', async () => ({ pid: process.pid, migrations: info.migrations }));
  app.get('/migrations', async () => migrationStatus(db));
  app.get('/users', async () => listUsers(db));
  app.post('/users/disable', async (request) =>
    disableUser(db, request.body as Parameters<typeof disableUser>[1]),
  );
  app.post('/users/enable', async (request) =>
    enableUser(db, request.body as Parameters<typeof enableUser>[1]),
  );
  app.get('/workspaces', async () => listWorkspaces(db));
  app.get('/apikeys', async (request) =>
    listApiKeysForWorkspace(db, request.query as { workspace: string }),
  );
  app.delete('/apikeys/:id', async (request) =>
    deleteApiKeyOfWorkspace(db, {
      workspace: (request.query as { workspace: string }).workspace,
      id: (request.params as { id: string }).id,
    }),
  );
  app.get('/service-tokens', async (request) =>
    listServiceTokensForWorkspace(db, request.query as { workspace: string }),
  );
  app.delete('/service-tokens/:id', async (request) =>
    deleteServiceTokenOfWorkspace(db, {
      workspace: (request.query as { workspace: string }).workspace,
      id: (request.params as { id: string }).id,
    }),
  );
  app.get('/caches', async (request) =>
    listCachesOfWorkspace(db, request.query as { workspace: string }),
  );
  app.post('/caches', async (request, reply) =>
    reply
      .code(201)
      .send(
        await createCacheInWorkspace(
          db,
          request.body as Parameters<typeof createCacheInWorkspace>[1],
          info.demo.originPolicy,
        ),
      ),
  );
  app.delete('/caches/:id', async (request) =>
    deleteCacheOfWorkspace(db, {
      workspace: (request.query as { workspace: string }).workspace,
      id: (request.params as { id: string }).id,
    }),
  );
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
  app.post('/apikeys', async (request, reply) =>
    reply
      .code(201)
      .send(
        await createApiKeyForMember(
          db,
          request.body as Parameters<typeof createApiKeyForMember>[1],
        ),
      ),
  );
  app.post('/service-tokens', async (request, reply) =>
    reply
      .code(201)
      .send(
        await createServiceTokenForWorkspace(
          db,
          request.body as Parameters<typeof createServiceTokenForWorkspace>[1],
        ),
      ),
  );
  app.post('/demo', async (request, reply) =>
    reply
      .code(201)
      .send(await createDemo(db, request.body as Parameters<typeof createDemo>[1], info.demo)),
  );
  const edge = (): EdgeSessions => {
    if (!info.edge) throw new Problem('sessions.no_edge', 404, 'This server runs no edge.');
    return info.edge;
  };
  app.get('/sessions', async (request) => {
    const cache = (request.query as { cache?: string }).cache;
    const all = await edge().sessions();
    return cache ? all.filter((session) => session.cacheId === cache) : all;
  });
  app.delete('/sessions/:id', async (request) => {
    const id = (request.params as { id: string }).id;
    if (!(await edge().kill(id)))
      throw new Problem('session.not_found', 404, `No open session ${id} on this edge.`);
    return { id, ended: true };
  });
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
