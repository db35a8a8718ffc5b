// Keys are imported with node:crypto once, when a bundle is built, never per lookup.
import * as realCrypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ createPublicKey: 0 }));

vi.mock('node:crypto', async (importOriginal) => {
  const mod = await importOriginal<typeof import('node:crypto')>();
  return {
    ...mod,
    createPublicKey: (...args: Parameters<typeof mod.createPublicKey>) => {
      calls.createPublicKey++;
      return mod.createPublicKey(...args);
    },
  };
});

const { JwtBundle, SpiffeBundle } = await import('../../../src/bundle/index.js');

function jwk(): realCrypto.JsonWebKey {
  return realCrypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
}

describe('key import', () => {
  it('JwtBundle imports each key once, at build time', () => {
    const doc = JSON.stringify({
      keys: [
        { ...jwk(), kid: 'a' },
        { ...jwk(), kid: 'b' },
        { ...jwk(), kid: 'c' },
      ],
    });
    const before = calls.createPublicKey;
    const bundle = JwtBundle.parse('example.org', doc);
    expect(calls.createPublicKey - before).toBe(3);
    const after = calls.createPublicKey;
    for (let i = 0; i < 100; i++) {
      for (const kid of ['a', 'b', 'c']) {
        expect(bundle.getPublicKey(kid)).toBeDefined();
        expect(bundle.findAuthority(kid)).toBeDefined();
      }
    }
    expect(calls.createPublicKey).toBe(after);
  });

  it('SpiffeBundle.jwtBundle() reuses the keys imported by parse', () => {
    const doc = JSON.stringify({ keys: [{ ...jwk(), kid: 'a', use: 'jwt-svid' }] });
    const bundle = SpiffeBundle.parse('example.org', doc);
    const after = calls.createPublicKey;
    const key = bundle.jwtBundle().getPublicKey('a');
    expect(key).toBeDefined();
    expect(bundle.jwtBundle().getPublicKey('a')).toBe(key);
    expect(calls.createPublicKey).toBe(after);
  });
});
