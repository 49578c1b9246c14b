// Mutations of MySQL wire bytes for fuzz tests: flipped and replaced bytes, truncation, insertion,
// lying lengths, protocol marker bytes, rotation.
import { randomBytesFrom } from './prng.ts';

export type Random = (limit: number) => number;

export function mutate(random: Random, input: Buffer): Buffer {
  const bytes = Buffer.from(input);
  if (bytes.length === 0) return randomBytesFrom(random, 1 + random(16));
  const at = random(bytes.length);
  switch (random(7)) {
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
      // Lie about a length: a packet header's or a length-encoded one inside a payload.
      if (bytes.length >= 3) bytes.writeUIntLE(random(2 ** 24), random(bytes.length - 2), 3);
      return bytes;
    case 5:
      bytes[at] = [0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0x00][random(6)] as number;
      return bytes;
    default:
      return Buffer.concat([bytes.subarray(at), bytes.subarray(0, at)]);
  }
}
