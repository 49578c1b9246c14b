// The engine's signing key, derived from the root secret so every node has the same one.
import { createPrivateKey } from 'node:crypto';
import type { JWK } from 'oidc-provider';
import { deriveKey } from '../services/crypto.ts';

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function signingJwks(rootSecret: string): { keys: JWK[] } {
  const seed = deriveKey(rootSecret, 'oauth signing key v1');
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const jwk = key.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: 'ed25519-1', alg: 'EdDSA', use: 'sig' } as JWK] };
}
