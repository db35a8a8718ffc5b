import { type JsonWebKey, KeyObject, verify } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { JwtBundle, MAX_BUNDLE_KEYS } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import { TrustDomain } from '../../../src/spiffeid/index.js';
import { makeKey, signWith, type TestKey } from './keys.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).code;
  }
  return 'no error';
}

const TD = 'example.org';
let p256: TestKey;
let p384: TestKey;
let p521: TestKey;
let rsa: TestKey;
let rsa1024: TestKey;
let ed: TestKey;
let k1: TestKey;

beforeAll(() => {
  p256 = makeKey('P-256');
  p384 = makeKey('P-384');
  p521 = makeKey('P-521');
  rsa = makeKey('RSA-2048');
  rsa1024 = makeKey('RSA-1024');
  ed = makeKey('Ed25519');
  k1 = makeKey('secp256k1');
});

const jwks = (...keys: object[]): string => JSON.stringify({ keys });
const zeroPadded = (b64u: string): string =>
  Buffer.concat([Buffer.from([0]), Buffer.from(b64u, 'base64url')]).toString('base64url');
const withKid = (k: TestKey, kid: string, extra: object = {}): object => ({ ...k.jwk, kid, ...extra });

/** Proves the imported key is the one we made: it verifies a signature of the private key. */
function verifies(key: KeyObject | undefined, k: TestKey): boolean {
  const data = Buffer.from('payload');
  return key !== undefined && verify('sha256', data, key, signWith(k, data));
}

describe('JwtBundle.parse: accepted keys', () => {
  it('imports EC P-256/P-384/P-521 and RSA keys, with use jwt-svid or no use', () => {
    const bundle = JwtBundle.parse(
      TD,
      jwks(
        withKid(p256, 'a', { use: 'jwt-svid' }),
        withKid(p384, 'b'),
        withKid(p521, 'c', { use: 'jwt-svid', alg: 'ES512' }),
        withKid(rsa, 'd', { alg: 'PS256' }),
      ),
    );
    expect(bundle.trustDomain.name).toBe(TD);
    expect(bundle.size).toBe(4);
    expect(bundle.keyIds()).toEqual(['a', 'b', 'c', 'd']);
    expect(verifies(bundle.getPublicKey('a'), p256)).toBe(true);
    expect(verifies(bundle.getPublicKey('b'), p384)).toBe(true);
    expect(verifies(bundle.getPublicKey('c'), p521)).toBe(true);
    expect(verifies(bundle.getPublicKey('d'), rsa)).toBe(true);
    expect(verifies(bundle.getPublicKey('a'), p384)).toBe(false);
    expect(bundle.skippedKeys).toEqual([]);
  });

  it('returns the same imported KeyObject on every call', () => {
    const bundle = JwtBundle.parse(TD, jwks(withKid(p256, 'a')));
    const key = bundle.getPublicKey('a');
    expect(key).toBeInstanceOf(KeyObject);
    expect(key?.type).toBe('public');
    expect(bundle.getPublicKey('a')).toBe(key);
    expect(bundle.getPublicKey('missing')).toBeUndefined();
    expect(bundle.getPublicKey('__proto__')).toBeUndefined();
  });

  it('findAuthority returns a frozen public JWK without use', () => {
    const bundle = JwtBundle.parse(TD, jwks(withKid(p256, 'a', { use: 'jwt-svid', x5t: 'ignored' })));
    const jwk = bundle.findAuthority('a');
    expect(jwk).toEqual({ kty: 'EC', kid: 'a', crv: 'P-256', x: p256.jwk.x, y: p256.jwk.y });
    expect(Object.isFrozen(jwk)).toBe(true);
    expect(bundle.findAuthority('b')).toBeUndefined();
  });

  it('accepts an empty key list (a trust domain with no JWT authorities)', () => {
    const bundle = JwtBundle.parse(TD, '{"keys":[]}');
    expect(bundle.size).toBe(0);
    expect(bundle.keyIds()).toEqual([]);
  });

  it('accepts UTF-8 bytes and parsed objects', () => {
    const text = jwks(withKid(p256, 'a'));
    expect(JwtBundle.parse(TD, new TextEncoder().encode(text)).keyIds()).toEqual(['a']);
    expect(JwtBundle.parse(TD, JSON.parse(text) as object).keyIds()).toEqual(['a']);
    expect(JwtBundle.parse(TrustDomain.parse(TD), text).trustDomain.name).toBe(TD);
  });

  it('ignores unknown top-level and key members', () => {
    const bundle = JwtBundle.parse(
      TD,
      JSON.stringify({ keys: [withKid(p256, 'a', { foo: [1] })], other: {} }),
    );
    expect(bundle.keyIds()).toEqual(['a']);
  });
});

describe('JwtBundle.parse: ignored keys (that key only)', () => {
  const rows: Array<[string, () => object, RegExp]> = [
    ['use x509-svid', () => withKid(p256, 'x', { use: 'x509-svid' }), /use "x509-svid"/],
    ['use sig', () => withKid(p256, 'x', { use: 'sig' }), /use "sig"/],
    ['use in another case', () => withKid(p256, 'x', { use: 'JWT-SVID' }), /use "JWT-SVID"/],
    ['non-string use', () => withKid(p256, 'x', { use: 1 }), /use is not a string/],
    ['OKP (Ed25519) key', () => withKid(ed, 'x'), /unsupported key type "OKP"/],
    ['unknown kty', () => ({ kty: 'FOO', kid: 'x' }), /unsupported key type "FOO"/],
    ['missing kty', () => ({ kid: 'x', crv: 'P-256' }), /missing key type/],
    ['secp256k1 curve', () => withKid(k1, 'x'), /unsupported EC curve "secp256k1"/],
    [
      'missing curve',
      () => ({ kty: 'EC', kid: 'x', x: p256.jwk.x, y: p256.jwk.y }),
      /unsupported EC curve \(missing\)/,
    ],
    [
      'alg that does not fit the curve',
      () => withKid(p256, 'x', { alg: 'ES384' }),
      /does not fit curve P-256/,
    ],
    ['HMAC alg on an RSA key', () => withKid(rsa, 'x', { alg: 'HS256' }), /not allowed for RSA/],
    ['alg none', () => withKid(rsa, 'x', { alg: 'none' }), /not allowed for RSA/],
    ['non-string alg', () => withKid(rsa, 'x', { alg: 7 }), /"alg" must be a string/],
  ];
  it.each(rows)('%s', (_name, key, reason) => {
    const bundle = JwtBundle.parse(TD, jwks(withKid(p256, 'good'), key()));
    expect(bundle.keyIds()).toEqual(['good']);
    expect(bundle.getPublicKey('x')).toBeUndefined();
    expect(bundle.skippedKeys).toHaveLength(1);
    expect(bundle.skippedKeys[0]!.index).toBe(1);
    expect(bundle.skippedKeys[0]!.reason).toMatch(reason);
  });
});

describe('JwtBundle.parse: rejected bundles, one row per rule', () => {
  const big = (): string =>
    Buffer.concat([Buffer.from([0xc0]), Buffer.alloc(1099, 0x11)]).toString('base64url');
  const rows: Array<[string, () => string | Uint8Array | object, string]> = [
    ['missing keys', () => '{}', 'bundle-jwks-missing-keys'],
    ['keys not an array', () => '{"keys":{}}', 'bundle-jwks-missing-keys'],
    ['keys null', () => '{"keys":null}', 'bundle-jwks-missing-keys'],
    ['document is an array', () => '[]', 'bundle-jwks-not-object'],
    ['document is a string', () => '"keys"', 'bundle-jwks-not-object'],
    ['key entry not an object', () => '{"keys":[1]}', 'bundle-jwk-not-object'],
    ['key entry null', () => '{"keys":[null]}', 'bundle-jwk-not-object'],
    ['missing kid', () => jwks({ ...p256.jwk }), 'bundle-jwt-missing-kid'],
    ['empty kid', () => jwks(withKid(p256, '')), 'bundle-jwt-missing-kid'],
    ['numeric kid', () => jwks({ ...p256.jwk, kid: 1 }), 'bundle-jwt-missing-kid'],
    ['duplicate kid', () => jwks(withKid(p256, 'a'), withKid(p384, 'a')), 'bundle-jwt-duplicate-kid'],
    [
      'duplicate keys member',
      () => `{"keys":[],"keys":${JSON.stringify([withKid(p256, 'a')])}}`,
      'bundle-json-duplicate-member',
    ],
    [
      'duplicate member inside a key',
      () => `{"keys":[{"kty":"EC","kid":"a","kid":"b"}]}`,
      'bundle-json-duplicate-member',
    ],
    ['private EC key', () => jwks(withKid(p256, 'a', { d: 'AAAA' })), 'bundle-jwk-private-key'],
    [
      'private key on an ignored entry',
      () => jwks(withKid(p256, 'a', { use: 'x509-svid', d: 'AAAA' })),
      'bundle-jwk-private-key',
    ],
    ['RSA private members', () => jwks(withKid(rsa, 'a', { p: 'AAAA' })), 'bundle-jwk-private-key'],
    ['symmetric key', () => jwks({ kty: 'oct', kid: 'a', k: 'c2VjcmV0' }), 'bundle-jwk-private-key'],
    ['x not base64url', () => jwks(withKid(p256, 'a', { x: `${p256.jwk.x}!` })), 'bundle-jwk-bad-key'],
    ['padded x', () => jwks(withKid(p256, 'a', { x: `${p256.jwk.x}=` })), 'bundle-jwk-bad-key'],
    ['x of the wrong length', () => jwks(withKid(p256, 'a', { x: p384.jwk.x })), 'bundle-jwk-bad-key'],
    [
      'x with a leading zero byte (node:crypto alone accepts it)',
      () => jwks(withKid(p256, 'a', { x: zeroPadded(p256.jwk.x!) })),
      'bundle-jwk-bad-key',
    ],
    ['x not a string', () => jwks(withKid(p256, 'a', { x: 5 })), 'bundle-jwk-bad-key'],
    ['missing y', () => jwks({ kty: 'EC', kid: 'a', crv: 'P-256', x: p256.jwk.x }), 'bundle-jwk-bad-key'],
    ['point not on the curve', () => jwks(withKid(p256, 'a', { y: p256.jwk.x })), 'bundle-jwk-bad-key'],
    ['missing n', () => jwks({ kty: 'RSA', kid: 'a', e: 'AQAB' }), 'bundle-jwk-bad-key'],
    ['RSA under 2048 bits', () => jwks(withKid(rsa1024, 'a')), 'bundle-jwk-weak-key'],
    [
      'RSA over 8192 bits',
      () => jwks({ kty: 'RSA', kid: 'a', n: big(), e: 'AQAB' }),
      'bundle-jwk-key-too-large',
    ],
    [
      'more than 1000 keys',
      () => jwks(...Array.from({ length: MAX_BUNDLE_KEYS + 1 }, () => ({ kty: 'X' }))),
      'bundle-jwks-too-many-keys',
    ],
    ['over 1 MiB of text', () => `{"keys":[],"pad":"${'a'.repeat(1024 * 1024)}"}`, 'bundle-json-too-large'],
    ['over 1 MiB of bytes', () => new Uint8Array(1024 * 1024 + 1), 'bundle-json-too-large'],
    [
      'over 1 MiB in UTF-8 only',
      () => `{"keys":[],"pad":"${'\u20ac'.repeat(400_000)}"}`,
      'bundle-json-too-large',
    ],
    ['invalid JSON', () => '{"keys":[}', 'bundle-json-syntax'],
    ['invalid UTF-8', () => new Uint8Array([0x7b, 0xff, 0x7d]), 'bundle-json-syntax'],
    [
      'UTF-8 byte order mark',
      () => new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from('{"keys":[]}')]),
      'bundle-json-syntax',
    ],
    ['object that cannot be serialised', () => ({ keys: [], n: 1n }), 'bundle-invalid-argument'],
    [
      'cyclic object',
      () => {
        const o: Record<string, unknown> = { keys: [] };
        o['self'] = o;
        return o;
      },
      'bundle-invalid-argument',
    ],
    ['number', () => 5 as unknown as object, 'bundle-invalid-argument'],
    ['null', () => null as unknown as object, 'bundle-invalid-argument'],
  ];
  it.each(rows)('%s → %s', (_name, input, code) => {
    expect(codeOf(() => JwtBundle.parse(TD, input()))).toBe(code);
  });

  it('accepts exactly 1000 keys', () => {
    const keys = Array.from({ length: MAX_BUNDLE_KEYS }, () => ({ kty: 'X' }));
    expect(JwtBundle.parse(TD, jwks(...keys)).skippedKeys).toHaveLength(MAX_BUNDLE_KEYS);
  });

  it('does not let a later "keys" member replace an earlier one (JSON.parse would)', () => {
    const attack = `{"keys":${jwks(withKid(p256, 'good')).slice(8, -1)},"keys":${JSON.stringify([withKid(p384, 'evil')])}}`;
    expect((JSON.parse(attack) as { keys: Array<{ kid: string }> }).keys[0]!.kid).toBe('evil');
    expect(codeOf(() => JwtBundle.parse(TD, attack))).toBe('bundle-json-duplicate-member');
  });

  it('quotes a hostile kid safely in messages', () => {
    let message = '';
    try {
      JwtBundle.parse(
        TD,
        jwks(withKid(p256, `a\n${'x'.repeat(500)}`), withKid(p384, `a\n${'x'.repeat(500)}`)),
      );
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('bundle-jwt-duplicate-kid');
    expect(message).not.toContain('\n');
    expect(message.length).toBeLessThan(300);
  });
});

describe('JwtBundle.fromAuthorities', () => {
  it('builds a bundle keyed by the record keys', () => {
    const bundle = JwtBundle.fromAuthorities(TD, {
      a: p256.jwk,
      b: { ...rsa.jwk, kid: 'b', use: 'jwt-svid' },
    });
    expect(bundle.keyIds()).toEqual(['a', 'b']);
    expect(verifies(bundle.getPublicKey('a'), p256)).toBe(true);
    expect(bundle.findAuthority('a')?.['kid']).toBe('a');
    expect(JwtBundle.fromAuthorities(TD, {}).size).toBe(0);
  });

  const rows: Array<[string, () => Record<string, JsonWebKey>, string]> = [
    ['kid differs from the record key', () => ({ a: { ...p256.jwk, kid: 'b' } }), 'bundle-jwt-kid-mismatch'],
    ['use x509-svid', () => ({ a: { ...p256.jwk, use: 'x509-svid' } }), 'bundle-jwk-unsupported'],
    ['unsupported key type', () => ({ a: ed.jwk }), 'bundle-jwk-unsupported'],
    ['unsupported curve', () => ({ a: k1.jwk }), 'bundle-jwk-unsupported'],
    ['private key', () => ({ a: p256.privateKey.export({ format: 'jwk' }) }), 'bundle-jwk-private-key'],
    ['weak RSA key', () => ({ a: rsa1024.jwk }), 'bundle-jwk-weak-key'],
    ['empty kid', () => ({ '': p256.jwk }), 'bundle-jwt-missing-kid'],
    [
      'JWK given as a string',
      () => ({ a: JSON.stringify(p256.jwk) as unknown as JsonWebKey }),
      'bundle-invalid-argument',
    ],
    [
      'too many keys',
      () => Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, p256.jwk])),
      'bundle-jwks-too-many-keys',
    ],
  ];
  it.each(rows)('rejects %s', (_name, input, code) => {
    expect(codeOf(() => JwtBundle.fromAuthorities(TD, input()))).toBe(code);
  });

  it('rejects a non-record argument', () => {
    for (const v of [null, [], 'x']) {
      expect(codeOf(() => JwtBundle.fromAuthorities(TD, v as unknown as Record<string, JsonWebKey>))).toBe(
        'bundle-invalid-argument',
      );
    }
  });
});

describe('JwtBundle marshal and equals', () => {
  it('marshal writes use jwt-svid and round-trips', () => {
    const bundle = JwtBundle.parse(TD, jwks(withKid(p256, 'a'), withKid(rsa, 'b', { alg: 'RS256' })));
    const doc = JSON.parse(bundle.marshal()) as { keys: Array<Record<string, unknown>> };
    expect(doc.keys.map((k) => k['use'])).toEqual(['jwt-svid', 'jwt-svid']);
    expect(doc.keys[1]).toMatchObject({ kty: 'RSA', kid: 'b', alg: 'RS256', n: rsa.jwk.n, e: rsa.jwk.e });
    const back = JwtBundle.parse(TD, bundle.marshal());
    expect(back.equals(bundle)).toBe(true);
    expect(back.keyIds()).toEqual(['a', 'b']);
    expect(bundle.toJwks()).toEqual(doc);
  });

  it('equals compares trust domain, key IDs, keys and alg, not order', () => {
    const base = JwtBundle.parse(TD, jwks(withKid(p256, 'a'), withKid(rsa, 'b')));
    expect(base.equals(JwtBundle.parse(TD, jwks(withKid(rsa, 'b'), withKid(p256, 'a'))))).toBe(true);
    expect(base.equals(JwtBundle.parse('other.org', jwks(withKid(p256, 'a'), withKid(rsa, 'b'))))).toBe(
      false,
    );
    expect(base.equals(JwtBundle.parse(TD, jwks(withKid(p384, 'a'), withKid(rsa, 'b'))))).toBe(false);
    expect(base.equals(JwtBundle.parse(TD, jwks(withKid(p256, 'a'), withKid(rsa, 'c'))))).toBe(false);
    expect(base.equals(JwtBundle.parse(TD, jwks(withKid(p256, 'a'))))).toBe(false);
    expect(
      base.equals(JwtBundle.parse(TD, jwks(withKid(p256, 'a'), withKid(rsa, 'b', { alg: 'RS256' })))),
    ).toBe(false);
    expect(base.equals({} as JwtBundle)).toBe(false);
  });

  it('is immutable and cannot be constructed directly', () => {
    const bundle = JwtBundle.parse(TD, jwks(withKid(p256, 'a'), { kty: 'X' }));
    expect(Object.isFrozen(bundle)).toBe(true);
    expect(Object.isFrozen(bundle.skippedKeys)).toBe(true);
    const ids = bundle.keyIds();
    ids.push('evil');
    expect(bundle.keyIds()).toEqual(['a']);
    const Ctor = JwtBundle as unknown as new (...args: unknown[]) => unknown;
    expect(codeOf(() => new Ctor(Symbol('x'), TrustDomain.parse(TD), new Map(), []))).toBe(
      'bundle-private-constructor',
    );
  });
});
