// Password hashing with argon2id from node:crypto, stored as PHC strings so parameters can evolve.
import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const argon2Async = promisify(argon2);

/**
 * OWASP's recommended argon2id baseline: 19 MiB of memory, 2 passes, one lane. About 30 ms
 * on this class of machine, which keeps log-in cheap for people and expensive for guessing.
 */
export const PASSWORD_HASH_PARAMS = { memory: 19456, passes: 2, parallelism: 1, tagLength: 32 };

const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

async function derive(
  password: string,
  nonce: Buffer,
  params: typeof PASSWORD_HASH_PARAMS,
): Promise<Buffer> {
  return argon2Async('argon2id', { message: password, nonce, ...params });
}

export async function hashPassword(password: string): Promise<string> {
  const nonce = randomBytes(16);
  const tag = await derive(password, nonce, PASSWORD_HASH_PARAMS);
  const { memory, passes, parallelism } = PASSWORD_HASH_PARAMS;
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$argon2id$v=19$m=${memory},t=${passes},p=${parallelism}$${b64(nonce)}$${b64(tag)}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const match = PHC.exec(stored);
  if (!match) return false;
  const [, m, t, p, salt, hash] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const expected = Buffer.from(hash, 'base64');
  const actual = await derive(password, Buffer.from(salt, 'base64'), {
    memory: Number(m),
    passes: Number(t),
    parallelism: Number(p),
    tagLength: expected.length,
  });
  return timingSafeEqual(actual, expected);
}

/** A real hash to verify against when the account does not exist, so timing reveals nothing. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  return decoy;
}
