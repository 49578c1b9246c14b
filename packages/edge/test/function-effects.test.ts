// Calling a user function through the edge invalidates only what the function can write, as the
// origin's catalog defines it right after the call: the multi-tenant pattern (set_tenant(n) before
// every request) keeps its reads cached, and a function that writes, or that the edge cannot read
// through, or that was redefined behind the edge's back, never leaves a stale read. Against the
// machine's Postgres (a database and a role of the test's own), through the edge.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cacheConfig, LOCAL_POSTGRES, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { prng } from './helpers/prng.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const suffix = randomBytes(4).toString('hex');
const database = `edge_fx_${suffix}`;
const tenantRole = `edge_fx_tenant_${suffix}`;
const READ = 'SELECT v FROM tenant_data ORDER BY v';
const READ_EXTENDED = 'SELECT v FROM tenant_data WHERE tenant > $1 ORDER BY v';
const ROWS: Record<number, string[]> = { 1: ['one', 'one-b'], 2: ['two'], 3: ['three'] };
const ITEMS = 'SELECT count(*)::int AS n FROM items';
const NOTES = 'SELECT n FROM notes ORDER BY n';

let source: StaticConfigSource;
let edge: RunningEdge;
let id: string;
const clients: pg.Client[] = [];

async function admin<T>(work: (client: pg.Client) => Promise<T>, db = database): Promise<T> {
  const client = new pg.Client({ ...LOCAL_POSTGRES, database: db });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function viaEdge(user = tenantRole): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: edge.port,
    user,
    database,
    application_name: id,
  });
  await client.connect();
  clients.push(client);
  return client;
}

function stats() {
  const s = edge.runtime.stats(id);
  return { hits: s.hits, misses: s.misses };
}

async function count(client: pg.Client): Promise<number> {
  return (await client.query<{ n: number }>(ITEMS)).rows[0]?.n as number;
}

async function notes(client: pg.Client): Promise<string[]> {
  return (await client.query<{ n: string }>(NOTES)).rows.map((row) => row.n);
}

// Whether a read is answered from the cache: the hit count moves.
async function isHit(work: () => Promise<unknown>): Promise<boolean> {
  const before = stats().hits;
  await work();
  return stats().hits === before + 1;
}

beforeAll(async () => {
  await admin(async (client) => {
    await client.query(`CREATE DATABASE ${database}`);
    await client.query(`CREATE ROLE ${tenantRole} LOGIN`);
  }, LOCAL_POSTGRES.database);
  await admin(async (client) => {
    await client.query(`
      CREATE TABLE tenant_data (tenant int, v text);
      INSERT INTO tenant_data VALUES (1, 'one'), (1, 'one-b'), (2, 'two'), (3, 'three');
      ALTER TABLE tenant_data ENABLE ROW LEVEL SECURITY;
      ALTER TABLE tenant_data FORCE ROW LEVEL SECURITY;
      CREATE POLICY by_tenant ON tenant_data
        USING (tenant = nullif(current_setting('app.tenant', true), '')::int);
      GRANT SELECT ON tenant_data TO ${tenantRole};
      CREATE FUNCTION set_tenant(t int) RETURNS void LANGUAGE plpgsql AS
        $$ BEGIN PERFORM set_config('app.tenant', t::text, false); END $$;
      CREATE FUNCTION set_tenant_sql(t int) RETURNS text LANGUAGE sql AS
        $$ SELECT set_config('app.tenant', t::text, false) $$;

      CREATE TABLE items (id serial, v text);
      CREATE TABLE notes (n text);
      INSERT INTO notes VALUES ('a note');
      GRANT SELECT, INSERT ON items, notes TO ${tenantRole};
      GRANT USAGE ON SEQUENCE items_id_seq TO ${tenantRole};
      CREATE FUNCTION add_item(x text) RETURNS void LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO items (v) VALUES (x); END $$;
      CREATE FUNCTION add_item_later(x text) RETURNS void LANGUAGE plpgsql AS
        $$ BEGIN EXECUTE 'INSERT INTO items (v) VALUES ($1)' USING x; END $$;
      CREATE FUNCTION add_item_inside(x text) RETURNS void LANGUAGE sql AS
        $$ SELECT add_item(x) $$;
      CREATE FUNCTION plus(int, int) RETURNS int LANGUAGE internal IMMUTABLE AS 'int4pl';
      CREATE FUNCTION touch(x text) RETURNS text LANGUAGE plpgsql AS
        $$ BEGIN RETURN x; END $$;
    `);
  });
  source = new StaticConfigSource();
  edge = await startEdge({ source });
});

beforeEach(() => {
  id = newCacheId();
  source.set(cacheConfig(id));
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((client) => client.end().catch(() => undefined)));
  await edge?.close();
  await admin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await client.query(`DROP ROLE IF EXISTS ${tenantRole}`);
  }, LOCAL_POSTGRES.database);
});

describe('set_tenant(n) before every request', () => {
  it('keeps each session to its own tenant’s rows, and its reads cached', async () => {
    const sessions = await Promise.all([1, 2, 3, 4, 5].map(() => viaEdge()));
    const random = prng(0x7e4a47);
    await Promise.all(
      sessions.map(async (client, index) => {
        for (let round = 0; round < 30; round++) {
          const tenant = 1 + random(3);
          // One session in two calls it through the extended protocol, one in three the SQL version.
          if (index % 3 === 2) await client.query(`SELECT set_tenant_sql(${tenant})`);
          else if (index % 2 === 0) await client.query('SELECT set_tenant($1)', [tenant]);
          else await client.query(`SELECT set_tenant(${tenant})`);
          const simple = await client.query<{ v: string }>(READ);
          const extended = await client.query<{ v: string }>(READ_EXTENDED, [0]);
          expect(simple.rows.map((row) => row.v)).toEqual(ROWS[tenant]);
          expect(extended.rows.map((row) => row.v)).toEqual(ROWS[tenant]);
        }
      }),
    );
    // Of 300 reads; an edge that takes set_tenant for a function that may write anything empties
    // the cache on every call, and gets next to none.
    const { hits, misses } = stats();
    expect(hits / (5 * 30 * 2)).toBeGreaterThan(0.5);
    expect(hits + misses).toBeGreaterThan(290);
  });
});

describe('a function that writes a table', () => {
  it('invalidates reads of that table only', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    // The first call of a function is counted as writing everything: nothing is known of it yet.
    await a.query(`SELECT add_item('first')`);
    const before = await count(b);
    expect(await notes(b)).toEqual(['a note']);
    expect(await isHit(() => count(b))).toBe(true);
    await a.query(`SELECT add_item('second')`);
    expect(await isHit(() => notes(b))).toBe(true);
    expect(await isHit(async () => expect(await count(b)).toBe(before + 1))).toBe(false);
  });

  it('inside a transaction, invalidates that table at COMMIT', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await a.query(`SELECT add_item('learn')`);
    const before = await count(b);
    expect(await notes(b)).toEqual(['a note']);
    await a.query('BEGIN');
    await a.query(`SELECT add_item('in a transaction')`);
    expect(await isHit(async () => expect(await count(b)).toBe(before))).toBe(true);
    await a.query('COMMIT');
    expect(await count(b)).toBe(before + 1);
    expect(await isHit(() => notes(b))).toBe(true);
  });
});

describe('a function the edge cannot read through invalidates every read', () => {
  // Per call: whether it drops the read of notes, a table it does not write. A function calling
  // another is read through once both are known (the probe behind a call reads the functions it
  // reaches through what was learned before): from the third call on.
  it.each([
    ['dynamic EXECUTE', `SELECT add_item_later('x')`, 1, [true, true, true]],
    [
      'a call of another function that writes',
      `SELECT add_item_inside('x')`,
      1,
      [true, true, false],
    ],
    ['a function in another language (internal)', 'SELECT plus(1, 2)', 0, [true, true, true]],
  ])('%s', async (_label, call, added, dropsNotes) => {
    const a = await viaEdge();
    const b = await viaEdge();
    await a.query(`SELECT touch('learn')`);
    for (const drops of dropsNotes) {
      const before = await count(b);
      expect(await notes(b)).toEqual(['a note']);
      // A function known to write nothing drops nothing: the reads above stay cached.
      await a.query(`SELECT touch('x')`);
      expect(await isHit(() => notes(b))).toBe(true);
      expect(await isHit(() => count(b))).toBe(true);
      await a.query(call);
      expect(await isHit(() => notes(b))).toBe(!drops);
      expect(await count(b)).toBe(before + added);
    }
  });
});

describe('a function redefined behind the edge', () => {
  it('invalidates what its new definition writes before its caller gets an answer', async () => {
    await admin((client) =>
      client.query(
        `CREATE FUNCTION maybe_add() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; END $$`,
      ),
    );
    const a = await viaEdge();
    const b = await viaEdge();
    await a.query('SELECT maybe_add()');
    const before = await count(b);
    await a.query('SELECT maybe_add()');
    expect(await isHit(async () => expect(await count(b)).toBe(before))).toBe(true);
    // Straight on the origin, not through the edge.
    await admin((client) =>
      client.query(`CREATE OR REPLACE FUNCTION maybe_add() RETURNS void LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO items (v) VALUES ('behind'); END $$`),
    );
    await a.query('SELECT maybe_add()');
    expect(await count(b)).toBe(before + 1);
    await a.query('SELECT maybe_add()');
    expect(await count(b)).toBe(before + 2);
    expect(await isHit(() => notes(b))).toBe(false);
    expect(await isHit(() => notes(b))).toBe(true);
    await a.query('SELECT maybe_add()');
    expect(await isHit(() => notes(b))).toBe(true);
  });
});

describe('a function redefined while it runs', () => {
  it('counts as writing everything: what the probe reads after it may not be what ran', async () => {
    const writes = `BEGIN INSERT INTO items (v) VALUES ('slow'); PERFORM pg_sleep(0.3); END`;
    await admin((client) =>
      client.query(`CREATE FUNCTION slow_add() RETURNS void LANGUAGE plpgsql AS $$ ${writes} $$`),
    );
    const a = await viaEdge();
    const b = await viaEdge();
    await a.query('SELECT slow_add()');
    await a.query('SELECT slow_add()');
    const before = await count(b);
    expect(await isHit(() => count(b))).toBe(true);
    const call = a.query('SELECT slow_add()');
    await new Promise((resolve) => setTimeout(resolve, 100));
    // While the call sleeps, after its INSERT: the definition the probe will read writes nothing.
    await admin((client) =>
      client.query(`CREATE OR REPLACE FUNCTION slow_add() RETURNS void LANGUAGE plpgsql AS
        $$ BEGIN PERFORM 1; END $$`),
    );
    await call;
    expect(await count(b)).toBe(before + 1);
  });
});

describe('a read started after the writer’s answer', () => {
  it('is never stale, in the simple and the extended protocol', async () => {
    const writer = await viaEdge();
    const reader = await viaEdge();
    await writer.query(`SELECT add_item('learn')`);
    let expected = await count(reader);
    for (let i = 0; i < 60; i++) {
      // Write-free calls between keep the read cached, so a stale hit is possible if any.
      await writer.query(`SELECT touch('x')`);
      expect(await count(reader)).toBe(expected);
      if (i % 2 === 0) await writer.query(`SELECT add_item($1)`, [`n${i}`]);
      else await writer.query(`SELECT add_item('n${i}')`);
      expected += 1;
      expect(await count(reader)).toBe(expected);
    }
    expect(stats().hits).toBeGreaterThan(30);
  });
});
