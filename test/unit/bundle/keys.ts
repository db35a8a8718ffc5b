// Test-only helper: JWT signing keys made at test time with node:crypto.
import { generateKeyPairSync, type JsonWebKey, type KeyObject, sign } from 'node:crypto';

/** Key types the helper can make. */
export type JwtKeyType = 'P-256' | 'P-384' | 'P-521' | 'RSA-2048' | 'RSA-1024' | 'Ed25519' | 'secp256k1';

/** A key pair with its public JWK (no kid, no use). */
export interface TestKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly jwk: JsonWebKey;
}

export function makeKey(type: JwtKeyType): TestKey {
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  switch (type) {
    case 'RSA-2048':
      pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      break;
    case 'RSA-1024':
      pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
      break;
    case 'Ed25519':
      pair = generateKeyPairSync('ed25519');
      break;
    default:
      pair = generateKeyPairSync('ec', { namedCurve: type === 'secp256k1' ? 'secp256k1' : type });
  }
  return { ...pair, jwk: pair.publicKey.export({ format: 'jwk' }) };
}

/** Signs `data` with the key (SHA-256; none for Ed25519). */
export function signWith(key: TestKey, data: Buffer): Buffer {
  return sign(key.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key.privateKey);
}
