// An edge node on a Postgres store needs no data directory: one it cannot use (a container's
// read-only file system, a path that cannot exist) costs the admin socket, never the node.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { createTestDatabase } from './helpers/stores.ts';

describe('an edge node whose data directory cannot be used', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let edge: RunningServer | undefined;
  const warnings: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  afterAll(async () => {
    await edge?.close();
    await database?.drop();
  });

  it('starts, answers its health checks, and says the admin socket is unavailable', async () => {
    edge = await startServer(
      loadConfig({
        DATABASE_URL: database.url,
        DATA_DIR: '/proc/edgegate-cannot-exist/data',
        PORT: '0',
        EDGE_PG_PORT: '0',
        EDGE_MYSQL_PORT: '0',
        EDGEGATE_SECRET: 'd'.repeat(48),
      }),
      {
        logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }),
        planes: 'edge',
      },
    );
    expect((await fetch(`${edge.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${edge.url}/readyz`)).status).toBe(200);
    expect(warnings.some((line) => line.includes('the admin socket in /proc/'))).toBe(true);
  });
});
