import type { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { JwtBundle, SpiffeBundle, X509Bundle } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import { makeCa, pem } from './certs.js';
import { makeKey, type TestKey } from './keys.js';

/** Runs `fn`; it may return or throw an IdentityError, nothing else. Returns the result or undefined. */
function onlyIdentityErrors<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return undefined;
  }
}

let ca: { cert: X509Certificate; der: Uint8Array };
let ca2: { cert: X509Certificate; der: Uint8Array };
let ec: TestKey;
let rsa: TestKey;

beforeAll(async () => {
  [ca, ca2] = await Promise.all([makeCa('example.org'), makeCa('example.org', 'RSA-2048')]);
  ec = makeKey('P-256');
  rsa = makeKey('RSA-2048');
});

describe('bundle parsers on hostile input', () => {
  it('arbitrary JSON values and strings: only IdentityError', () => {
    const input = fc.oneof(
      fc.jsonValue(),
      fc.json(),
      fc.string({ maxLength: 80 }),
      fc.jsonValue().map((v) => ({ keys: v })),
      fc.jsonValue().map((v) => JSON.stringify({ keys: [v] })),
    );
    fc.assert(
      fc.property(input, (v) => {
        onlyIdentityErrors(() => JwtBundle.parse('example.org', v as string));
        onlyIdentityErrors(() => SpiffeBundle.parse('example.org', v as string));
      }),
      { numRuns: 1500 },
    );
  });

  it('structure-aware JWK sets: only IdentityError, and what parses round-trips', () => {
    const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);
    const value = fc.oneof(
      pick<unknown>(undefined, null, 1, '', 'x', [], {}),
      pick(ec.jwk.x, ec.jwk.y, rsa.jwk.n, rsa.jwk.e, 'AQAB', 'AA', '!!'),
    );
    const entry = fc.record(
      {
        use: pick<unknown>('jwt-svid', 'x509-svid', 'sig', undefined, 1),
        kty: pick<unknown>('EC', 'RSA', 'OKP', 'oct', 'FOO', undefined, 3),
        kid: pick<unknown>('a', 'b', '', undefined, 7),
        crv: pick<unknown>('P-256', 'P-384', 'secp256k1', undefined, 1),
        x: value,
        y: value,
        n: value,
        e: value,
        alg: pick<unknown>(undefined, 'ES256', 'RS256', 'HS256', 'none', 5),
        x5c: pick<unknown>(
          undefined,
          [],
          [Buffer.from(ca.der).toString('base64')],
          [Buffer.from(ca2.der).toString('base64')],
          ['AAAA'],
          [1],
          'x',
        ),
        d: pick<unknown>(undefined, undefined, undefined, 'AAAA'),
      },
      { requiredKeys: [] },
    );
    const realEntry = pick(
      { use: 'jwt-svid', ...ec.jwk, kid: 'ec' },
      { use: 'jwt-svid', ...rsa.jwk, kid: 'rsa' },
      { use: 'x509-svid', kty: 'EC', x5c: [Buffer.from(ca.der).toString('base64')] },
    );
    const doc = fc.record(
      {
        keys: fc.array(fc.oneof(entry, realEntry), { maxLength: 6 }),
        spiffe_sequence: pick<unknown>(undefined, 0, 1, -1, 1.5, 2 ** 53, '1'),
        spiffe_refresh_hint: pick<unknown>(undefined, 0, 300, -5, 0.5, null),
      },
      { requiredKeys: ['keys'] },
    );
    fc.assert(
      fc.property(doc, (d) => {
        const text = JSON.stringify(d);
        const jwt = onlyIdentityErrors(() => JwtBundle.parse('example.org', text));
        if (jwt !== undefined) expect(JwtBundle.parse('example.org', jwt.marshal()).equals(jwt)).toBe(true);
        const sb = onlyIdentityErrors(() => SpiffeBundle.parse('example.org', text));
        if (sb !== undefined) expect(SpiffeBundle.parse('example.org', sb.marshal()).equals(sb)).toBe(true);
      }),
      { numRuns: 1500 },
    );
  });

  it('mutated valid SPIFFE bundle text: only IdentityError', () => {
    const text = JSON.stringify({
      keys: [
        {
          use: 'x509-svid',
          ...ca.cert.publicKey.export({ format: 'jwk' }),
          x5c: [Buffer.from(ca.der).toString('base64')],
        },
        { use: 'jwt-svid', ...ec.jwk, kid: 'k' },
      ],
      spiffe_sequence: 1,
    });
    const mutation = fc.tuple(fc.nat(text.length), fc.nat(4), fc.string({ unit: 'binary', maxLength: 3 }));
    fc.assert(
      fc.property(mutation, ([at, cut, ins]) => {
        const mutated = text.slice(0, at) + ins + text.slice(at + cut);
        onlyIdentityErrors(() => SpiffeBundle.parse('example.org', mutated));
        onlyIdentityErrors(() => JwtBundle.parse('example.org', mutated));
      }),
      { numRuns: 1500 },
    );
  });

  it('arbitrary bytes and mutated DER/PEM: only IdentityError, and what parses round-trips', () => {
    const der = Buffer.concat([ca.der, ca2.der]);
    const mutatedDer = fc
      .tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(der.length))
      .map(([at, byte, cut]) => {
        const copy = Buffer.from(der);
        copy[at] = byte;
        return copy.subarray(0, Math.max(cut, at + 1));
      });
    const text = pem(ca.der) + pem(ca2.der);
    const mutatedPem = fc
      .tuple(fc.nat(text.length), fc.nat(3), fc.string({ unit: 'binary', maxLength: 3 }))
      .map(([at, cut, ins]) => text.slice(0, at) + ins + text.slice(at + cut));
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from([0x30, 0x82]), b])),
      mutatedDer,
      mutatedPem,
      fc.string({ maxLength: 200 }),
    );
    fc.assert(
      fc.property(input, (v) => {
        const bundle = onlyIdentityErrors(() => X509Bundle.parse('example.org', v));
        if (bundle !== undefined) {
          expect(X509Bundle.parse('example.org', bundle.marshal()).equals(bundle)).toBe(true);
          expect(X509Bundle.parse('example.org', bundle.toDer()).equals(bundle)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
