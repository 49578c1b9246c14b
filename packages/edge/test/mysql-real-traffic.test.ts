// The MySQL codec reads what real clients and a real MariaDB send each other: a recording TCP pipe
// sits between them and its bytes go through the framer and decoders afterwards.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { Readable } from 'node:stream';
import mariadb from 'mariadb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PacketParser,
  codes,
  decodeAuthSwitchRequest,
  decodeClientHandshake,
  decodeCommand,
  decodeHandshakeV10,
  decodeLocalInfileRequest,
  decodeOk,
} from '../src/mysql/protocol/index.ts';
import type { ClientCommand, HandshakeResponse41, Packet } from '../src/mysql/protocol/index.ts';
import { startThrowawayMariadb } from './helpers/throwaway-mariadb.ts';
import type { ThrowawayMariadb } from './helpers/throwaway-mariadb.ts';

const MIB = 1024 * 1024;

interface Recording {
  port: number;
  client: Buffer[];
  server: Buffer[];
  close(): Promise<void>;
}

// One connection at a time is recorded, chunk by chunk, as the sockets delivered it.
function record(target: ThrowawayMariadb): Promise<Recording> {
  const recording = { client: [] as Buffer[], server: [] as Buffer[] };
  const server = net.createServer((client) => {
    const origin = net.connect(target.port, target.host);
    client.on('data', (chunk) => {
      recording.client.push(chunk);
      origin.write(chunk);
    });
    origin.on('data', (chunk) => {
      recording.server.push(chunk);
      client.write(chunk);
    });
    client.on('close', () => origin.destroy());
    origin.on('close', () => client.destroy());
    client.on('error', () => origin.destroy());
    origin.on('error', () => client.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        ...recording,
        port: (server.address() as net.AddressInfo).port,
        close: () => new Promise((done) => server.close(() => done())),
      }),
    ),
  );
}

function packetsOf(chunks: Buffer[]): Packet[] {
  const parser = new PacketParser();
  const packets: Packet[] = [];
  for (const chunk of chunks) parser.parse(chunk, (packet) => void packets.push(packet));
  expect(parser.bufferedBytes).toBe(0);
  return packets;
}

// The client's login and the commands after it, decoded with the capabilities both sides agreed on.
function clientSide(recording: Recording): {
  login: HandshakeResponse41;
  commands: ClientCommand[];
  agreed: number;
} {
  const server = decodeHandshakeV10((packetsOf(recording.server)[0] as Packet).payload);
  const packets = packetsOf(recording.client);
  const login = decodeClientHandshake((packets[0] as Packet).payload);
  if (login.kind !== 'handshakeResponse') throw new Error('expected a login');
  const agreed = (login.capabilities & server.capabilities) >>> 0;
  // Commands restart the sequence at 0; auth replies continue the login's.
  const commands = packets
    .filter((p) => p.sequenceId === 0)
    .map((p) => decodeCommand(p.payload, agreed));
  return { login, commands, agreed };
}

let origin: ThrowawayMariadb;

beforeAll(async () => {
  origin = await startThrowawayMariadb();
  // Room for the 17 MiB packets below (new connections see it).
  await origin.sql('SET GLOBAL max_allowed_packet = 64 * 1024 * 1024');
}, 180_000);

afterAll(async () => {
  await origin?.stop();
});

describe('real traffic through the codec', () => {
  it('mysql2: login, text query, prepared statement ids, an INSERT OK with rows, last insert id and info', async () => {
    const recording = await record(origin);
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: recording.port,
      user: origin.users.native,
      password: origin.password(origin.users.native),
      database: origin.database,
    });
    await connection.query('SELECT name FROM items WHERE id = 1');
    await connection.execute('SELECT name FROM items WHERE id = ?', [2]);
    await connection.query(
      'CREATE TEMPORARY TABLE counters (id int auto_increment primary key, v int)',
    );
    await connection.query('INSERT INTO counters (v) VALUES (1), (2)');
    await connection.unprepare('SELECT name FROM items WHERE id = ?');
    await connection.end();
    await recording.close();

    const { login, commands, agreed } = clientSide(recording);
    expect(login).toMatchObject({
      username: origin.users.native,
      database: 'app',
      authPluginName: codes.MYSQL_NATIVE_PASSWORD,
    });
    expect(login.authResponse).toHaveLength(20);
    // mysql2 may close the statement again when the connection ends.
    expect(commands.map((c) => c.kind).slice(0, 6)).toEqual([
      'query',
      'stmtPrepare',
      'stmtExecute',
      'query',
      'query',
      'stmtClose',
    ]);
    expect(commands.at(-1)?.kind).toBe('quit');
    expect(commands[0]).toMatchObject({ sql: 'SELECT name FROM items WHERE id = 1' });
    // The id the server gave in COM_STMT_PREPARE_OK is the one EXECUTE and CLOSE carry.
    const server = packetsOf(recording.server);
    const prepareOk = server.find(
      (p) => p.sequenceId === 1 && p.payload[0] === 0 && p.payload.length === 12,
    ) as Packet;
    const statementId = prepareOk.payload.readUInt32LE(1);
    expect(commands[2]).toMatchObject({ kind: 'stmtExecute', statementId, iterationCount: 1 });
    expect(commands[5]).toMatchObject({ kind: 'stmtClose', statementId });
    // A command's first answer has sequence id 1; binary rows start with 0x00 too, but never there.
    const oks = server
      .filter((p) => p.sequenceId === 1 && p.payload[0] === codes.OK_HEADER && p !== prepareOk)
      .map((p) => decodeOk(p.payload, agreed));
    expect(oks).toHaveLength(2);
    expect(oks[1]).toMatchObject({
      affectedRows: 2n,
      lastInsertId: 1n,
      warnings: 0,
      info: 'Records: 2  Duplicates: 0  Warnings: 0',
    });
    expect((oks[0]?.statusFlags ?? 0) & codes.SERVER_STATUS_AUTOCOMMIT).not.toBe(0);
  });

  it('mysql2: 17 MiB packets in both directions arrive split, and are joined whole', async () => {
    const recording = await record(origin);
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: recording.port,
      user: origin.users.native,
      password: origin.password(origin.users.native),
    });
    const big = 'x'.repeat(17 * MIB);
    const [rows] = await connection.query(
      `SELECT LENGTH('${big}') AS n, REPEAT('y', ${17 * MIB}) AS y`,
    );
    expect((rows as { n: number }[])[0]?.n).toBe(17 * MIB);
    await connection.end();
    await recording.close();

    const query = packetsOf(recording.client).find((p) => p.payload.length > 16 * MIB) as Packet;
    expect(query).toMatchObject({ sequenceId: 0, lastSequenceId: 1, pieces: 2 });
    const { commands } = clientSide(recording);
    expect(commands[0]).toMatchObject({ kind: 'query' });
    expect(commands[0]?.kind === 'query' && commands[0].sql.length).toBe(
      `SELECT LENGTH('') AS n, REPEAT('y', ${17 * MIB}) AS y`.length + 17 * MIB,
    );
    const row = packetsOf(recording.server).find((p) => p.payload.length > 16 * MIB) as Packet;
    expect(row.pieces).toBe(2);
    expect(row.lastSequenceId).toBe((row.sequenceId + 1) & 0xff);
    // The row holds n ('17825792') and y (lenenc 0xfe + 8 bytes + 17 MiB of 'y').
    expect(row.payload.subarray(row.payload.length - 17 * MIB).every((b) => b === 0x79)).toBe(true);
  }, 60_000);

  it('the mariadb connector: connect attributes, the ed25519 switch, several result sets', async () => {
    const recording = await record(origin);
    const connection = await mariadb.createConnection({
      host: '127.0.0.1',
      port: recording.port,
      user: origin.users.ed25519,
      password: origin.password(origin.users.ed25519),
      database: origin.database,
      multipleStatements: true,
      connectAttributes: { program_name: 'edge-test' },
    });
    const results = await connection.query('SELECT 1 AS a; SELECT 2 AS b');
    expect(results).toHaveLength(2);
    await connection.end();
    await recording.close();

    const { login, commands } = clientSide(recording);
    expect(login.connectAttributes).toContainEqual(['program_name', 'edge-test']);
    expect(login.capabilities & codes.CLIENT_MULTI_STATEMENTS).not.toBe(0);
    const server = packetsOf(recording.server);
    const switchRequest = decodeAuthSwitchRequest((server[1] as Packet).payload);
    expect(switchRequest.pluginName).toBe('client_ed25519');
    expect(switchRequest.pluginData.length).toBeGreaterThanOrEqual(32);
    expect(commands).toContainEqual(
      expect.objectContaining({ kind: 'query', sql: 'SELECT 1 AS a; SELECT 2 AS b' }),
    );
  });

  it('mysql2: LOAD DATA LOCAL INFILE — the server asks for the file by name, the client streams it', async () => {
    const recording = await record(origin);
    await origin.sql('SET GLOBAL local_infile = 1');
    const connection = await mysql.createConnection({
      host: '127.0.0.1',
      port: recording.port,
      user: origin.users.native,
      password: origin.password(origin.users.native),
      database: origin.database,
      flags: ['+LOCAL_FILES'],
      infileStreamFactory: () => Readable.from([Buffer.from('20\tgauge\n21\thammer\n')]),
    });
    await connection.query("LOAD DATA LOCAL INFILE 'parts.tsv' INTO TABLE items");
    await connection.end();
    await recording.close();
    const request = packetsOf(recording.server).find(
      (p) => p.sequenceId === 1 && p.payload[0] === codes.LOCAL_INFILE_HEADER,
    ) as Packet;
    expect(decodeLocalInfileRequest(request.payload)).toBe('parts.tsv');
    // The file follows as packets continuing the sequence, ended by an empty one.
    const client = packetsOf(recording.client);
    const file = client.findIndex((p) => p.payload.toString() === '20\tgauge\n21\thammer\n');
    expect(file).toBeGreaterThan(0);
    expect(client[file]?.sequenceId).toBe(2);
    expect(client[file + 1]).toMatchObject({ sequenceId: 3, payload: Buffer.alloc(0) });
    expect(await origin.sql('SELECT name FROM app.items WHERE id IN (20, 21) ORDER BY id')).toBe(
      'gauge\nhammer\n',
    );
  });

  it('the mariadb command-line client: USE is a COM_INIT_DB', async () => {
    const recording = await record(origin);
    await new Promise<string>((resolve, reject) =>
      execFile(
        'mariadb',
        [
          '--no-defaults',
          '--protocol=tcp',
          '-h',
          '127.0.0.1',
          '-P',
          String(recording.port),
          '-u',
          origin.users.native,
          `--password=${origin.password(origin.users.native)}`,
          '--skip-ssl',
          '--batch',
          '-e',
          'use app\nSELECT COUNT(*) FROM items',
        ],
        { timeout: 15_000 },
        (error, stdout, stderr) =>
          error ? reject(new Error(stderr || error.message)) : resolve(stdout),
      ),
    );
    await recording.close();
    const { login, commands } = clientSide(recording);
    expect(login.connectAttributes).toContainEqual(['_client_name', 'libmariadb']);
    expect(commands).toContainEqual(expect.objectContaining({ kind: 'initDb', schema: 'app' }));
    expect(commands).toContainEqual(
      expect.objectContaining({ kind: 'query', sql: 'SELECT COUNT(*) FROM items' }),
    );
  });
});
