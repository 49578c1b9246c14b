// Random and mutated input only ever yields messages or a ProtocolError, and loses no bytes.
import { describe, expect, it } from 'vitest';
import {
  BackendParser,
  FrontendParser,
  ProtocolError,
  dataRowValues,
  decodePasswordMessage,
  decodeSASLInitialResponse,
  serialize,
} from '../src/pg/protocol/index.ts';
import type { BackendMessage, FrontendMessage } from '../src/pg/protocol/index.ts';
import { backendFixtures, frontendFixtures, startup } from './protocol-fixtures.ts';
import { prng, randomBytesFrom } from './helpers/prng.ts';

const CASES = 2500;

function mutate(random: (limit: number) => number, input: Buffer): Buffer {
  const bytes = Buffer.from(input);
  if (bytes.length === 0) return randomBytesFrom(random, 1 + random(16));
  const at = random(bytes.length);
  switch (random(6)) {
    case 0:
      bytes[at] = (bytes[at] as number) ^ (1 << random(8));
      return bytes;
    case 1:
      bytes[at] = random(256);
      return bytes;
    case 2:
      return bytes.subarray(0, at);
    case 3:
      return Buffer.concat([
        bytes.subarray(0, at),
        randomBytesFrom(random, 1 + random(8)),
        bytes.subarray(at),
      ]);
    case 4:
      // Lie about a length: the first frame's, or an arbitrary int32 inside the body.
      if (bytes.length >= 4)
        bytes.writeInt32BE(random(2 ** 31) - random(2 ** 31), random(bytes.length - 3));
      return bytes;
    default:
      return Buffer.concat([bytes.subarray(at), bytes.subarray(0, at)]);
  }
}

function makeInput(
  random: (limit: number) => number,
  fixtures: Buffer[],
  prefix: Buffer[],
): Buffer {
  if (random(10) === 0) return randomBytesFrom(random, random(200));
  const picked = Array.from(
    { length: 1 + random(6) },
    () => fixtures[random(fixtures.length)] as Buffer,
  );
  let input: Buffer = Buffer.concat([...prefix, ...picked]);
  for (let n = random(4); n > 0; n--) input = mutate(random, input);
  return input;
}

// Feeds `input` in random slices and checks the outcome; returns how the case ended.
function run<M extends { kind: string; frame: Buffer }>(
  parser: { parse(chunk: Buffer, onMessage: (message: M) => void): void; bufferedBytes: number },
  input: Buffer,
  random: (limit: number) => number,
  inspect: (message: M) => void,
): 'ok' | 'rejected' {
  let emitted = 0;
  const onMessage = (message: M) => {
    expect(message.frame).toBeInstanceOf(Buffer);
    emitted += message.frame.length;
    expectOnlyProtocolErrors(() => inspect(message));
  };
  try {
    for (let at = 0; at < input.length;) {
      const size = 1 + random(64);
      parser.parse(input.subarray(at, at + size), onMessage);
      at += size;
    }
    // Resume anything held back after an SSLRequest; each call passes at most one pause.
    for (let i = 0; i <= input.length; i++) parser.parse(Buffer.alloc(0), onMessage);
  } catch (error) {
    if (error instanceof ProtocolError) return 'rejected';
    throw error;
  }
  expect(emitted + parser.bufferedBytes).toBe(input.length);
  return 'ok';
}

function expectOnlyProtocolErrors(decode: () => void): void {
  try {
    decode();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
}

function inspectFrontend(message: FrontendMessage): void {
  if (message.kind !== 'authenticationResponse') return;
  expectOnlyProtocolErrors(() => decodePasswordMessage(message));
  decodeSASLInitialResponse(message);
}

function inspectBackend(message: BackendMessage): void {
  if (message.kind === 'dataRow') expect(dataRowValues(message)).toHaveLength(message.columnCount);
}

describe('parser fuzzing', () => {
  it('backend: survives random and mutated server output', () => {
    const random = prng(0x5eed);
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < CASES; i++) {
      const input = makeInput(random, backendFixtures, []);
      outcomes[run(new BackendParser({ maxMessageBytes: 65536 }), input, random, inspectBackend)]++;
    }
    expect(outcomes.ok).toBeGreaterThan(CASES / 10);
    expect(outcomes.rejected).toBeGreaterThan(CASES / 10);
  });

  it('frontend: survives random and mutated client input, startup phase included', () => {
    const random = prng(0xc0ffee);
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < CASES; i++) {
      const prefix = random(4) === 0 ? [serialize.sslRequest(), startup] : [startup];
      const input = makeInput(random, frontendFixtures, prefix);
      outcomes[
        run(new FrontendParser({ maxMessageBytes: 65536 }), input, random, inspectFrontend)
      ]++;
    }
    expect(outcomes.ok).toBeGreaterThan(CASES / 10);
    expect(outcomes.rejected).toBeGreaterThan(CASES / 10);
  });
});
