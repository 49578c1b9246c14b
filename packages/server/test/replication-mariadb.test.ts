// Replication invalidation with MariaDB, end to end against a real origin with a row-based binary
// log: a cache set to `replication` through the API stops serving rows that a client connected
// straight to the origin changed, within a bound, through the MySQL edge, while a cache in `edge`
// mode keeps serving them stale; missing prerequisites get a 422 saying which. On the embedded
// store, as `npm start` runs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createKeyring } from '../src/connect/keyring.ts';
import { startReplicationFollowers } from '../src/replication/followers.ts';
import { startServer, type RunningServer } from '../src/main.ts';
import { signUp } from '../src/services/accounts.ts';
import { freePort } from './helpers/listening-app.ts';
import { until } from './helpers/until.ts';
import { accessTokenFor, consentedGrant } from './helpers/tokens.ts';
import {
  startThrowawayMariadb,
  type ThrowawayMariadb,
} from '../../edge/test/helpers/throwaway-mariadb.ts';

const silent = pino({ level: 'silent' });
const BOUND_MS = 2000;
const SECRET = 'm'.repeat(48);
const REPLICATOR = 'replicator';
const REPLICATOR_PASSWORD = 'replicator-pw-1';

describe('replication invalidation from the MariaDB binary log', () => {
  let origin: ThrowawayMariadb;
  let noBinlog: ThrowawayMariadb;
  let server: RunningServer;
  let token: string;
  let followingId: string;
  let edgeModeId: string;

  const call = async (method: 'GET' | 'POST', url: string, body?: object) => {
    const response = await server.app!.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(body ? { payload: body } : {}),
    });
    return {
      status: response.statusCode,
      text: response.body,
      body: response.json() as {
        data: { id: string; invalidation: Record<string, unknown> };
        type?: string;
        detail?: string;
      },
    };
  };
  const create = (name: string, port: number, invalidation?: object) =>
    call('POST', '/v1/caches', {
      name,
      type: 'mariadb',
      hostname: '127.0.0.1',
      port,
      originTls: 'disable',
      defaultTtlSeconds: 3600,
      ...(invalidation ? { invalidation } : {}),
    });
  const replicator = { mode: 'replication', username: REPLICATOR, password: REPLICATOR_PASSWORD };

  beforeAll(async () => {
    [origin, noBinlog] = await Promise.all([
      startThrowawayMariadb({ binlog: true }),
      startThrowawayMariadb(),
    ]);
    const grant = (server: ThrowawayMariadb) =>
      server.sql(
        [
          `CREATE USER ${REPLICATOR}@'%' IDENTIFIED BY '${REPLICATOR_PASSWORD}'`,
          `GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, SHOW VIEW ON *.* TO ${REPLICATOR}@'%'`,
        ].join(';\n'),
      );
    await Promise.all([grant(origin), grant(noBinlog)]);
    await origin.sql(
      `CREATE TABLE app.tools (id int primary key, name varchar(40)); INSERT INTO app.tools VALUES (1, 'hammer')`,
    );
    // Views over two tables, and a view over that view: writes under them must reach their reads.
    await origin.sql(
      [
        'CREATE TABLE app.parts (id int primary key, name varchar(40), maker int)',
        'CREATE TABLE app.makers (id int primary key, name varchar(40))',
        `INSERT INTO app.makers VALUES (1, 'acme'), (2, 'globex')`,
        `INSERT INTO app.parts VALUES (1, 'bolt', 1), (2, 'nut', 2)`,
        'CREATE VIEW app.part_makers AS SELECT p.name AS part, m.name AS maker FROM app.parts p JOIN app.makers m ON m.id = p.maker',
        'CREATE VIEW app.loud_part_makers AS SELECT upper(part) AS part, upper(maker) AS maker FROM app.part_makers',
      ].join(';\n'),
    );

    // The embedded store (PGlite), as `npm start` runs: the Postgres test covers DATABASE_URL.
    server = await startServer(
      loadConfig({
        DATA_DIR: mkdtempSync(join(tmpdir(), 'eg-repl-my-')),
        PORT: '0',
        EDGE_PG_PORT: String(await freePort()),
        EDGE_MYSQL_PORT: String(await freePort()),
        EDGEGATE_SECRET: SECRET,
        LOG_LEVEL: 'silent',
      }),
      { logger: silent },
    );
    const { user, personalWorkspace } = await signUp(server.store.db, {
      email: 'replication-mariadb@example.com',
      password: 'long enough pw',
    });
    const consent = await consentedGrant(server.app!, server.store.db, {
      userId: user.id,
      workspaceId: personalWorkspace.id,
      scopes: ['caches:read', 'caches:write'],
    });
    token = (await accessTokenFor(server.app!, consent)).access_token;
    const following = await create('Following', origin.port, replicator);
    expect(following.status, following.text).toBe(201);
    followingId = following.body.data.id;
    const edgeMode = await create('Edge mode', origin.port);
    expect(edgeMode.status, edgeMode.text).toBe(201);
    edgeModeId = edgeMode.body.data.id;
    await until('the follower to follow', async () => {
      const got = await call('GET', `/v1/caches/${followingId}`);
      return got.body.data.invalidation.status === 'following' ? true : null;
    });
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    await Promise.all([origin?.stop(), noBinlog?.stop()]);
  });

  async function read(cacheId: string, sql: string): Promise<unknown> {
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: server.edge!.mysqlPort,
      user: `${cacheId}-${origin.users.native}`,
      password: origin.password(origin.users.native),
      database: origin.database,
    });
    try {
      const [rows] = await connection.query(sql);
      return JSON.parse(JSON.stringify(rows)) as unknown;
    } finally {
      await connection.end();
    }
  }

  async function directWrite(sql: string, write: string, fresh: unknown): Promise<number> {
    const before = await read(followingId, sql);
    expect(await read(edgeModeId, sql)).toEqual(before);
    const hits = server.edge!.stats(followingId).hits;
    expect(await read(followingId, sql)).toEqual(before);
    expect(server.edge!.stats(followingId).hits).toBe(hits + 1);
    await origin.sql(write);
    const wrote = Date.now();
    await until(`${write} to reach the cache`, async () =>
      JSON.stringify(await read(followingId, sql)) === JSON.stringify(fresh) ? true : null,
    );
    const delay = Date.now() - wrote;
    expect(await read(edgeModeId, sql)).toEqual(before);
    return delay;
  }

  it('rows updated, inserted, deleted or truncated straight on the origin are not served stale', async () => {
    const delays = {
      update: await directWrite(
        'SELECT name FROM items WHERE id = 1',
        `UPDATE app.items SET name = 'anvil 2' WHERE id = 1`,
        [{ name: 'anvil 2' }],
      ),
      insert: await directWrite(
        'SELECT count(*) AS n FROM items',
        `INSERT INTO app.items VALUES (4, 'drill')`,
        [{ n: 4 }],
      ),
      delete: await directWrite(
        'SELECT name FROM items WHERE id = 2',
        'DELETE FROM app.items WHERE id = 2',
        [],
      ),
      truncate: await directWrite('SELECT id, name FROM tools', 'TRUNCATE TABLE app.tools', []),
      transaction: await directWrite(
        'SELECT name FROM items WHERE id = 3',
        `START TRANSACTION; UPDATE app.items SET name = 'chisel 2' WHERE id = 3; DO SLEEP(0.2); COMMIT`,
        [{ name: 'chisel 2' }],
      ),
      ddl: await directWrite(
        'SELECT id FROM items WHERE id = 1',
        'ALTER TABLE app.items ADD COLUMN note varchar(10)',
        [{ id: 1 }],
      ),
    };
    console.info('direct write → fresh read through the MySQL edge (ms):', delays);
    for (const delay of Object.values(delays)) expect(delay).toBeLessThan(BOUND_MS);
  });

  it('a write to a table under a view, straight on the origin or through the edge, reaches the view (and a view over it)', async () => {
    const view = 'SELECT part, maker FROM part_makers ORDER BY part';
    const view2 = 'SELECT maker, part FROM part_makers ORDER BY part';
    const nested = 'SELECT part, maker FROM loud_part_makers ORDER BY part';
    const delays = {
      underView: await directWrite(view, `UPDATE app.parts SET name = 'screw' WHERE id = 1`, [
        { part: 'nut', maker: 'globex' },
        { part: 'screw', maker: 'acme' },
      ]),
      otherTable: await directWrite(view2, `UPDATE app.makers SET name = 'initech' WHERE id = 2`, [
        { maker: 'initech', part: 'nut' },
        { maker: 'acme', part: 'screw' },
      ]),
      underNested: await directWrite(
        nested,
        `UPDATE app.makers SET name = 'umbrella' WHERE id = 1`,
        [
          { part: 'NUT', maker: 'INITECH' },
          { part: 'SCREW', maker: 'UMBRELLA' },
        ],
      ),
    };
    console.info('direct write under a view → fresh read through the MySQL edge (ms):', delays);
    for (const delay of Object.values(delays)) expect(delay).toBeLessThan(BOUND_MS);

    // Through the edge, the view's read is stale at once: the very next read is fresh.
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: server.edge!.mysqlPort,
      user: `${followingId}-${origin.users.native}`,
      password: origin.password(origin.users.native),
      database: origin.database,
    });
    try {
      await connection.query(nested);
      const hits = server.edge!.stats(followingId).hits;
      await connection.query(nested);
      expect(server.edge!.stats(followingId).hits).toBe(hits + 1);
      await connection.query(`UPDATE makers SET name = 'hooli' WHERE id = 2`);
      const [rows] = await connection.query(nested);
      expect(JSON.parse(JSON.stringify(rows))).toEqual([
        { part: 'NUT', maker: 'HOOLI' },
        { part: 'SCREW', maker: 'UMBRELLA' },
      ]);
    } finally {
      await connection.end();
    }
  });

  it('answers 422 naming each missing prerequisite', async () => {
    const noLog = await create('No binlog', noBinlog.port, replicator);
    expect(noLog.status, noLog.text).toBe(422);
    expect(noLog.body.type).toContain('invalidation.log_bin');

    const ungranted = await create('No grants', origin.port, {
      mode: 'replication',
      username: origin.users.native,
      password: origin.password(origin.users.native),
    });
    expect(ungranted.status, ungranted.text).toBe(422);
    expect(ungranted.body.type).toContain('invalidation.replication_grants');
    expect(ungranted.body.detail).toContain('REPLICATION SLAVE');

    await origin.sql(`SET GLOBAL binlog_format = 'STATEMENT'`);
    try {
      const statement = await create('Statement log', origin.port, replicator);
      expect(statement.status, statement.text).toBe(422);
      expect(statement.body.type).toContain('invalidation.binlog_format');
      expect(statement.body.detail).toContain('binlog_format=STATEMENT');
    } finally {
      await origin.sql(`SET GLOBAL binlog_format = 'ROW'`);
    }
  });

  it('a follower restarted resumes from its stored position: a write made while it was stopped is seen', async () => {
    const seen: (readonly string[] | 'all')[] = [];
    const start = () =>
      startReplicationFollowers({
        store: server.store,
        keyring: createKeyring(SECRET),
        subscribe: () => () => undefined,
        invalidate: (id, tables) => {
          if (id === followingId) seen.push(tables);
        },
        hold: () => undefined,
        setViewTables: () => undefined,
        privateRanges: 'allow',
        logger: silent,
      });
    const saw = (table: string) =>
      seen.some((tables) => tables !== 'all' && tables.includes(table)) ? true : null;
    await server.edge!.followers.stop();
    let followers = await start();
    await until('it to follow', async () =>
      followers.states().get(followingId)?.status === 'following' ? true : null,
    );
    await origin.sql(`UPDATE app.tools SET name = 'before stop'`);
    await origin.sql(`INSERT INTO app.tools VALUES (5, 'before stop')`);
    await until('the write before the stop', async () => saw('app.tools'));
    await followers.stop();
    seen.length = 0;
    await origin.sql(`UPDATE app.items SET name = 'while stopped' WHERE id = 1`);
    followers = await start();
    try {
      await until('the write made while stopped', async () => saw('app.items'));
      // Resumed from the stored position, not the log's end (which drops the whole cache).
      expect(seen).not.toContain('all');
      expect(seen.filter((tables) => tables !== 'all' && tables.includes('app.tools'))).toEqual([]);
    } finally {
      await followers.stop();
    }
  });
});
