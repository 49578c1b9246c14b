// The edge's cache against the machine's Postgres: hits are byte-for-byte what the origin sends,
// writes through the edge make the next read fresh, and nothing leaks between users or settings.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queryHash, type EdgeCacheConfig, type EdgeRule } from '../src/index.ts';
import { serialize } from '../src/pg/protocol/index.ts';
import { cacheConfig as baseConfig, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const ORIGIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

const cacheId = newCacheId;

function cacheConfig(
  id: string,
  rules: EdgeRule[] = [],
  extra: Partial<EdgeCacheConfig> = {},
): EdgeCacheConfig {
  return baseConfig(id, { rules, ...extra });
}

const schema = `edge_cache_${randomBytes(4).toString('hex')}`;
let source: StaticConfigSource;
let edge: RunningEdge;
let id: string;
const clients: pg.Client[] = [];

async function direct(user = ORIGIN.user): Promise<pg.Client> {
  const client = new pg.Client({ ...ORIGIN, user });
  await client.connect();
  clients.push(client);
  return client;
}

async function viaEdge(options: { user?: string; cache?: string } = {}): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: edge.port,
    user: options.user ?? ORIGIN.user,
    database: ORIGIN.database,
    application_name: options.cache ?? id,
  });
  await client.connect();
  clients.push(client);
  return client;
}

function stats() {
  const s = edge.runtime.stats(id);
  return { hits: s.hits, misses: s.misses, uncacheable: s.uncacheable };
}

beforeAll(async () => {
  const admin = await direct();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${schema}.items (id int PRIMARY KEY, name text, owner text)`);
  await admin.query(`CREATE TABLE ${schema}.tags (item_id int, tag text)`);
  await admin.query(
    `INSERT INTO ${schema}.items SELECT g, 'item ' || g, 'nobody' FROM generate_series(1, 50) g`,
  );
  await admin.query(
    `INSERT INTO ${schema}.tags SELECT g, 'tag' || g FROM generate_series(1, 50) g`,
  );
  for (const role of ['edge_alice', 'edge_bob']) {
    await admin.query(
      `DO $$ BEGIN CREATE ROLE ${role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
    await admin.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role}`,
    );
  }
  // Row-level security: each role sees only its own rows; the cache must never mix them up.
  await admin.query(
    `UPDATE ${schema}.items SET owner = CASE WHEN id % 2 = 0 THEN 'edge_alice' ELSE 'edge_bob' END`,
  );
  await admin.query(`CREATE TABLE ${schema}.secrets (owner text, secret text)`);
  await admin.query(
    `INSERT INTO ${schema}.secrets VALUES ('edge_alice', 'alice-secret'), ('edge_bob', 'bob-secret')`,
  );
  await admin.query(`ALTER TABLE ${schema}.secrets ENABLE ROW LEVEL SECURITY`);
  await admin.query(`CREATE POLICY own ON ${schema}.secrets USING (owner = current_user)`);
  await admin.query(`GRANT SELECT ON ${schema}.secrets TO edge_alice, edge_bob`);
  await admin.query(`CREATE SEQUENCE ${schema}.ids`);
  await admin.query(`CREATE PROCEDURE ${schema}.noop_procedure() LANGUAGE sql AS 'SELECT 1'`);
  await admin.query(
    `CREATE FUNCTION ${schema}.noop_function() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
  );
  source = new StaticConfigSource();
  edge = await startEdge({ source });
});

beforeEach(() => {
  id = cacheId();
  source.set(cacheConfig(id));
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  await edge?.close();
  const admin = new pg.Client(ORIGIN);
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.query(`DROP OWNED BY edge_alice, edge_bob`).catch(() => undefined);
  await admin.end();
});

// A raw protocol client: the exact bytes a server sends back, up to ReadyForQuery.
class RawClient {
  readonly #socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiter: (() => void) | null = null;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#waiter?.();
    });
  }

  static async connect(port: number, applicationName?: string): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new RawClient(socket);
    const parameters: Record<string, string> = { user: ORIGIN.user, database: ORIGIN.database };
    if (applicationName !== undefined) parameters.application_name = applicationName;
    socket.write(serialize.startupMessage(parameters));
    await client.untilReady();
    return client;
  }

  /** Sends bytes and returns everything received up to and including the next ReadyForQuery. */
  async roundTrip(bytes: Buffer): Promise<Buffer> {
    this.#socket.write(bytes);
    return this.untilReady();
  }

  async untilReady(): Promise<Buffer> {
    for (;;) {
      const end = readyEnd(this.#buffer);
      if (end > 0) {
        const answer = this.#buffer.subarray(0, end);
        this.#buffer = this.#buffer.subarray(end);
        return answer;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}

function readyEnd(buffer: Buffer): number {
  let offset = 0;
  while (offset + 5 <= buffer.length) {
    const size = buffer.readInt32BE(offset + 1) + 1;
    if (offset + size > buffer.length) return 0;
    if (buffer[offset] === 0x5a) return offset + size;
    offset += size;
  }
  return 0;
}

describe('cache hits', () => {
  it('answer a simple query with the exact bytes the origin sends', async () => {
    const sql = `SELECT id, name, 1.5::numeric AS n, NULL::text AS nothing FROM ${schema}.items WHERE id <= 3 ORDER BY id`;
    const origin = await RawClient.connect(ORIGIN.port);
    const viaTheEdge = await RawClient.connect(edge.port, id);
    const expected = await origin.roundTrip(serialize.query(sql));
    const miss = await viaTheEdge.roundTrip(serialize.query(sql));
    const hit = await viaTheEdge.roundTrip(serialize.query(sql));
    expect(stats()).toMatchObject({ hits: 1, misses: 1 });
    expect(miss.equals(expected)).toBe(true);
    expect(hit.equals(expected)).toBe(true);
    origin.close();
    viaTheEdge.close();
  });

  it('answer the extended protocol with ParseComplete, BindComplete, rows and CommandComplete', async () => {
    const sql = `SELECT id, name FROM ${schema}.items WHERE id = $1`;
    const unit = (value: string) =>
      Buffer.concat([
        serialize.parse({ sql }),
        serialize.bind({ params: [value] }),
        serialize.describe('P'),
        serialize.execute(),
        serialize.sync(),
      ]);
    const origin = await RawClient.connect(ORIGIN.port);
    const viaTheEdge = await RawClient.connect(edge.port, id);
    const expected = await origin.roundTrip(unit('7'));
    await viaTheEdge.roundTrip(unit('7'));
    const hit = await viaTheEdge.roundTrip(unit('7'));
    expect(hit.equals(expected)).toBe(true);
    // Another parameter value is another result.
    const other = await viaTheEdge.roundTrip(unit('8'));
    expect(other.equals(await origin.roundTrip(unit('8')))).toBe(true);
    expect(stats()).toMatchObject({ hits: 1, misses: 2 });
    // A Bind to the unnamed statement the cache answered still works: the edge re-sends its Parse.
    const bindOnly = Buffer.concat([
      serialize.bind({ params: ['9'] }),
      serialize.describe('P'),
      serialize.execute(),
      serialize.sync(),
    ]);
    await viaTheEdge.roundTrip(unit('7'));
    const rebound = await viaTheEdge.roundTrip(bindOnly);
    await origin.roundTrip(unit('9'));
    const expectedRebound = await origin.roundTrip(bindOnly);
    expect(rebound.equals(expectedRebound)).toBe(true);
    origin.close();
    viaTheEdge.close();
  });

  it('serve named prepared statements from the pg client', async () => {
    const client = await viaEdge();
    const query = {
      name: 'by-id',
      text: `SELECT name FROM ${schema}.items WHERE id = $1`,
      values: [5],
    };
    const first = await client.query(query);
    const second = await client.query(query);
    const third = await client.query({ ...query, values: [6] });
    expect(first.rows).toEqual([{ name: 'item 5' }]);
    expect(second.rows).toEqual(first.rows);
    expect(third.rows).toEqual([{ name: 'item 6' }]);
    expect(stats().hits).toBe(1);
  });

  it('coalesce concurrent identical misses into one origin query', async () => {
    const sql = `SELECT count(*) FROM generate_series(1, 2000000) g, ${schema}.tags t WHERE t.item_id = 1`;
    const sessions = await Promise.all([1, 2, 3, 4, 5].map(() => viaEdge()));
    const results = await Promise.all(sessions.map((c) => c.query(sql)));
    for (const result of results) expect(result.rows).toEqual([{ count: '2000000' }]);
    expect(stats()).toMatchObject({ misses: 1, hits: 4 });
  });
});

describe('freshness', () => {
  it('a write through the edge makes the next read fresh', async () => {
    const client = await viaEdge();
    const read = `SELECT name FROM ${schema}.items WHERE id = 10`;
    expect((await client.query(read)).rows).toEqual([{ name: 'item 10' }]);
    expect((await client.query(read)).rows).toEqual([{ name: 'item 10' }]);
    await client.query(`UPDATE ${schema}.items SET name = 'renamed' WHERE id = 10`);
    expect((await client.query(read)).rows).toEqual([{ name: 'renamed' }]);
    await client.query(`UPDATE ${schema}.items SET name = 'item 10' WHERE id = 10`);
    expect(stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('a write by another session of the cache invalidates too, when it commits', async () => {
    const reader = await viaEdge();
    const writer = await viaEdge();
    const read = `SELECT name FROM ${schema}.items WHERE id = 11`;
    await reader.query(read);
    await writer.query('BEGIN');
    await writer.query(`UPDATE ${schema}.items SET name = 'pending' WHERE id = 11`);
    // Not committed: the cached row is still the truth for everyone else.
    expect((await reader.query(read)).rows).toEqual([{ name: 'item 11' }]);
    // Inside the writing transaction nothing is served from (or stored in) the cache.
    expect((await writer.query(read)).rows).toEqual([{ name: 'pending' }]);
    await writer.query('COMMIT');
    expect((await reader.query(read)).rows).toEqual([{ name: 'pending' }]);
    await writer.query(`UPDATE ${schema}.items SET name = 'item 11' WHERE id = 11`);
  });

  // A REPEATABLE READ or SERIALIZABLE transaction reads from the snapshot its first statement
  // took: a read after another session's write returns the row as it was before that write, and
  // must not be stored as fresh (nor served to others as the current row).
  it.each(['REPEATABLE READ', 'SERIALIZABLE'])(
    'a read inside a %s transaction is never stored fresher than its snapshot',
    async (level) => {
      const reader = await viaEdge();
      const writer = await viaEdge();
      const other = await viaEdge();
      const read = `SELECT name FROM ${schema}.items WHERE id = 13`;
      await reader.query(`BEGIN ISOLATION LEVEL ${level}`);
      await reader.query(`SELECT count(*) FROM ${schema}.tags`); // takes the snapshot
      await writer.query(`UPDATE ${schema}.items SET name = 'after' WHERE id = 13`);
      expect((await reader.query(read)).rows).toEqual([{ name: 'item 13' }]);
      expect((await reader.query(read)).rows).toEqual([{ name: 'item 13' }]);
      await reader.query('COMMIT');
      expect((await other.query(read)).rows).toEqual([{ name: 'after' }]);
      expect((await reader.query(read)).rows).toEqual([{ name: 'after' }]);
      await writer.query(`UPDATE ${schema}.items SET name = 'item 13' WHERE id = 13`);
    },
  );

  it('a write after a COMMIT in the same query invalidates once the whole text has run', async () => {
    const reader = await viaEdge();
    const writer = await viaEdge();
    const read = `SELECT name FROM ${schema}.items WHERE id = 14`;
    expect((await reader.query(read)).rows).toEqual([{ name: 'item 14' }]);
    // One simple Query: Postgres sends its answers when the whole text has run, so the edge counts
    // every write in it at the end (docs/edge.md, "Invalidation": the limits).
    const written = writer.query(
      `BEGIN; UPDATE ${schema}.tags SET tag = tag WHERE item_id = 14; COMMIT; ` +
        `SELECT pg_sleep(0.4); UPDATE ${schema}.items SET name = 'late' WHERE id = 14`,
    );
    // While the sleep runs the UPDATE has not: the stored row is still the truth.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await reader.query(read)).rows).toEqual([{ name: 'item 14' }]);
    await written;
    expect((await reader.query(read)).rows).toEqual([{ name: 'late' }]);
    await writer.query(`UPDATE ${schema}.items SET name = 'item 14' WHERE id = 14`);
  });

  it('a write whose answer never came, its session ended, invalidates once the origin is done', async () => {
    const reader = await viaEdge();
    const writer = await viaEdge();
    writer.on('error', () => undefined);
    const read = `SELECT name FROM ${schema}.items WHERE id = 16`;
    await reader.query(read);
    // Committed at once, answered only when the whole text has run: the session is ended first.
    const lost = writer
      .query(
        `BEGIN; UPDATE ${schema}.items SET name = 'ended' WHERE id = 16; COMMIT; SELECT pg_sleep(1)`,
      )
      .catch(() => 'ended');
    const admin = await direct();
    for (let waited = 0; ; waited += 10) {
      const { rows } = await admin.query(`SELECT name FROM ${schema}.items WHERE id = 16`);
      if (rows[0]?.name === 'ended') break;
      if (waited > 5_000) throw new Error('the write did not commit');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const busy = edge.server.sessions().filter((session) => session.state === 'active');
    expect(busy).toHaveLength(1);
    expect(edge.server.kill((busy[0] as { id: string }).id)).toBe(true);
    expect(await lost).toBe('ended');
    // The edge never saw the COMMIT: the cached row goes once the origin has closed the session's
    // connection (after the sleep, cancelled or not).
    for (let waited = 0; ; waited += 20) {
      const { rows } = await reader.query(read);
      if (rows[0]?.name === 'ended') break;
      if (waited > 5_000) throw new Error('the cached row stayed stale');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await admin.query(`UPDATE ${schema}.items SET name = 'item 16' WHERE id = 16`);
  });

  it('a write inside a rolled-back transaction invalidates nothing', async () => {
    const client = await viaEdge();
    const read = `SELECT name FROM ${schema}.items WHERE id = 12`;
    await client.query(read);
    await client.query('BEGIN');
    await client.query(`UPDATE ${schema}.items SET name = 'never' WHERE id = 12`);
    await client.query('ROLLBACK');
    const before = stats().hits;
    expect((await client.query(read)).rows).toEqual([{ name: 'item 12' }]);
    expect(stats().hits).toBe(before + 1);
  });

  it('a write to one table leaves reads of other tables cached; a join takes both', async () => {
    const client = await viaEdge();
    const items = `SELECT count(*) FROM ${schema}.items`;
    const tags = `SELECT count(*) FROM ${schema}.tags`;
    const join = `SELECT count(*) FROM ${schema}.items i JOIN ${schema}.tags t ON t.item_id = i.id`;
    for (const sql of [items, tags, join]) await client.query(sql);
    await client.query(`INSERT INTO ${schema}.tags VALUES (1, 'extra')`);
    const before = stats();
    await client.query(items);
    expect(stats().hits).toBe(before.hits + 1);
    expect((await client.query(tags)).rows).toEqual([{ count: '51' }]);
    expect((await client.query(join)).rows).toEqual([{ count: '51' }]);
    expect(stats().misses).toBe(before.misses + 2);
    await client.query(`DELETE FROM ${schema}.tags WHERE tag = 'extra'`);
  });

  it.each([
    ['DO', `DO $$ BEGIN PERFORM 1; END $$`],
    ['CALL', `CALL ${schema}.noop_procedure()`],
    ['an unknown function', `SELECT ${schema}.noop_function()`],
  ])('%s counts as writing everything', async (_what, statement) => {
    const client = await viaEdge();
    const read = `SELECT count(*) FROM ${schema}.items`;
    await client.query(read);
    await client.query(read);
    expect(stats()).toMatchObject({ hits: 1, misses: 1 });
    await client.query(statement);
    await client.query(read);
    expect(stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('now(), random() and nextval() are never cached', async () => {
    const client = await viaEdge();
    const first = await client.query('SELECT now() AS t, random() AS r');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = await client.query('SELECT now() AS t, random() AS r');
    expect(second.rows[0].t).not.toEqual(first.rows[0].t);
    await client.query(`SELECT 'now'::timestamptz`);
    await client.query(`SELECT 'now'::timestamptz`);
    await client.query(`SELECT current_timestamp`);
    await client.query(`SELECT current_timestamp`);
    const next = `SELECT nextval('${schema}.ids') AS n`;
    const one = (await client.query(next)).rows[0].n;
    const two = (await client.query(next)).rows[0].n;
    expect(Number(two)).toBe(Number(one) + 1);
    expect(stats()).toMatchObject({ hits: 0, misses: 0, uncacheable: 8 });
  });

  it('locking reads and reads of catalogs are not cached', async () => {
    const client = await viaEdge();
    for (let i = 0; i < 2; i++) {
      await client.query(`SELECT id FROM ${schema}.items WHERE id = 1 FOR UPDATE`);
      await client.query(`SELECT count(*) FROM pg_stat_activity`);
    }
    expect(stats()).toMatchObject({ hits: 0, uncacheable: 4 });
  });
});

describe('isolation', () => {
  it('two users never see each other’s cached rows', async () => {
    const alice = await viaEdge({ user: 'edge_alice' });
    const bob = await viaEdge({ user: 'edge_bob' });
    const sql = `SELECT secret FROM ${schema}.secrets`;
    expect((await alice.query(sql)).rows).toEqual([{ secret: 'alice-secret' }]);
    expect((await bob.query(sql)).rows).toEqual([{ secret: 'bob-secret' }]);
    expect((await alice.query(sql)).rows).toEqual([{ secret: 'alice-secret' }]);
    expect((await bob.query(sql)).rows).toEqual([{ secret: 'bob-secret' }]);
    expect(stats()).toMatchObject({ hits: 2, misses: 2 });
  });

  it('session settings are part of the key: search_path, role and timezone', async () => {
    const admin = await direct();
    const other = `${schema}_b`;
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${other}`);
    await admin.query(`CREATE TABLE IF NOT EXISTS ${other}.items (id int, name text)`);
    await admin.query(`INSERT INTO ${other}.items VALUES (1, 'from b')`);
    const a = await viaEdge();
    const b = await viaEdge();
    await a.query(`SET search_path = ${schema}`);
    await b.query(`SET search_path = ${other}`);
    expect((await a.query('SELECT name FROM items WHERE id = 1')).rows).toEqual([
      { name: 'item 1' },
    ]);
    expect((await b.query('SELECT name FROM items WHERE id = 1')).rows).toEqual([
      { name: 'from b' },
    ]);
    await a.query(`SET TimeZone = 'Asia/Tokyo'`);
    await b.query(`SET TimeZone = 'UTC'`);
    const at = `SELECT '2026-01-01 00:00:00+00'::timestamptz::text AS t`;
    expect((await a.query(at)).rows).toEqual([{ t: '2026-01-01 09:00:00+09' }]);
    expect((await b.query(at)).rows).toEqual([{ t: '2026-01-01 00:00:00+00' }]);
    await admin.query(`DROP SCHEMA ${other} CASCADE`);
  });

  it('the role is part of the key: SET ROLE in the same session reads other rows', async () => {
    const admin = await direct();
    const [one, two, none] = ['one', 'two', 'none'].map((name) => `${schema}_${name}`) as [
      string,
      string,
      string,
    ];
    for (const role of [one, two, none]) await admin.query(`CREATE ROLE ${role}`);
    await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${one}, ${two}, ${none}`);
    await admin.query(`GRANT SELECT ON ${schema}.secrets TO ${one}, ${two}`);
    await admin.query(
      `INSERT INTO ${schema}.secrets VALUES ('${one}', 'one-secret'), ('${two}', 'two-secret')`,
    );
    try {
      const client = await viaEdge();
      const sql = `SELECT secret FROM ${schema}.secrets WHERE secret LIKE 'one%' OR secret LIKE 'two%' ORDER BY secret`;
      // The superuser is above row-level security; the roles are not, and both are not superusers,
      // so nothing the origin reports tells them apart.
      expect((await client.query(sql)).rows).toEqual([
        { secret: 'one-secret' },
        { secret: 'two-secret' },
      ]);
      await client.query(`SET ROLE ${one}`);
      expect((await client.query(sql)).rows).toEqual([{ secret: 'one-secret' }]);
      expect((await client.query(sql)).rows).toEqual([{ secret: 'one-secret' }]);
      await client.query(`SET ROLE ${two}`);
      expect((await client.query(sql)).rows).toEqual([{ secret: 'two-secret' }]);
      await client.query(`SET ROLE ${none}`);
      await expect(client.query(sql)).rejects.toMatchObject({ code: '42501' });
      await client.query('RESET ROLE');
      expect((await client.query(sql)).rows).toHaveLength(2);
      // RESET ROLE returns to the state the session connected in: its first read is a hit.
      expect(stats()).toMatchObject({ hits: 2, misses: 4 });
    } finally {
      await admin.query(`DELETE FROM ${schema}.secrets WHERE owner IN ('${one}', '${two}')`);
      await admin.query(`DROP OWNED BY ${one}, ${two}, ${none}`);
      await admin.query(`DROP ROLE ${one}, ${two}, ${none}`);
    }
  });

  it('caches do not share entries', async () => {
    const otherId = cacheId();
    source.set(cacheConfig(otherId));
    const one = await viaEdge();
    const two = await viaEdge({ cache: otherId });
    const sql = `SELECT name FROM ${schema}.items WHERE id = 2`;
    await one.query(sql);
    await two.query(sql);
    expect(edge.runtime.stats(otherId)).toMatchObject({ hits: 0, misses: 1 });
  });
});

describe('rules', () => {
  async function runTwice(sql: string) {
    const client = await viaEdge();
    await client.query(sql);
    await client.query(sql);
    return stats();
  }

  it('a table rule set to off keeps reads of that table, and joins with it, uncached', async () => {
    source.set(cacheConfig(id, [rule('table', 'items', 'off')]));
    expect(await runTwice(`SELECT count(*) FROM ${schema}.items`)).toMatchObject({
      hits: 0,
      uncacheable: 2,
    });
    expect(await runTwice(`SELECT count(*) FROM ${schema}.tags`)).toMatchObject({ hits: 1 });
    const join = `SELECT count(*) FROM ${schema}.tags t JOIN ${schema}.items i ON i.id = t.item_id`;
    expect((await runTwice(join)).hits).toBe(1);
  });

  it('a query rule beats a table rule, and manual TTLs expire', async () => {
    const sql = `SELECT name FROM ${schema}.items WHERE id = 3`;
    source.set(
      cacheConfig(id, [
        rule('table', 'items', 'off'),
        { ...rule('query', queryHash(sql), 'manual'), ttlSeconds: 1 },
      ]),
    );
    expect(await runTwice(sql)).toMatchObject({ hits: 1, misses: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const client = await viaEdge();
    await client.query(sql);
    expect(stats()).toMatchObject({ misses: 2 });
  });

  it('a template rule matches every query that differs only in constants', async () => {
    const { fingerprintSync } = await import('libpg-query');
    const fingerprint = fingerprintSync(`SELECT name FROM ${schema}.items WHERE id = 1`);
    source.set(cacheConfig(id, [rule('template', fingerprint, 'off')], { defaultMode: 'auto' }));
    expect(await runTwice(`SELECT name FROM ${schema}.items WHERE id = 42`)).toMatchObject({
      hits: 0,
      uncacheable: 2,
    });
  });

  it('the shortest TTL of the tables read applies', async () => {
    source.set(
      cacheConfig(id, [
        { ...rule('table', 'items', 'manual'), ttlSeconds: 1 },
        { ...rule('table', 'tags', 'manual'), ttlSeconds: 600 },
      ]),
    );
    const join = `SELECT count(*) FROM ${schema}.tags t JOIN ${schema}.items i ON i.id = t.item_id`;
    expect(await runTwice(join)).toMatchObject({ hits: 1, misses: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const client = await viaEdge();
    await client.query(join);
    expect(stats().misses).toBe(2);
  });

  it('a config change reaches a running session at once and drops what was cached', async () => {
    const client = await viaEdge();
    const sql = `SELECT name FROM ${schema}.items WHERE id = 4`;
    await client.query(sql);
    await client.query(sql);
    // The new config still caches this read, so only the drop can make the next read a miss.
    source.set(cacheConfig(id, [rule('table', 'tags', 'off')]));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await client.query(sql);
    await client.query(sql);
    await client.query(`SELECT count(*) FROM ${schema}.tags`);
    expect(stats()).toMatchObject({ hits: 2, misses: 2, uncacheable: 1 });
  });

  it('a deleted cache refuses new connections', async () => {
    source.delete(id);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(viaEdge()).rejects.toMatchObject({ code: '08004' });
  });
});

function rule(kind: EdgeRule['kind'], key: string, mode: EdgeRule['mode']): EdgeRule {
  return { kind, key, mode, ttlSeconds: null, transactionPolicy: 'untilWrite' };
}
