// A cached result reaches only a session in the same state: row-level security keyed on a custom
// setting that a function, DO, CALL or SET changes where the edge cannot see it, against the
// machine's Postgres (a database and a role of the test's own), through the edge.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BackendParser, dataRowText, serialize } from '../src/pg/protocol/index.ts';
import type { BackendMessage } from '../src/pg/protocol/index.ts';
import { cacheConfig, LOCAL_POSTGRES, newCacheId } from './helpers/cache-config.ts';
import { startEdge, type RunningEdge } from './helpers/edge.ts';
import { prng } from './helpers/prng.ts';
import { StaticConfigSource } from './helpers/static-source.ts';

const suffix = randomBytes(4).toString('hex');
const database = `edge_state_${suffix}`;
const tenantRole = `edge_tenant_${suffix}`;
const ownerRole = `edge_owner_${suffix}`;
const READ = 'SELECT v FROM tenant_data ORDER BY v';
const READ_EXTENDED = 'SELECT v FROM tenant_data WHERE tenant > $1 ORDER BY v';
const ROWS: Record<number, string[]> = { 0: [], 1: ['one', 'one-b'], 2: ['two'], 3: ['three'] };

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

async function read(client: pg.Client, extended = false): Promise<string[]> {
  const result = extended
    ? await client.query<{ v: string }>(READ_EXTENDED, [0])
    : await client.query<{ v: string }>(READ);
  return result.rows.map((row) => row.v);
}

function stats() {
  const s = edge.runtime.stats(id);
  return { hits: s.hits, misses: s.misses };
}

beforeAll(async () => {
  await admin(async (client) => {
    await client.query(`CREATE DATABASE ${database}`);
    await client.query(`CREATE ROLE ${tenantRole} LOGIN`);
    await client.query(`CREATE ROLE ${ownerRole} LOGIN`);
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
      CREATE PROCEDURE set_tenant_proc(t int) LANGUAGE plpgsql AS
        $$ BEGIN PERFORM set_config('app.tenant', t::text, false); END $$;
      CREATE FUNCTION become(r text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS
        $$ BEGIN EXECUTE format('SET ROLE %I', r); END $$;
      CREATE FUNCTION peek_tenant_2() RETURNS SETOF text LANGUAGE sql SET app.tenant = '2' AS
        $$ SELECT v FROM tenant_data $$;
      CREATE FUNCTION as_owner() RETURNS text LANGUAGE sql SET role = ${ownerRole} AS
        $$ SELECT current_user::text $$;
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
    await client.query(`DROP ROLE IF EXISTS ${ownerRole}`);
  }, LOCAL_POSTGRES.database);
});

describe.each([
  ['the simple protocol', false],
  ['the extended protocol', true],
])('a setting changed unseen, in %s', (_label, extended) => {
  const setTenant = (client: pg.Client, tenant: number) =>
    extended
      ? client.query('SELECT set_tenant($1)', [tenant])
      : client.query(`SELECT set_tenant(${tenant})`);
  const doSetTenant = (client: pg.Client, tenant: number) =>
    client.query({
      // A named statement goes through Parse, Bind, Execute and Sync; DO takes no parameters.
      name: extended ? `do-tenant-${tenant}` : undefined,
      text: `DO $$ BEGIN PERFORM set_config('app.tenant', '${tenant}', false); END $$`,
    });

  it.each([
    ['a function', setTenant],
    ['DO', doSetTenant],
  ])('by %s never serves one tenant’s rows to another', async (_how, set) => {
    const a = await viaEdge();
    const b = await viaEdge();
    await set(b, 2);
    await set(a, 1);
    expect(await read(a, extended)).toEqual(ROWS[1]);
    expect(await read(b, extended)).toEqual(ROWS[2]);
    await set(a, 2);
    expect(await read(a, extended)).toEqual(ROWS[2]);
    await set(b, 1);
    expect(await read(b, extended)).toEqual(ROWS[1]);
  });
});

describe('a setting changed unseen, and then', () => {
  it('CALL of a procedure', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await b.query('CALL set_tenant_proc(3)');
    await a.query('CALL set_tenant_proc(1)');
    expect(await read(a)).toEqual(ROWS[1]);
    expect(await read(b)).toEqual(ROWS[3]);
  });

  it('SET LOCAL reverts when the transaction ends, and so does what ROLLBACK undoes', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await a.query('BEGIN');
    await a.query(`SET LOCAL app.tenant = '1'`);
    expect(await read(a)).toEqual(ROWS[1]);
    await a.query('COMMIT');
    expect(await read(a)).toEqual(ROWS[0]);
    await b.query('BEGIN');
    await b.query('SELECT set_tenant(2)');
    expect(await read(b)).toEqual(ROWS[2]);
    await b.query('SAVEPOINT s');
    await b.query('SELECT set_tenant(3)');
    expect(await read(b)).toEqual(ROWS[3]);
    await b.query('ROLLBACK TO SAVEPOINT s');
    expect(await read(b)).toEqual(ROWS[2]);
    await b.query('ROLLBACK');
    expect(await read(b)).toEqual(ROWS[0]);
    await a.query('SELECT set_tenant(1)');
    expect(await read(a)).toEqual(ROWS[1]);
  });

  it('SET TRANSACTION is not followed by a probe: SET TRANSACTION SNAPSHOT still comes first', async () => {
    const exporter = new pg.Client({ ...LOCAL_POSTGRES, database });
    await exporter.connect();
    try {
      await exporter.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const snapshot = (await exporter.query('SELECT pg_export_snapshot() AS s')).rows[0].s;
      const a = await viaEdge('postgres');
      await a.query('BEGIN');
      await a.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await a.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
      await a.query('COMMIT');
    } finally {
      await exporter.end();
    }
  });

  it('a failed transaction keeps the state unknown until it is rolled back', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await b.query('SELECT set_tenant(3)');
    await a.query('BEGIN');
    await a.query('SELECT set_tenant(2)');
    await expect(a.query('SELECT 1 / 0')).rejects.toMatchObject({ code: '22012' });
    await expect(read(a)).rejects.toMatchObject({ code: '25P02' });
    await a.query('ROLLBACK');
    expect(await read(a)).toEqual(ROWS[0]);
    expect(await read(b)).toEqual(ROWS[3]);
  });

  it.each([['RESET ALL'], ['RESET app.tenant'], ['DISCARD ALL']])('%s', async (reset) => {
    const a = await viaEdge();
    const b = await viaEdge();
    await b.query('SELECT set_tenant(2)');
    await a.query('SELECT set_tenant(1)');
    expect(await read(a)).toEqual(ROWS[1]);
    await a.query(reset);
    expect(await read(a)).toEqual(ROWS[0]);
    expect(await read(b)).toEqual(ROWS[2]);
    await b.query(reset);
    expect(await read(b)).toEqual(ROWS[0]);
  });

  it('SET ROLE in a security-definer function, or a function’s SET clause: no result crosses', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await b.query('SELECT set_tenant(2)');
    expect(await read(b)).toEqual(ROWS[2]);
    // Postgres refuses SET ROLE inside a security-definer function; whatever it does, it must
    // not hand session b's rows to a.
    await a.query(`SELECT become('postgres')`).catch(() => undefined);
    expect(await read(a)).toEqual(ROWS[0]);
    await a.query('SELECT as_owner()').catch(() => undefined);
    expect(await read(a)).toEqual(ROWS[0]);
    // The SET clause holds only while the function runs.
    expect((await a.query('SELECT peek_tenant_2() AS v')).rows).toEqual([{ v: 'two' }]);
    expect(await read(a)).toEqual(ROWS[0]);
    await a.query('SELECT set_tenant(1)');
    expect(await read(a)).toEqual(ROWS[1]);
    expect(await read(b)).toEqual(ROWS[2]);
  });
});

describe('state the probe reads from the database’s own code', () => {
  it('a setting read only by a view is found in the view', async () => {
    await admin((client) =>
      client.query(`
        CREATE TABLE regions (region text, v text);
        INSERT INTO regions VALUES ('eu', 'eu-row'), ('us', 'us-row');
        CREATE VIEW my_region AS SELECT v FROM regions WHERE region = current_setting('app.region', true);
        GRANT SELECT ON my_region TO ${tenantRole};
        CREATE FUNCTION set_region(r text) RETURNS void LANGUAGE sql AS
          $$ SELECT set_config('app.region', r, false) $$;
      `),
    );
    const a = await viaEdge();
    const b = await viaEdge();
    await b.query(`SELECT set_region('us')`);
    await a.query(`SELECT set_region('eu')`);
    expect((await a.query('SELECT v FROM my_region')).rows).toEqual([{ v: 'eu-row' }]);
    expect((await b.query('SELECT v FROM my_region')).rows).toEqual([{ v: 'us-row' }]);
  });

  it('a setting read by a computed name makes the session share nothing', async () => {
    await admin((client) =>
      client.query(`
        CREATE FUNCTION app_setting(k text) RETURNS text LANGUAGE sql STABLE AS
          $$ SELECT current_setting('app.' || k, true) $$;
        CREATE VIEW my_zone AS SELECT app_setting('zone') AS z;
        GRANT SELECT ON my_zone TO ${tenantRole};
        CREATE FUNCTION set_zone(z text) RETURNS void LANGUAGE sql AS
          $$ SELECT set_config('app.zone', z, false) $$;
      `),
    );
    try {
      const a = await viaEdge();
      const b = await viaEdge();
      await b.query(`SELECT set_zone('north')`);
      await a.query(`SELECT set_zone('south')`);
      expect((await a.query('SELECT z FROM my_zone')).rows).toEqual([{ z: 'south' }]);
      expect((await b.query('SELECT z FROM my_zone')).rows).toEqual([{ z: 'north' }]);
      expect((await a.query('SELECT z FROM my_zone')).rows).toEqual([{ z: 'south' }]);
      expect(stats()).toEqual({ hits: 1, misses: 2 });
    } finally {
      // Left in place, it would make every later session of this database private.
      await admin((client) => client.query('DROP VIEW my_zone; DROP FUNCTION app_setting(text)'));
    }
  });

  it('a temporary table that hides a table is never served to another session', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    expect(await read(b)).toEqual(ROWS[0]);
    await a.query(`CREATE TEMP TABLE tenant_data AS SELECT 9 AS tenant, 'temporary' AS v`);
    expect(await read(a)).toEqual(['temporary']);
    expect(await read(a)).toEqual(['temporary']);
    expect(await read(b)).toEqual(ROWS[0]);
    const c = await viaEdge();
    expect(await read(c)).toEqual(ROWS[0]);
  });
});

describe('code changed after the edge read the names it reads settings by', () => {
  // The probe reads the names again only when its fingerprint of the code (every function, policy
  // and view row's oid and xmin) differs from the one they were read under: each change here
  // replaces the setting a read depends on with another, keeping every object in place.
  it.each([
    [
      'a policy',
      `CREATE TABLE org_p (org int, v text);
       INSERT INTO org_p VALUES (1, 'p-one'), (2, 'p-two');
       ALTER TABLE org_p ENABLE ROW LEVEL SECURITY; ALTER TABLE org_p FORCE ROW LEVEL SECURITY;
       CREATE POLICY by_org ON org_p USING (org = nullif(current_setting('app.org_p1', true), '')::int);
       GRANT SELECT ON org_p TO ${tenantRole};`,
      `ALTER POLICY by_org ON org_p USING (org = nullif(current_setting('app.org_p2', true), '')::int)`,
      'app.org_p2',
      'SELECT v FROM org_p',
      { 1: 'p-one', 2: 'p-two' },
    ],
    [
      'a view',
      `CREATE TABLE org_v (org int, v text);
       INSERT INTO org_v VALUES (1, 'v-one'), (2, 'v-two');
       CREATE VIEW org_v_mine AS SELECT v FROM org_v WHERE org = nullif(current_setting('app.org_v1', true), '')::int;
       GRANT SELECT ON org_v_mine TO ${tenantRole};`,
      `CREATE OR REPLACE VIEW org_v_mine AS SELECT v FROM org_v WHERE org = nullif(current_setting('app.org_v2', true), '')::int`,
      'app.org_v2',
      'SELECT v FROM org_v_mine',
      { 1: 'v-one', 2: 'v-two' },
    ],
    [
      'a function a view calls',
      `CREATE TABLE org_f (org int, v text);
       INSERT INTO org_f VALUES (1, 'f-one'), (2, 'f-two');
       CREATE FUNCTION my_org() RETURNS int LANGUAGE sql STABLE AS
         $$ SELECT nullif(current_setting('app.org_f1', true), '')::int $$;
       CREATE VIEW org_f_mine AS SELECT v FROM org_f WHERE org = my_org();
       GRANT SELECT ON org_f_mine TO ${tenantRole};`,
      `CREATE OR REPLACE FUNCTION my_org() RETURNS int LANGUAGE sql STABLE AS
         $$ SELECT nullif(current_setting('app.org_f2', true), '')::int $$`,
      'app.org_f2',
      'SELECT v FROM org_f_mine',
      { 1: 'f-one', 2: 'f-two' },
    ],
  ])('%s', async (_label, setup, change, setting, readSql, rows) => {
    await admin((client) => client.query(setup));
    const a = await viaEdge();
    const b = await viaEdge();
    // Probes that read the names under the code as it was.
    await a.query(`SELECT set_config('app.unrelated', 'x', false)`);
    await b.query(`SELECT set_config('app.unrelated', 'x', false)`);
    await admin((client) => client.query(change));
    await a.query(`SELECT set_config($1, '1', false)`, [setting]);
    await b.query(`SELECT set_config($1, '2', false)`, [setting]);
    expect((await a.query(readSql)).rows).toEqual([{ v: rows[1] }]);
    expect((await b.query(readSql)).rows).toEqual([{ v: rows[2] }]);
  });
});

describe('sessions racing', () => {
  it('every read returns its own tenant’s rows, over many interleaved rounds', async () => {
    const sessions = await Promise.all([1, 2, 3, 4].map(() => viaEdge()));
    const random = prng(0x5eed);
    const plans = sessions.map(() =>
      Array.from({ length: 40 }, () => ({ tenant: 1 + random(3), how: random(4) })),
    );
    await Promise.all(
      sessions.map(async (client, index) => {
        for (const { tenant, how } of plans[index] as { tenant: number; how: number }[]) {
          if (how === 0) await client.query(`SELECT set_tenant(${tenant})`);
          else if (how === 1) await client.query('SELECT set_tenant($1)', [tenant]);
          else if (how === 2) await client.query(`SET app.tenant = '${tenant}'`);
          else await client.query(`CALL set_tenant_proc(${tenant})`);
          expect(await read(client, how % 2 === 1)).toEqual(ROWS[tenant]);
          expect(await read(client, how % 2 === 0)).toEqual(ROWS[tenant]);
        }
      }),
    );
    expect(stats().hits).toBeGreaterThan(0);
  });
});

describe('sharing', () => {
  it('sessions that called set_tenant(n) with the same n share results', async () => {
    const sessions = await Promise.all([1, 2, 3, 4, 5, 6].map(() => viaEdge()));
    const tenantOf = (index: number) => 1 + (index % 2);
    // set_tenant() is a function the edge does not know: it may write, so it invalidates every
    // read of the cache. The reads come after all of them.
    for (const [index, client] of sessions.entries()) {
      await client.query(`SELECT set_tenant(${tenantOf(index)})`);
    }
    for (let round = 0; round < 3; round++) {
      for (const [index, client] of sessions.entries()) {
        expect(await read(client)).toEqual(ROWS[tenantOf(index)]);
        expect(await read(client, true)).toEqual(ROWS[tenantOf(index)]);
      }
    }
    // Two tenants, two statements: four misses; every other read is a hit.
    expect(stats()).toEqual({ hits: 32, misses: 4 });
  });

  it('sessions that switch tenant with set_config() before every read share results', async () => {
    const sessions = await Promise.all([1, 2, 3, 4].map(() => viaEdge()));
    for (let round = 0; round < 4; round++) {
      for (const [index, client] of sessions.entries()) {
        const tenant = 1 + ((index + round) % 3);
        await client.query(`SELECT set_config('app.tenant', $1, false)`, [String(tenant)]);
        expect(await read(client, true)).toEqual(ROWS[tenant]);
      }
    }
    expect(stats()).toEqual({ hits: 13, misses: 3 });
  });

  it('a pipeline of set_tenant, SET and reads in one write is answered in order', async () => {
    const raw = await RawClient.open(edge.port, id);
    const results = await raw.pipeline(
      [
        serialize.query('SELECT set_tenant(1)'),
        serialize.query(READ),
        serialize.parse({ sql: 'SELECT set_tenant($1)' }),
        serialize.bind({ params: ['2'] }),
        serialize.execute(),
        serialize.sync(),
        serialize.query(READ),
        serialize.query(`SET app.tenant = '3'`),
        serialize.parse({ sql: READ_EXTENDED }),
        serialize.bind({ params: ['0'] }),
        serialize.execute(),
        serialize.sync(),
        serialize.query('SELECT set_tenant(1)'),
      ],
      7,
    );
    const done = [''];
    expect(results).toEqual([done, ROWS[1], done, ROWS[2], ROWS[3], done]);
    // Once the pipeline is answered, reads are cached under the state it left (tenant 1), which
    // another session that ran the same SET text is not in. The pipeline's first read was stored
    // under tenant 1, and set_tenant, known to write nothing, did not drop it.
    expect(await raw.pipeline([serialize.query(READ)], 1)).toEqual([ROWS[1]]);
    expect(await raw.pipeline([serialize.query(READ)], 1)).toEqual([ROWS[1]]);
    const other = await RawClient.open(edge.port, id);
    await other.pipeline([serialize.query(`SET app.tenant = '3'`)], 1);
    expect(await other.pipeline([serialize.query(READ)], 1)).toEqual([ROWS[3]]);
    expect(stats().hits).toBe(2);
    raw.close();
    other.close();
  });
});

describe.each([
  ['the simple protocol', false],
  ['the extended protocol', true],
])('a transaction block that writes, in %s', (_label, extended) => {
  const table = `probe_count_${suffix}_${extended ? 'x' : 's'}`;
  const bump = (client: pg.Client) =>
    extended
      ? client.query(`UPDATE ${table} SET n = n + $1 WHERE id = 1`, [1])
      : client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`);
  // Every probe reads pg_policy; a transaction's own statistics count its scans so far (this
  // query, of a statistics view, is never cached, and reads no pg_policy itself).
  const policyScans = async (client: pg.Client): Promise<number> => {
    const result = await client.query<{ n: number }>(
      `SELECT (seq_scan + coalesce(idx_scan, 0))::int AS n
       FROM pg_catalog.pg_stat_xact_sys_tables WHERE relname = 'pg_policy'`,
    );
    return (result.rows[0] as { n: number }).n;
  };

  beforeAll(async () => {
    await admin(async (client) => {
      await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int)`);
      await client.query(`INSERT INTO ${table} VALUES (1, 0), (2, 0)`);
      await client.query(`GRANT SELECT, UPDATE ON ${table} TO ${tenantRole}`);
    });
  });

  it('is probed once, behind the statement that ends it, and serves nothing before', async () => {
    const a = await viaEdge();
    const b = await viaEdge();
    await b.query('SELECT set_tenant(2)');
    expect(await read(b, extended)).toEqual(ROWS[2]);
    expect(await read(a, extended)).toEqual(ROWS[0]);
    // The measure sees a probe: one goes behind a SET in a block that has not written.
    await a.query('BEGIN');
    const unwritten = await policyScans(a);
    await a.query(`SET LOCAL app.unused = 'x'`);
    expect(await policyScans(a)).toBeGreaterThan(unwritten);
    await a.query('ROLLBACK');
    await a.query('BEGIN');
    await bump(a);
    const first = await policyScans(a);
    await a.query(`SET app.tenant = '2'`);
    await bump(a);
    await bump(a);
    await bump(a);
    // The state is unknown and no probe is out: the read goes to the origin, under tenant 2.
    expect(await read(a, extended)).toEqual(ROWS[2]);
    await bump(a);
    expect(await policyScans(a)).toBe(first);
    await a.query('COMMIT');
    // The probe behind COMMIT found tenant 2: the first read after it is served from b's entry.
    expect(await read(a, extended)).toEqual(ROWS[2]);
    expect(stats()).toEqual({ hits: 1, misses: 2 });
    const rows = await admin((client) => client.query(`SELECT n FROM ${table} WHERE id = 1`));
    expect(rows.rows[0].n).toBe(5);
  });

  it('sent in one write with the read behind it, is answered under the state it left', async () => {
    const raw = await RawClient.open(edge.port, id);
    expect(await raw.pipeline([serialize.query(READ)], 1)).toEqual([ROWS[0]]);
    const results = await raw.pipeline(
      [
        serialize.query('BEGIN'),
        serialize.query(`UPDATE ${table} SET n = n + 1 WHERE id = 2`),
        serialize.query(`SET app.tenant = '3'`),
        serialize.query(`UPDATE ${table} SET n = n + 1 WHERE id = 2`),
        serialize.query(READ),
        serialize.query('COMMIT'),
        serialize.query(READ),
      ],
      7,
    );
    expect(results).toEqual([ROWS[3], ROWS[3]]);
    expect(await raw.pipeline([serialize.query(READ)], 1)).toEqual([ROWS[3]]);
    expect(await raw.pipeline([serialize.query('ROLLBACK')], 1)).toEqual([]);
    expect(await raw.pipeline([serialize.query(READ)], 1)).toEqual([ROWS[3]]);
    raw.close();
  });
});

// A protocol client on a bare socket, for what pg never sends: several statements in one write.
class RawClient {
  readonly #socket: Socket;
  readonly #parser = new BackendParser();
  readonly #messages: BackendMessage[] = [];
  #wake: () => void = () => undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#parser.parse(chunk, (message) => this.#messages.push(message));
      this.#wake();
    });
  }

  static async open(port: number, applicationName: string): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    const client = new RawClient(socket);
    socket.write(
      serialize.startupMessage({
        user: tenantRole,
        database,
        application_name: applicationName,
      }),
    );
    await client.#untilReady(1);
    return client;
  }

  /** Sends `frames` in one write; the first column of each SELECT's rows, once `readies` answers are in. */
  async pipeline(frames: Buffer[], readies: number): Promise<string[][]> {
    this.#messages.length = 0;
    this.#socket.write(Buffer.concat(frames));
    await this.#untilReady(readies);
    const results: string[][] = [];
    let rows: string[] = [];
    for (const message of this.#messages) {
      if (message.kind === 'errorResponse') throw new Error(JSON.stringify(message.fields));
      if (message.kind === 'dataRow') rows.push(dataRowText(message)[0] as string);
      if (message.kind === 'commandComplete') {
        if (message.tag.startsWith('SELECT')) results.push(rows);
        rows = [];
      }
    }
    return results;
  }

  async #untilReady(count: number): Promise<void> {
    for (;;) {
      if (this.#messages.filter((m) => m.kind === 'readyForQuery').length >= count) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}
