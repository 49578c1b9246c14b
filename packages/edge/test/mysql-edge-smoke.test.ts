import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMysqlEdge, type RunningMysqlEdge } from './helpers/mysql-edge.ts';

describe('smoke', () => {
  let edge: RunningMysqlEdge;
  beforeAll(async () => {
    edge = await startMysqlEdge();
  });
  afterAll(async () => {
    await edge?.close();
  });
  it('queries', async () => {
    const conn = await mysql.createConnection({
      host: '127.0.0.1',
      port: edge.port,
      user: 'cch_mysql-root',
      database: 'test',
    });
    const [rows] = await conn.query('select 1 + 1 as two');
    expect(rows).toEqual([{ two: 2 }]);
    await conn.query('create table if not exists smoke_t (id int primary key, v text)');
    await conn.query('delete from smoke_t');
    await conn.query("insert into smoke_t values (1, 'a')");
    const [a] = await conn.query('select v from smoke_t where id = 1');
    const [b] = await conn.query('select v from smoke_t where id = 1');
    expect(a).toEqual([{ v: 'a' }]);
    expect(b).toEqual([{ v: 'a' }]);
    expect(edge.runtime.stats('cch_mysql').hits).toBe(1);
    await conn.query("update smoke_t set v = 'b' where id = 1");
    const [c] = await conn.query('select v from smoke_t where id = 1');
    expect(c).toEqual([{ v: 'b' }]);
    const [d] = await conn.execute('select v from smoke_t where id = ?', [1]);
    const [e] = await conn.execute('select v from smoke_t where id = ?', [1]);
    expect(d).toEqual([{ v: 'b' }]);
    expect(e).toEqual([{ v: 'b' }]);
    expect(edge.runtime.stats('cch_mysql').hits).toBe(2);
    await conn.end();
  });
});
