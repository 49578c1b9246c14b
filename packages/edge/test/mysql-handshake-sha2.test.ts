// The MySQL login relay in front of a caching_sha2_password origin (the scripted MySQL 8.0): mysql2
// logs in through HandshakeRelay by fast auth and by full auth through the origin's RSA key, and a
// wrong password gets the origin's own 1045.
import { authPlugins } from 'mysql2';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes } from '../src/mysql/protocol/index.ts';
import { RELAY_PLUGIN_NAME } from '../src/mysql/session/handshake.ts';
import { CACHE_ID, startTestEdge } from './helpers/handshake-test-edge.ts';
import type { Mode, TestEdge } from './helpers/handshake-test-edge.ts';
import { startScriptedMysqlOrigin } from './helpers/scripted-mysql-origin.ts';
import type { ScriptedMysqlOrigin } from './helpers/scripted-mysql-origin.ts';

const APP = { name: 'app', password: 'app password 8' };

describe.each<Mode>(['origin first', 'client first'])('mysql2 through the relay, %s', (mode) => {
  let origin: ScriptedMysqlOrigin;
  let edge: TestEdge;

  beforeAll(async () => {
    origin = await startScriptedMysqlOrigin({ users: [APP] });
    edge = await startTestEdge(origin, mode);
  });

  afterAll(async () => {
    await new Promise((resolve) => edge?.server.close(resolve));
    await origin?.close();
  });

  const connect = (options: Partial<mysql.ConnectionOptions> = {}) =>
    mysql.createConnection({
      host: '127.0.0.1',
      port: edge.port,
      user: `${CACHE_ID}-${APP.name}`,
      password: APP.password,
      ...options,
    });

  // The origin names the plugin the client's first answer was for: the client's own in an
  // origin-first start, the edge's stand-in (then switched) in a client-first one.
  const firstPlugin =
    mode === 'origin first'
      ? { clientPlugin: codes.CACHING_SHA2_PASSWORD, switched: false }
      : { clientPlugin: RELAY_PLUGIN_NAME, switched: true };

  it("a user the origin has not cached logs in by full auth through the origin's RSA key", async () => {
    origin.flushCache();
    const keys: string[] = [];
    const connection = await connect({
      allowPublicKeyRetrieval: true,
      authPlugins: {
        caching_sha2_password: authPlugins.caching_sha2_password({
          onServerPublicKey: (key: Buffer) => keys.push(key.toString('latin1')),
        }),
      },
    });
    try {
      const [rows] = await connection.query('SELECT 1');
      expect(rows).toEqual([{ 1: '1' }]);
    } finally {
      await connection.end();
    }
    expect(keys).toEqual([origin.publicKeyPem]);
    expect(origin.logins.at(-1)).toMatchObject({ user: APP.name, path: 'fullAuthRsa' });
    expect(edge.logins.at(-1)).toMatchObject({ cacheId: CACHE_ID, originUser: APP.name });
  });

  it('then the same user logs in by fast auth', async () => {
    const connection = await connect();
    try {
      const [rows] = await connection.query('SELECT 1');
      expect(rows).toEqual([{ 1: '1' }]);
    } finally {
      await connection.end();
    }
    expect(origin.logins.at(-1)).toMatchObject({ path: 'fastAuth', ...firstPlugin });
  });

  it("a wrong password gets the origin's own 1045", async () => {
    await expect(
      connect({ password: 'wrong', allowPublicKeyRetrieval: true }),
    ).rejects.toMatchObject({
      errno: 1045,
      sqlState: '28000',
      message: "Access denied for user 'app'@'127.0.0.1' (using password: YES)",
    });
    expect(origin.logins.at(-1)).toMatchObject({ path: 'denied' });
  });
});
