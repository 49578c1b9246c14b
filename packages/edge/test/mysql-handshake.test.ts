// The MySQL login relay: what the client is offered, how the login is mapped, and real clients
// (mysql2, the mariadb connector, the mariadb CLI) logging in to a throwaway MariaDB through it.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import mariadb from 'mariadb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PacketParser,
  ProtocolError,
  codes,
  decodeClientHandshake,
  decodeErr,
  decodeHandshakeV10,
  serialize,
} from '../src/mysql/protocol/index.ts';
import type { Packet } from '../src/mysql/protocol/index.ts';
import { HandshakeRelay, RELAY_PLUGIN_NAME } from '../src/mysql/session/handshake.ts';
import type { HandshakeAction } from '../src/mysql/session/handshake.ts';
import { CACHE_ID, startTestEdge } from './helpers/handshake-test-edge.ts';
import type { Mode, TestEdge } from './helpers/handshake-test-edge.ts';
import { prng } from './helpers/prng.ts';
import { createSelfSignedCertificate } from './helpers/throwaway-cluster.ts';
import { startThrowawayMariadb } from './helpers/throwaway-mariadb.ts';
import type { ThrowawayMariadb } from './helpers/throwaway-mariadb.ts';
import { hex, mariadbHandshake, mysql2Login, mysql8Handshake } from './mysql-protocol-fixtures.ts';

function unframe(action: HandshakeAction | undefined): Packet {
  if (action === undefined || (action.kind !== 'toClient' && action.kind !== 'toOrigin')) {
    throw new Error(`expected bytes, got ${JSON.stringify(action)}`);
  }
  const packets: Packet[] = [];
  new PacketParser().parse(action.bytes, (packet) => void packets.push(packet));
  expect(packets).toHaveLength(1);
  return packets[0] as Packet;
}

const asPacket = (sequenceId: number, payload: Buffer): Packet => ({
  sequenceId,
  lastSequenceId: sequenceId,
  pieces: 1,
  payload,
  chunkOffset: -1,
});

function login(
  username: string,
  extra: Partial<Parameters<typeof serialize.handshakeResponse41>[0]> = {},
) {
  return serialize.handshakeResponse41({
    capabilities:
      codes.CLIENT_PROTOCOL_41 |
      codes.CLIENT_SECURE_CONNECTION |
      codes.CLIENT_PLUGIN_AUTH |
      codes.CLIENT_TRANSACTIONS |
      codes.CLIENT_DEPRECATE_EOF |
      codes.CLIENT_SESSION_TRACK |
      codes.CLIENT_COMPRESS |
      codes.CLIENT_CONNECT_WITH_DB,
    mariadbCapabilities: 0,
    maxPacketSize: 1 << 24,
    characterSet: codes.UTF8MB4_GENERAL_CI,
    username,
    authResponse: hex('0102030405060708090a0b0c0d0e0f1011121314'),
    database: 'app',
    authPluginName: codes.MYSQL_NATIVE_PASSWORD,
    ...extra,
  });
}

describe('what the client is offered', () => {
  it("origin first: MariaDB's scramble and version; compression and metadata caching refused", () => {
    const relay = HandshakeRelay.originFirst(mariadbHandshake, { tls: false });
    const greeting = decodeHandshakeV10(unframe(relay.greet()[0]).payload);
    const origin = decodeHandshakeV10(mariadbHandshake);
    expect(greeting.authPluginData).toEqual(origin.authPluginData);
    expect(greeting.serverVersion).toBe(origin.serverVersion);
    expect(greeting.capabilities & codes.CLIENT_COMPRESS).toBe(0);
    expect(greeting.capabilities & codes.CLIENT_SSL).toBe(0);
    expect(greeting.capabilities & codes.CLIENT_DEPRECATE_EOF).not.toBe(0);
    expect(greeting.capabilities & codes.CLIENT_MYSQL).toBe(0);
    expect(greeting.mariadbCapabilities).toBe(
      codes.MARIADB_CLIENT_PROGRESS |
        codes.MARIADB_CLIENT_STMT_BULK_OPERATIONS |
        codes.MARIADB_CLIENT_EXTENDED_TYPE_INFO,
    );
  });

  it('origin first: CLIENT_SSL follows the edge, query attributes follow the origin', () => {
    const withTls = HandshakeRelay.originFirst(mysql8Handshake, { tls: true });
    const greeting = decodeHandshakeV10(unframe(withTls.greet()[0]).payload);
    expect(greeting.capabilities & codes.CLIENT_SSL).not.toBe(0);
    expect(greeting.capabilities & codes.CLIENT_QUERY_ATTRIBUTES).not.toBe(0);
    expect(greeting.capabilities & codes.CLIENT_ZSTD_COMPRESSION_ALGORITHM).toBe(0);
    expect(greeting.authPluginName).toBe(codes.CACHING_SHA2_PASSWORD);
    const mariadbOrigin = HandshakeRelay.originFirst(mariadbHandshake, { tls: true });
    expect(mariadbOrigin.offeredCapabilities & codes.CLIENT_QUERY_ATTRIBUTES).toBe(0);
  });

  it('client first: its own scramble and what every supported origin has', () => {
    const scramble = Buffer.from('abcdefghijklmnopqrst');
    const relay = HandshakeRelay.clientFirst({ tls: false, scramble });
    const greeting = decodeHandshakeV10(unframe(relay.greet()[0]).payload);
    expect(greeting.authPluginData).toEqual(scramble);
    expect(greeting.authPluginName).toBe(codes.MYSQL_NATIVE_PASSWORD);
    expect(greeting.capabilities & codes.CLIENT_QUERY_ATTRIBUTES).toBe(0);
    expect(greeting.capabilities & codes.CLIENT_SSL).toBe(0);
    expect(greeting.capabilities & codes.CLIENT_MYSQL).not.toBe(0);
    expect(
      HandshakeRelay.clientFirst({ tls: true }).offeredCapabilities & codes.CLIENT_SSL,
    ).not.toBe(0);
  });
});

describe('mapping the login', () => {
  it('origin first: the user loses its cache id, the auth reply passes unchanged, compression is dropped', () => {
    const relay = HandshakeRelay.originFirst(mariadbHandshake, { tls: false });
    relay.greet();
    const [toOrigin] = relay.onClientPacket(asPacket(1, login(`${CACHE_ID}-app`)));
    const forwarded = unframe(toOrigin);
    expect(forwarded.sequenceId).toBe(1);
    const mapped = decodeClientHandshake(forwarded.payload);
    expect(mapped).toMatchObject({
      kind: 'handshakeResponse',
      username: 'app',
      database: 'app',
      authPluginName: codes.MYSQL_NATIVE_PASSWORD,
      authResponse: hex('0102030405060708090a0b0c0d0e0f1011121314'),
    });
    expect(mapped.capabilities & codes.CLIENT_COMPRESS).toBe(0);
    const ok = serialize.okPacket(
      { statusFlags: codes.SERVER_STATUS_AUTOCOMMIT },
      mapped.capabilities,
    );
    const actions = relay.onOriginPacket(asPacket(2, ok));
    expect(unframe(actions[0])).toMatchObject({ sequenceId: 2, payload: ok });
    expect(actions[1]).toMatchObject({
      kind: 'authenticated',
      login: { cacheId: CACHE_ID, originUser: 'app', statusFlags: codes.SERVER_STATUS_AUTOCOMMIT },
    });
  });

  it("client first: the origin is opened for the cache id, then asked to switch to the user's plugin", () => {
    const relay = HandshakeRelay.clientFirst({ tls: false });
    relay.greet();
    expect(relay.onClientPacket(asPacket(1, login(`${CACHE_ID}-app-user`)))).toEqual([
      { kind: 'openOrigin', cacheId: CACHE_ID, originUser: 'app-user' },
    ]);
    const mapped = decodeClientHandshake(
      unframe(relay.onOriginPacket(asPacket(0, mariadbHandshake))[0]).payload,
    );
    expect(mapped).toMatchObject({
      username: 'app-user',
      authPluginName: RELAY_PLUGIN_NAME,
      authResponse: Buffer.alloc(0),
    });
    // The origin's switch request reaches the client with the client's next sequence id.
    const switchRequest = serialize.authSwitchRequest(
      codes.MYSQL_NATIVE_PASSWORD,
      hex('41'.repeat(20) + '00'),
    );
    expect(unframe(relay.onOriginPacket(asPacket(2, switchRequest))[0])).toMatchObject({
      sequenceId: 2,
      payload: switchRequest,
    });
    const reply = unframe(relay.onClientPacket(asPacket(3, hex('aa'.repeat(20))))[0]);
    expect(reply).toMatchObject({ sequenceId: 3, payload: hex('aa'.repeat(20)) });
  });

  it('after an SSLRequest the client link upgrades, and sequence ids move on by one', () => {
    const relay = HandshakeRelay.clientFirst({ tls: true });
    relay.greet();
    const ssl = serialize.sslRequest({
      capabilities: codes.CLIENT_PROTOCOL_41 | codes.CLIENT_SSL | codes.CLIENT_PLUGIN_AUTH,
      maxPacketSize: 0,
      characterSet: 45,
    });
    expect(relay.onClientPacket(asPacket(1, ssl))).toEqual([{ kind: 'startClientTls' }]);
    expect(relay.onClientPacket(asPacket(2, login(`${CACHE_ID}-app`)))[0]).toMatchObject({
      kind: 'openOrigin',
    });
    relay.onOriginPacket(asPacket(0, mariadbHandshake));
    const err = serialize.errPacket({ code: 1045, sqlState: '28000', message: 'Access denied' });
    const [toClient, failed] = relay.onOriginPacket(asPacket(2, err));
    expect(unframe(toClient)).toMatchObject({ sequenceId: 3, payload: err });
    expect(failed).toMatchObject({ kind: 'failed' });
  });

  it.each([['no TLS at the edge', { tls: false }, 1043]])(
    'an SSLRequest with %s is refused',
    (_label, options, code) => {
      const relay = HandshakeRelay.clientFirst(options);
      const ssl = serialize.sslRequest({
        capabilities: codes.CLIENT_PROTOCOL_41 | codes.CLIENT_SSL,
        maxPacketSize: 0,
        characterSet: 45,
      });
      const [toClient, failed] = relay.onClientPacket(asPacket(1, ssl));
      expect(decodeErr(unframe(toClient).payload, codes.CLIENT_PROTOCOL_41)).toMatchObject({
        code,
      });
      expect(failed).toMatchObject({ kind: 'failed' });
    },
  );

  it.each(['app', '-app', `${CACHE_ID}-`])(
    'a user without a cache id (%s) gets 1045 saying so',
    (user) => {
      const relay = HandshakeRelay.clientFirst({ tls: false });
      const [toClient] = relay.onClientPacket(asPacket(1, login(user)));
      expect(decodeErr(unframe(toClient).payload, codes.CLIENT_PROTOCOL_41)).toMatchObject({
        code: codes.ER_ACCESS_DENIED_ERROR,
        sqlState: '28000',
        message: expect.stringMatching(/no cache id: connect as CACHE_ID-user/),
      });
    },
  );

  it('client first: a client without plugin auth cannot be switched, so it is refused', () => {
    const relay = HandshakeRelay.clientFirst({ tls: false });
    const [toClient] = relay.onClientPacket(
      asPacket(
        1,
        login(`${CACHE_ID}-app`, {
          capabilities: codes.CLIENT_PROTOCOL_41 | codes.CLIENT_SECURE_CONNECTION,
          authPluginName: null,
        }),
      ),
    );
    expect(decodeErr(unframe(toClient).payload, codes.CLIENT_PROTOCOL_41)).toMatchObject({
      code: codes.ER_NOT_SUPPORTED_AUTH_MODE,
    });
  });

  it('client first: an origin that lacks a capability the client agreed to fails the login', () => {
    const old = Buffer.from(mysql8Handshake);
    const capabilitiesAt = 1 + '8.0.36\0'.length + 4 + 8 + 1;
    // Clear CLIENT_DEPRECATE_EOF (bit 24) in the high capability word.
    old.writeUInt16LE(
      old.readUInt16LE(capabilitiesAt + 5) & ~(codes.CLIENT_DEPRECATE_EOF >>> 16),
      capabilitiesAt + 5,
    );
    expect(decodeHandshakeV10(old).capabilities & codes.CLIENT_DEPRECATE_EOF).toBe(0);
    const relay = HandshakeRelay.clientFirst({ tls: false });
    relay.onClientPacket(asPacket(1, login(`${CACHE_ID}-app`)));
    const [toClient, failed] = relay.onOriginPacket(asPacket(0, old));
    expect(decodeErr(unframe(toClient).payload, codes.CLIENT_PROTOCOL_41)).toMatchObject({
      code: codes.ER_HANDSHAKE_ERROR,
      message: expect.stringMatching(/lacks capabilities/),
    });
    expect(failed).toMatchObject({ kind: 'failed' });
  });

  it('a client packet with the wrong sequence id ends the login with 1156', () => {
    const relay = HandshakeRelay.clientFirst({ tls: false });
    relay.greet();
    const [toClient, failed] = relay.onClientPacket(asPacket(3, login(`${CACHE_ID}-app`)));
    expect(decodeErr(unframe(toClient).payload, codes.CLIENT_PROTOCOL_41)).toMatchObject({
      code: codes.ER_NET_PACKETS_OUT_OF_ORDER,
      sqlState: '08S01',
    });
    expect(failed).toMatchObject({ kind: 'failed' });
  });

  it('an origin packet out of turn, or out of sequence, ends the login', () => {
    const early = HandshakeRelay.originFirst(mariadbHandshake, { tls: false });
    early.greet();
    expect(early.onOriginPacket(asPacket(1, hex('00000002000000'))).at(-1)).toMatchObject({
      kind: 'failed',
    });
    const late = HandshakeRelay.originFirst(mariadbHandshake, { tls: false });
    late.onClientPacket(asPacket(1, login(`${CACHE_ID}-app`)));
    const [toClient] = late.onOriginPacket(asPacket(5, hex('00000002000000')));
    expect(decodeErr(unframe(toClient).payload, codes.CLIENT_PROTOCOL_41)).toMatchObject({
      code: codes.ER_NET_PACKETS_OUT_OF_ORDER,
    });
  });

  it('mutated logins and origin answers only ever yield actions or a ProtocolError', () => {
    const random = prng(0x10c1);
    const outcomes = { actions: 0, rejected: 0 };
    const inputs = [login(`${CACHE_ID}-app`), mysql2Login, mariadbHandshake, mysql8Handshake];
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(inputs[random(inputs.length)] as Buffer);
      for (let n = 1 + random(3); n > 0; n--) bytes[random(bytes.length)] = random(256);
      const cut = bytes.subarray(0, random(4) === 0 ? random(bytes.length) : bytes.length);
      const relay =
        random(2) === 0
          ? HandshakeRelay.clientFirst({ tls: random(2) === 0 })
          : HandshakeRelay.originFirst(mariadbHandshake, { tls: false });
      try {
        const first = relay.onClientPacket(asPacket(1, cut));
        if (first[0]?.kind === 'openOrigin') relay.onOriginPacket(asPacket(0, cut));
        outcomes.actions++;
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        outcomes.rejected++;
      }
    }
    expect(outcomes.actions).toBeGreaterThan(500);
    expect(outcomes.rejected).toBeGreaterThan(500);
  });

  it("mysql2's captured login maps too", () => {
    const relay = HandshakeRelay.originFirst(mariadbHandshake, { tls: false });
    const renamed = Buffer.concat([
      mysql2Login.subarray(0, 32),
      Buffer.from(`${CACHE_ID}-`),
      mysql2Login.subarray(32),
    ]);
    const mapped = decodeClientHandshake(
      unframe(relay.onClientPacket(asPacket(1, renamed))[0]).payload,
    );
    expect(mapped).toMatchObject({
      username: 'root',
      database: 'test',
      connectAttributes: [
        ['_client_name', 'Node-MySQL-2'],
        ['_client_version', '3.26.1'],
      ],
    });
  });
});

let origin: ThrowawayMariadb;

beforeAll(async () => {
  origin = await startThrowawayMariadb();
}, 180_000);

afterAll(async () => {
  await origin?.stop();
});

describe.each<Mode>(['origin first', 'client first'])(
  'real clients through the relay, %s',
  (mode) => {
    let edge: TestEdge;
    let port: number;

    beforeAll(async () => {
      edge = await startTestEdge(origin, mode);
      port = edge.port;
    });

    afterAll(async () => {
      await new Promise((resolve) => edge.server.close(resolve));
    });

    it('mysql2 logs in with mysql_native_password and reads the table', async () => {
      const connection = await mysql.createConnection({
        host: '127.0.0.1',
        port,
        user: `${CACHE_ID}-${origin.users.native}`,
        password: origin.password(origin.users.native),
        database: origin.database,
      });
      try {
        const [rows] = await connection.query(
          'SELECT CURRENT_USER() AS who, (SELECT name FROM items WHERE id = 2) AS name',
        );
        expect(rows).toEqual([{ who: `${origin.users.native}@%`, name: 'bellows' }]);
      } finally {
        await connection.end();
      }
    });

    it('a wrong password gets the origin’s own 1045, naming the origin user', async () => {
      const attempt = mysql.createConnection({
        host: '127.0.0.1',
        port,
        user: `${CACHE_ID}-${origin.users.native}`,
        password: 'not-the-password',
      });
      await expect(attempt).rejects.toMatchObject({
        errno: 1045,
        sqlState: '28000',
        message: expect.stringContaining(`'${origin.users.native}'@`),
      });
    });

    it('the mariadb connector logs in with ed25519 and with mysql_native_password', async () => {
      for (const user of [origin.users.ed25519, origin.users.native]) {
        const connection = await mariadb.createConnection({
          host: '127.0.0.1',
          port,
          user: `${CACHE_ID}-${user}`,
          password: origin.password(user),
          database: origin.database,
        });
        try {
          const rows = await connection.query('SELECT CURRENT_USER() AS who');
          expect(rows[0].who).toBe(`${user}@%`);
        } finally {
          await connection.end();
        }
      }
    });

    it('the mariadb command-line client logs in with each plugin', async () => {
      for (const user of [origin.users.native, origin.users.ed25519]) {
        const output = await new Promise<string>((resolve, reject) =>
          execFile(
            'mariadb',
            [
              '--no-defaults',
              '--protocol=tcp',
              '-h',
              '127.0.0.1',
              '-P',
              String(port),
              '-u',
              `${CACHE_ID}-${user}`,
              `--password=${origin.password(user)}`,
              '--skip-ssl',
              '--batch',
              '--skip-column-names',
              '-e',
              'SELECT CURRENT_USER()',
            ],
            { timeout: 15_000 },
            (error, stdout, stderr) =>
              error ? reject(new Error(stderr || error.message)) : resolve(stdout),
          ),
        );
        expect(output.trim()).toBe(`${user}@%`);
      }
    });

    it('a user without a cache id, or with an unknown one, is refused by the edge', async () => {
      await expect(
        mysql.createConnection({
          host: '127.0.0.1',
          port,
          user: origin.users.native,
          password: 'x',
        }),
      ).rejects.toMatchObject({ errno: 1045, message: expect.stringMatching(/no cache id/) });
      if (mode === 'client first') {
        await expect(
          mysql.createConnection({
            host: '127.0.0.1',
            port,
            user: `cch_nope-${origin.users.native}`,
            password: 'x',
          }),
        ).rejects.toMatchObject({ errno: 1045, message: 'there is no cache "cch_nope"' });
      }
    });
  },
);

describe.each<Mode>(['origin first', 'client first'])('TLS at the edge, %s', (mode) => {
  let edge: TestEdge;
  let dir: string;
  let cert: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'edge-mysql-tls-'));
    const files = await createSelfSignedCertificate(dir);
    cert = await readFile(files.certPath);
    edge = await startTestEdge(origin, mode, { key: await readFile(files.keyPath), cert });
  });

  afterAll(async () => {
    await new Promise((resolve) => edge?.server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('mysql2 asks for TLS, verifies the edge certificate, and logs in over it', async () => {
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: edge.port,
      user: `${CACHE_ID}-${origin.users.native}`,
      password: origin.password(origin.users.native),
      ssl: { ca: cert.toString() },
    });
    try {
      const [rows] = await connection.query('SELECT CURRENT_USER() AS who');
      expect(rows).toEqual([{ who: `${origin.users.native}@%` }]);
    } finally {
      await connection.end();
    }
    expect(edge.logins.at(-1)).toMatchObject({ clientTls: true, originUser: origin.users.native });
    expect((edge.logins.at(-1)?.capabilities ?? 0) & codes.CLIENT_SSL).toBe(0);
  });

  it('the mariadb connector logs in over TLS with ed25519', async () => {
    // The connector checks the name it resolved (localhost), not the address it was given; its
    // types omit the tls.connect option it passes on.
    const ssl: tls.ConnectionOptions = {
      ca: cert.toString(),
      checkServerIdentity: (_host, peer) => tls.checkServerIdentity('127.0.0.1', peer),
    };
    const connection = await mariadb.createConnection({
      host: '127.0.0.1',
      port: edge.port,
      user: `${CACHE_ID}-${origin.users.ed25519}`,
      password: origin.password(origin.users.ed25519),
      ssl,
    });
    try {
      const rows = await connection.query('SELECT CURRENT_USER() AS who');
      expect(rows[0].who).toBe(`${origin.users.ed25519}@%`);
    } finally {
      await connection.end();
    }
    expect(edge.logins.at(-1)).toMatchObject({ clientTls: true });
  });

  it('a client that does not ask for TLS still logs in in clear text', async () => {
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: edge.port,
      user: `${CACHE_ID}-${origin.users.native}`,
      password: origin.password(origin.users.native),
    });
    await connection.end();
    expect(edge.logins.at(-1)).toMatchObject({ clientTls: false });
  });
});
