// Property tests: hostile input only ever produces IdentityError (never a crash, never another
// error type, never a hang), and no mutation of a valid token or chain is accepted.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import { parseCertificateDer } from '../../../src/internal/x509-ext.js';
import { parseJwtSvidInsecure, validateJwtSvid, verifyX509Svid, X509Svid } from '../../../src/svid/index.js';
import { expectIdentityError } from '../../fixtures/errors.js';
import {
  type CaMaterial,
  createCa,
  createIntermediate,
  issueSvid,
  type SvidMaterial,
  x509BundleOf,
} from '../../fixtures/pki.js';
import {
  b64url,
  createJwtAuthority,
  type JwtAuthority,
  jwtBundleOf,
  mintJwtSvid,
  signJwt,
} from '../../fixtures/token.js';

const SUB = 'spiffe://example.org/workload';
const AUD = 'aud';
const NOW = new Date('2030-06-01T12:00:00Z');

/** Runs `fn`; passes if it returns or throws an IdentityError, rethrows anything else. */
function onlyIdentityErrors(fn: () => unknown): 'ok' | 'rejected' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof IdentityError) return 'rejected';
    throw err;
  }
}

async function onlyIdentityRejections(p: Promise<unknown>): Promise<'ok' | 'rejected'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof IdentityError) return 'rejected';
    throw err;
  }
}

const base64urlChar = fc.constantFrom(
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ '.split(''),
);

describe('JWT-SVID properties', () => {
  let auth: JwtAuthority;
  let bundles: BundleSet;
  let token: string;
  beforeAll(() => {
    auth = createJwtAuthority({ trustDomain: 'example.org', kid: 'k' });
    bundles = new BundleSet(jwtBundleOf(auth));
    token = mintJwtSvid(auth, { sub: SUB, aud: AUD, now: NOW });
  });

  it('validateJwtSvid rejects arbitrary strings with IdentityError only', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: base64urlChar, maxLength: 300 })),
        async (s) => {
          expect(await onlyIdentityRejections(validateJwtSvid(s, bundles, AUD, { now: NOW }))).toBe(
            'rejected',
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('validateJwtSvid rejects well-encoded tokens with arbitrary JSON header and payload', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue({ maxDepth: 4 }),
        fc.jsonValue({ maxDepth: 4 }),
        fc.uint8Array({ maxLength: 80 }),
        async (header, payload, sig) => {
          const t = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${b64url(sig)}`;
          expect(await onlyIdentityRejections(validateJwtSvid(t, bundles, AUD, { now: NOW }))).toBe(
            'rejected',
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('validateJwtSvid rejects plausible headers and claims with a wrong signature', async () => {
    const header = fc.record(
      {
        alg: fc.constantFrom('ES256', 'RS256', 'none', 'HS256', 'EdDSA'),
        kid: fc.constantFrom('k', 'x', ''),
        typ: fc.constantFrom('JWT', 'JOSE', 'x'),
      },
      { requiredKeys: [] },
    );
    const claims = fc.record(
      {
        sub: fc.constantFrom(SUB, 'spiffe://other.org/w', 'x', ''),
        aud: fc.oneof(fc.constant(AUD), fc.array(fc.string(), { maxLength: 3 })),
        exp: fc.oneof(fc.integer(), fc.double(), fc.string()),
        nbf: fc.integer(),
        iat: fc.integer(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(header, claims, async (h, c) => {
        const t = signJwt({ header: h, claims: c, signature: new Uint8Array(64).fill(1) });
        expect(await onlyIdentityRejections(validateJwtSvid(t, bundles, AUD, { now: NOW }))).toBe('rejected');
      }),
      { numRuns: 300 },
    );
  });

  it('no single-character change to a valid token is accepted', async () => {
    expect((await validateJwtSvid(token, bundles, AUD, { now: NOW })).spiffeId.toString()).toBe(SUB);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: token.length - 1 }), base64urlChar, async (i, c) => {
        fc.pre(token[i] !== c);
        const mutated = token.slice(0, i) + c + token.slice(i + 1);
        expect(await onlyIdentityRejections(validateJwtSvid(mutated, bundles, AUD, { now: NOW }))).toBe(
          'rejected',
        );
      }),
      { numRuns: 500 },
    );
  });

  it('parseJwtSvidInsecure throws IdentityError only', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: base64urlChar, maxLength: 300 })),
        (s) => {
          expect(onlyIdentityErrors(() => parseJwtSvidInsecure(s))).toBe('rejected');
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 4 }), (h, p) => {
        const t = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(p))}.AAAA`;
        onlyIdentityErrors(() => parseJwtSvidInsecure(t));
      }),
      { numRuns: 300 },
    );
  });

  it('handles deeply nested JSON without a crash', async () => {
    for (const depth of [17, 2000]) {
      const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const t = signJwt({
        header: { alg: 'ES256', kid: 'k' },
        rawPayload: `{"sub":"${SUB}","x":${nested}}`,
        key: auth.privateKey,
      });
      expect(await onlyIdentityRejections(validateJwtSvid(t, bundles, AUD, { now: NOW }))).toBe('rejected');
    }
  });
});

describe('X509-SVID properties', () => {
  let root: CaMaterial;
  let svid: SvidMaterial;
  let bundles: BundleSet;
  beforeAll(async () => {
    root = await createCa({ trustDomain: 'example.org' });
    svid = await issueSvid(await createIntermediate(root), SUB);
    bundles = new BundleSet(x509BundleOf(root));
  });

  it('parseCertificateDer and verifyX509Svid throw IdentityError only on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(onlyIdentityErrors(() => parseCertificateDer(bytes))).toBe('rejected');
        expect(onlyIdentityErrors(() => verifyX509Svid(bytes, bundles))).toBe('rejected');
      }),
      { numRuns: 500 },
    );
  });

  it('no single-byte change to a valid chain verifies', () => {
    expect(verifyX509Svid(svid.chainDer, bundles).spiffeId.toString()).toBe(SUB);
    fc.assert(
      fc.property(fc.nat({ max: svid.chainDer.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const mutated = new Uint8Array(svid.chainDer);
        mutated[i] = mutated[i]! ^ x;
        expect(onlyIdentityErrors(() => verifyX509Svid(mutated, bundles))).toBe('rejected');
        onlyIdentityErrors(() => parseCertificateDer(mutated.subarray(0, svid.der.length)));
      }),
      { numRuns: 1000 },
    );
  });

  it('X509Svid.parse throws IdentityError only on garbage chains and keys', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 400 }), fc.uint8Array({ maxLength: 400 })),
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.uint8Array({ maxLength: 200 }),
          fc.constant(svid.key.pkcs8Der),
        ),
        (chain, key) => {
          expect(onlyIdentityErrors(() => X509Svid.parse(chain, key))).toBe('rejected');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('X509Svid.parse never accepts a mutated leaf, nor a key that cannot sign for the leaf', () => {
    // The chain's top certificate is not checked by parse (no bundle), so mutate the leaf only.
    fc.assert(
      fc.property(fc.nat({ max: svid.der.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const chain = new Uint8Array(svid.chainDer);
        chain[i] = chain[i]! ^ x;
        expect(onlyIdentityErrors(() => X509Svid.parse(chain, svid.key.pkcs8Der))).toBe('rejected');
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat({ max: svid.key.pkcs8Der.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const key = new Uint8Array(svid.key.pkcs8Der);
        key[i] = key[i]! ^ x;
        let parsed: X509Svid | undefined;
        onlyIdentityErrors(() => {
          parsed = X509Svid.parse(svid.chainDer, key);
        });
        if (parsed !== undefined) {
          const sig = sign('sha256', Buffer.from('proof'), parsed.privateKey);
          expect(verify('sha256', Buffer.from('proof'), parsed.leaf.publicKey, sig)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('X509Svid.parse refuses a PKCS#8 key whose embedded public key is not its own', () => {
    // Swap the private scalar of an EC PKCS#8 key for another key's scalar, keeping the
    // embedded public point: OpenSSL reports the embedded (matching) public key.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const mine = svid.key.privateKey.export({ format: 'jwk' });
    const forged = createPrivateKey({ key: { ...mine, d: other.d! }, format: 'jwk' });
    expect(createPublicKey(forged).export({ format: 'jwk' }).x).toBe(mine.x);
    const der = new Uint8Array(forged.export({ format: 'der', type: 'pkcs8' }));
    expectIdentityError(() => X509Svid.parse(svid.chainDer, der), 'x509svid-key-mismatch');
  });

  it('PEM garbage around valid blocks yields IdentityError only', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 100 }),
        fc.string({ maxLength: 100 }),
        fc.nat(),
        (before, after, cut) => {
          const pem = svid.chainPem;
          const text = before + pem.slice(0, cut % pem.length) + after;
          onlyIdentityErrors(() => verifyX509Svid(text, bundles));
          onlyIdentityErrors(() => X509Svid.parse(text, svid.key.pkcs8Pem));
        },
      ),
      { numRuns: 300 },
    );
  });
});
