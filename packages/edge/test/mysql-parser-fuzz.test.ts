// Random and mutated MySQL input only ever yields packets or a ProtocolError, loses no bytes, and ends.
import { describe, expect, it } from 'vitest';
import {
  PacketParser,
  ProtocolError,
  codes,
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeClientHandshake,
  decodeCommand,
  decodeEof,
  decodeErr,
  decodeHandshakeV10,
  decodeLocalInfileRequest,
  decodeOk,
  serialize,
} from '../src/mysql/protocol/index.ts';
import type { Packet } from '../src/mysql/protocol/index.ts';
import {
  clientPayloads,
  mysql2Login,
  queryWithAttributes,
  serverPayloads,
} from './mysql-protocol-fixtures.ts';
import { mutate, type Random } from './helpers/mysql-mutate.ts';
import { prng, randomBytesFrom } from './helpers/prng.ts';

// Mutated inputs per direction; each carries one to six packets before mutation.
const CASES = 25_000;
const CAPABILITY_SETS = [
  0,
  codes.CLIENT_PROTOCOL_41,
  codes.CLIENT_PROTOCOL_41 | codes.CLIENT_SECURE_CONNECTION | codes.CLIENT_SESSION_TRACK,
  0xffffffff,
  (0xffffffff & ~codes.CLIENT_SECURE_CONNECTION) >>> 0,
  codes.CLIENT_QUERY_ATTRIBUTES | codes.CLIENT_PLUGIN_AUTH | codes.CLIENT_CONNECT_ATTRS,
];

function makeInput(random: Random, payloads: Buffer[]): Buffer {
  if (random(20) === 0) return randomBytesFrom(random, random(200));
  const picked = Array.from({ length: 1 + random(6) }, (_x, i) =>
    serialize.packet(i, payloads[random(payloads.length)] as Buffer),
  );
  let input: Buffer = Buffer.concat(picked);
  for (let n = 1 + random(3); n > 0; n--) input = mutate(random, input);
  return input;
}

function onlyProtocolErrors(decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
}

function inspectServer(packet: Packet, capabilities: number): void {
  const { payload } = packet;
  onlyProtocolErrors(() => decodeHandshakeV10(payload));
  onlyProtocolErrors(() => decodeOk(payload, capabilities));
  onlyProtocolErrors(() => decodeErr(payload, capabilities));
  onlyProtocolErrors(() => decodeEof(payload, capabilities));
  onlyProtocolErrors(() => decodeAuthSwitchRequest(payload));
  onlyProtocolErrors(() => decodeAuthMoreData(payload));
  onlyProtocolErrors(() => decodeLocalInfileRequest(payload));
}

function inspectClient(packet: Packet, capabilities: number): void {
  onlyProtocolErrors(() => decodeClientHandshake(packet.payload));
  onlyProtocolErrors(() => decodeCommand(packet.payload, capabilities));
}

// Feeds `input` in random slices; every byte is either emitted or still buffered.
function run(
  input: Buffer,
  random: Random,
  inspect: (packet: Packet, capabilities: number) => void,
) {
  const parser = new PacketParser({ maxPacketBytes: 1 << 20 });
  const capabilities = CAPABILITY_SETS[random(CAPABILITY_SETS.length)] as number;
  let emittedBytes = 0;
  let packets = 0;
  const onPacket = (packet: Packet) => {
    if (!Buffer.isBuffer(packet.payload)) throw new Error('a packet without a payload buffer');
    emittedBytes += packet.payload.length + 4 * packet.pieces;
    packets++;
    inspect(packet, capabilities);
  };
  try {
    for (let at = 0; at < input.length;) {
      const size = 1 + random(64);
      parser.parse(input.subarray(at, at + size), onPacket);
      at += size;
    }
  } catch (error) {
    if (error instanceof ProtocolError) return { outcome: 'rejected' as const, packets };
    throw error;
  }
  expect(emittedBytes + parser.bufferedBytes).toBe(input.length);
  return { outcome: 'ok' as const, packets };
}

function fuzz(
  seed: number,
  payloads: Buffer[],
  inspect: (packet: Packet, capabilities: number) => void,
) {
  const random = prng(seed);
  const totals = { ok: 0, rejected: 0, packets: 0 };
  for (let i = 0; i < CASES; i++) {
    const { outcome, packets } = run(makeInput(random, payloads), random, inspect);
    totals[outcome]++;
    totals.packets += packets;
  }
  return totals;
}

describe('MySQL parser and decoder fuzzing', () => {
  // Slow only because every rejected decode builds an Error with its stack.
  it(`server direction: ${CASES} mutated streams`, { timeout: 120_000 }, () => {
    const totals = fuzz(0x5eed, serverPayloads, inspectServer);
    expect(totals.ok + totals.rejected).toBe(CASES);
    expect(totals.ok).toBeGreaterThan(CASES / 10);
    expect(totals.rejected).toBeGreaterThan(CASES / 100);
    expect(totals.packets).toBeGreaterThan(CASES);
  });

  it(`client direction: ${CASES} mutated streams`, { timeout: 120_000 }, () => {
    const totals = fuzz(
      0xc0ffee,
      [...clientPayloads, mysql2Login, queryWithAttributes],
      inspectClient,
    );
    expect(totals.ok + totals.rejected).toBe(CASES);
    expect(totals.ok).toBeGreaterThan(CASES / 10);
    expect(totals.rejected).toBeGreaterThan(CASES / 100);
    expect(totals.packets).toBeGreaterThan(CASES);
  });
});
