// The scripted MySQL 8.0 origin against real clients (mysql2, the mariadb connector) and against
// hand-built packets, so the edge's caching_sha2_password relay is tested against a correct server.
import { constants, createHash, publicEncrypt } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mariadb from 'mariadb';
import { authPlugins } from 'mysql2';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  PacketParser,
  codes,
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeErr,
  decodeHandshakeV10,
  decodeOk,
  serialize,
} from '../src/mysql/protocol/index.ts';
import type { Packet } from '../src/mysql/protocol/index.ts';
import { RELAY_PLUGIN_NAME } from '../src/mysql/session/handshake.ts';
import { createSelfSignedCertificate } from './helpers/throwaway-cluster.ts';
import { startScriptedMysqlOrigin } from './helpers/scripted-mysql-origin.ts';
import type { ScriptedMysqlOrigin } from './helpers/scripted-mysql-origin.ts';

const APP = { name: 'app', password: 'app password 8' };
const EMPTY = { name: 'nopass', password: '' };

let dir: string;
let cert: string;
let key: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'scripted-mysql-'));
  const files = await createSelfSignedCertificate(dir);
  cert = await readFile(files.certPath, 'utf8');
  key = await readFile(files.keyPath, 'utf8');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let origin: ScriptedMysqlOrigin | null = null;

afterEach(async () => {
  await origin?.close();
  origin = null;
});

async function start(options: { warmCache: boolean; tls?: boolean }): Promise<ScriptedMysqlOrigin> {
  origin = await startScriptedMysqlOrigin({
    users: [APP, EMPTY],
    warmCache: options.warmCache,
    tls: options.tls === true ? { key, cert } : null,
  });
  return origin;
}

function connect(
  server: ScriptedMysqlOrigin,
  extra: Partial<mysql.ConnectionOptions> = {},
): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: server.host,
    port: server.port,
    user: APP.name,
    password: APP.password,
    ...extra,
  });
}

async function selectOne(connection: mysql.Connection): Promise<unknown> {
  try {
    const [rows] = await connection.query('SELECT 1');
    await connection.ping();
    return rows;
  } finally {
    await connection.end();
  }
}

describe('mysql2 logging in with caching_sha2_password', () => {
  it('a cached user logs in by fast auth, then queries and pings', async () => {
    const server = await start({ warmCache: true });
    expect(await selectOne(await connect(server))).toEqual([{ 1: '1' }]);
    expect(server.logins).toEqual([
      {
        user: APP.name,
        clientPlugin: codes.CACHING_SHA2_PASSWORD,
        switched: false,
        tls: false,
        path: 'fastAuth',
      },
    ]);
    expect(server.queries).toEqual(['SELECT 1']);
  });

  it('an uncached user sends the password over TLS; the next login is fast, even without TLS', async () => {
    const server = await start({ warmCache: false, tls: true });
    expect(await selectOne(await connect(server, { ssl: { ca: cert } }))).toEqual([{ 1: '1' }]);
    expect(await selectOne(await connect(server))).toEqual([{ 1: '1' }]);
    expect(server.logins.map((login) => [login.path, login.tls])).toEqual([
      ['fullAuthTls', true],
      ['fastAuth', false],
    ]);
  });

  it('without TLS the client fetches the RSA public key and sends the password encrypted', async () => {
    const server = await start({ warmCache: false });
    const keys: string[] = [];
    const connection = await connect(server, {
      allowPublicKeyRetrieval: true,
      // A plugin of its own makes mysql2 start with mysql_native_password: the server switches it.
      authPlugins: {
        caching_sha2_password: authPlugins.caching_sha2_password({
          onServerPublicKey: (data: Buffer) => keys.push(data.toString('latin1')),
        }),
      },
    });
    expect(await selectOne(connection)).toEqual([{ 1: '1' }]);
    expect(keys).toEqual([server.publicKeyPem]);
    expect(server.logins).toEqual([
      {
        user: APP.name,
        clientPlugin: codes.MYSQL_NATIVE_PASSWORD,
        switched: true,
        tls: false,
        path: 'fullAuthRsa',
      },
    ]);
  });

  it('a client that already holds the public key sends the ciphertext without asking', async () => {
    const server = await start({ warmCache: false });
    const connection = await connect(server, { serverPublicKey: server.publicKeyPem });
    expect(await selectOne(connection)).toEqual([{ 1: '1' }]);
    expect(server.logins.at(-1)?.path).toBe('fullAuthRsa');
  });

  it.each([
    ['cold, over TLS', false, true],
    ['cold, through the RSA key', false, false],
    ['warm: fast auth fails, then full auth', true, false],
  ])('a wrong password is refused with 1045 28000, %s', async (_name, warmCache, overTls) => {
    const server = await start({ warmCache, tls: overTls });
    const extra = overTls ? { ssl: { ca: cert } } : { allowPublicKeyRetrieval: true };
    await expect(connect(server, { ...extra, password: 'wrong' })).rejects.toMatchObject({
      errno: 1045,
      sqlState: '28000',
      message: "Access denied for user 'app'@'127.0.0.1' (using password: YES)",
    });
    expect(server.logins.map((login) => login.path)).toEqual(['denied']);
  });

  it('an unknown user is refused like a wrong password', async () => {
    const server = await start({ warmCache: true });
    await expect(
      connect(server, { user: 'nobody', allowPublicKeyRetrieval: true }),
    ).rejects.toMatchObject({ errno: 1045, sqlState: '28000' });
  });

  it('a user with an empty password logs in with an empty answer', async () => {
    const server = await start({ warmCache: false });
    const connection = await connect(server, { user: EMPTY.name, password: '' });
    expect(await selectOne(connection)).toEqual([{ 1: '1' }]);
    expect(server.logins.at(-1)?.path).toBe('emptyPassword');
  });
});

describe('the mariadb connector (CLIENT_DEPRECATE_EOF)', () => {
  it('logs in by full auth through the RSA key, then by fast auth', async () => {
    const server = await start({ warmCache: false });
    for (const expected of ['fullAuthRsa', 'fastAuth']) {
      const connection = await mariadb.createConnection({
        host: server.host,
        port: server.port,
        user: APP.name,
        password: APP.password,
        allowPublicKeyRetrieval: true,
      });
      try {
        expect(await connection.query('SELECT 1')).toEqual([{ 1: '1' }]);
      } finally {
        await connection.end();
      }
      expect(server.logins.at(-1)?.path).toBe(expected);
    }
  });
});

// A client made of the codec's own serializer, to check the bytes and sequence ids.
class RawClient {
  readonly #socket: net.Socket;
  readonly #parser = new PacketParser();
  readonly #packets: Packet[] = [];
  #waiter: (() => void) | null = null;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#parser.parse(chunk, (packet) => void this.#packets.push(packet));
      this.#waiter?.();
    });
  }

  static async open(server: ScriptedMysqlOrigin): Promise<RawClient> {
    const socket = net.connect(server.port, server.host);
    await new Promise((resolve) => socket.once('connect', resolve));
    return new RawClient(socket);
  }

  async next(): Promise<Packet> {
    while (this.#packets.length === 0) {
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    return this.#packets.shift() as Packet;
  }

  send(sequenceId: number, payload: Buffer): void {
    this.#socket.write(serialize.packet(sequenceId, payload));
  }

  close(): void {
    this.#socket.destroy();
  }
}

const sha256 = (...parts: Buffer[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};

// The client's caching_sha2_password scramble, written out independently of the server's check.
function sha2Token(password: string, nonce: Buffer): Buffer {
  const stage1 = sha256(Buffer.from(password));
  const mask = sha256(sha256(stage1), nonce);
  return Buffer.from(stage1.map((byte, i) => byte ^ (mask[i] as number)));
}

const CLIENT_CAPABILITIES =
  codes.CLIENT_LONG_PASSWORD |
  codes.CLIENT_PROTOCOL_41 |
  codes.CLIENT_SECURE_CONNECTION |
  codes.CLIENT_PLUGIN_AUTH |
  codes.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA |
  codes.CLIENT_TRANSACTIONS |
  codes.CLIENT_SESSION_TRACK;

function handshakeResponse(pluginName: string, authResponse: Buffer, capabilities = 0): Buffer {
  return serialize.handshakeResponse41({
    capabilities: CLIENT_CAPABILITIES | capabilities,
    maxPacketSize: 1 << 24,
    characterSet: codes.UTF8MB4_GENERAL_CI,
    username: APP.name,
    authResponse,
    authPluginName: pluginName,
  });
}

describe('the bytes on the wire', () => {
  it('greets as MySQL 8.0: caching_sha2_password, a fresh 20-byte scramble, no compression', async () => {
    const server = await start({ warmCache: true, tls: true });
    const scrambles: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await RawClient.open(server);
      const packet = await client.next();
      client.close();
      expect(packet.sequenceId).toBe(0);
      const greeting = decodeHandshakeV10(packet.payload);
      expect(greeting.serverVersion).toMatch(/^8\.0\./);
      expect(greeting.authPluginName).toBe(codes.CACHING_SHA2_PASSWORD);
      expect(greeting.authPluginData).toHaveLength(20);
      expect(greeting.authPluginData.includes(0)).toBe(false);
      expect(greeting.capabilities & codes.CLIENT_MYSQL).not.toBe(0);
      expect(greeting.capabilities & codes.CLIENT_SSL).not.toBe(0);
      expect(greeting.capabilities & codes.CLIENT_DEPRECATE_EOF).not.toBe(0);
      expect(greeting.capabilities & codes.CLIENT_QUERY_ATTRIBUTES).not.toBe(0);
      expect(greeting.capabilities & codes.CLIENT_COMPRESS).toBe(0);
      expect(greeting.statusFlags).toBe(codes.SERVER_STATUS_AUTOCOMMIT);
      // The auth data length byte counts the scramble's NUL terminator.
      expect(packet.payload[1 + '8.0.36'.length + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2]).toBe(21);
      scrambles.push(greeting.authPluginData);
    }
    expect(scrambles[0]).not.toEqual(scrambles[1]);
  });

  it.each([codes.MYSQL_NATIVE_PASSWORD, RELAY_PLUGIN_NAME])(
    'a login naming %s is switched to caching_sha2_password with a new scramble',
    async (plugin) => {
      const server = await start({ warmCache: true });
      const client = await RawClient.open(server);
      try {
        const greeting = decodeHandshakeV10((await client.next()).payload);
        client.send(1, handshakeResponse(plugin, Buffer.alloc(0)));
        const switchPacket = await client.next();
        expect(switchPacket.sequenceId).toBe(2);
        const request = decodeAuthSwitchRequest(switchPacket.payload);
        expect(request.pluginName).toBe(codes.CACHING_SHA2_PASSWORD);
        expect(request.pluginData).toHaveLength(21);
        expect(request.pluginData[20]).toBe(0);
        const nonce = request.pluginData.subarray(0, 20);
        expect(nonce).not.toEqual(greeting.authPluginData);
        client.send(3, sha2Token(APP.password, nonce));
        const fast = await client.next();
        expect(fast).toMatchObject({ sequenceId: 4 });
        expect(fast.payload).toEqual(Buffer.from([codes.AUTH_MORE_DATA_HEADER, 0x03]));
        const ok = await client.next();
        expect(ok.sequenceId).toBe(5);
        expect(decodeOk(ok.payload, CLIENT_CAPABILITIES).statusFlags).toBe(
          codes.SERVER_STATUS_AUTOCOMMIT,
        );
      } finally {
        client.close();
      }
    },
  );

  it('full auth: 0x01 0x04, the PEM key on 0x02, then OK for the RSA-encrypted password', async () => {
    const server = await start({ warmCache: false });
    const client = await RawClient.open(server);
    try {
      const nonce = decodeHandshakeV10((await client.next()).payload).authPluginData;
      client.send(
        1,
        handshakeResponse(codes.CACHING_SHA2_PASSWORD, sha2Token(APP.password, nonce)),
      );
      expect((await client.next()).payload).toEqual(Buffer.from([0x01, 0x04]));
      client.send(3, Buffer.from([0x02]));
      const keyPacket = await client.next();
      expect(keyPacket.sequenceId).toBe(4);
      const pem = decodeAuthMoreData(keyPacket.payload).toString('latin1');
      expect(pem).toBe(server.publicKeyPem);
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      const masked = Buffer.from(
        Buffer.from(`${APP.password}\0`).map((byte, i) => byte ^ (nonce[i % 20] as number)),
      );
      client.send(
        5,
        publicEncrypt(
          { key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
          masked,
        ),
      );
      const ok = await client.next();
      expect(ok.sequenceId).toBe(6);
      expect(ok.payload[0]).toBe(codes.OK_HEADER);
    } finally {
      client.close();
    }
  });

  it('a result set under CLIENT_DEPRECATE_EOF ends with an OK whose header is 0xfe', async () => {
    const server = await start({ warmCache: true });
    const client = await RawClient.open(server);
    const capabilities = CLIENT_CAPABILITIES | codes.CLIENT_DEPRECATE_EOF;
    try {
      const nonce = decodeHandshakeV10((await client.next()).payload).authPluginData;
      client.send(
        1,
        handshakeResponse(
          codes.CACHING_SHA2_PASSWORD,
          sha2Token(APP.password, nonce),
          codes.CLIENT_DEPRECATE_EOF,
        ),
      );
      await client.next();
      await client.next();
      client.send(0, serialize.command(codes.COM_QUERY, 'SELECT 1'));
      const packets = [];
      for (let i = 0; i < 4; i++) packets.push(await client.next());
      expect(packets.map((packet) => packet.sequenceId)).toEqual([1, 2, 3, 4]);
      expect(packets[0]?.payload).toEqual(Buffer.from([1]));
      expect(packets[2]?.payload).toEqual(Buffer.from([1, 0x31]));
      const end = packets[3]?.payload as Buffer;
      expect(end[0]).toBe(codes.EOF_HEADER);
      expect(decodeOk(end, capabilities).statusFlags).toBe(codes.SERVER_STATUS_AUTOCOMMIT);
      client.send(0, serialize.command(codes.COM_PING));
      expect(await client.next()).toMatchObject({ sequenceId: 1 });
    } finally {
      client.close();
    }
  });

  it('a packet with the wrong sequence id ends the login with 1156', async () => {
    const server = await start({ warmCache: true });
    const client = await RawClient.open(server);
    try {
      await client.next();
      client.send(2, handshakeResponse(codes.CACHING_SHA2_PASSWORD, Buffer.alloc(32)));
      const err = decodeErr((await client.next()).payload, codes.CLIENT_PROTOCOL_41);
      expect(err).toMatchObject({ code: 1156, sqlState: '08S01' });
    } finally {
      client.close();
    }
  });
});
