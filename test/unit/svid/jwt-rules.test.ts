// JWT-SVID spec rules (spiffe-rules.md §1.3), one table row per rule and outcome. Negative rows
// assert the exact error code, so removing the check under a row fails it.
import { importJWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet, type JwtBundle } from '../../../src/bundle/index.js';
import { JWT_SVID_ALGORITHMS, parseJwtSvidInsecure, validateJwtSvid } from '../../../src/svid/index.js';
import { expectIdentityError, expectIdentityRejection } from '../../fixtures/errors.js';
import {
  b64url,
  createJwtAuthority,
  type JwtAuthority,
  jwtBundleOf,
  type MintOptions,
  mintJwtSvid,
  type SigningAlgorithm,
  signJwt,
} from '../../fixtures/token.js';

const SUB = 'spiffe://example.org/workload';
const AUD = 'spiffe://example.org/api';
const NOW = new Date('2030-06-01T12:00:00Z');
const NOW_SEC = NOW.getTime() / 1000;

interface Ctx {
  es256: JwtAuthority;
  byAlg: Record<string, JwtAuthority>;
  other: JwtAuthority;
  bundles: BundleSet;
}

interface Case {
  token: string;
  audience?: string | string[];
  bundles?: BundleSet | JwtBundle;
  opts?: Parameters<typeof validateJwtSvid>[3];
}

interface Row {
  rule: string;
  expect: string;
  build: (c: Ctx) => Case;
}

function mint(a: JwtAuthority, o: Partial<MintOptions> = {}): string {
  return mintJwtSvid(a, { sub: SUB, aud: AUD, now: NOW, ...o });
}

const rows: Row[] = [
  // §1 / §5.1 serialization
  { rule: '§1 compact serialization', expect: 'ok', build: (c) => ({ token: mint(c.es256) }) },
  {
    rule: '§5.1 JSON (flattened) serialization is refused',
    expect: 'jwtsvid-malformed',
    build: (c) => {
      const [h, p, s] = mint(c.es256).split('.');
      return { token: JSON.stringify({ protected: h, payload: p, signature: s }) };
    },
  },
  {
    rule: '§1 a five-part token (JWE) is refused',
    expect: 'jwtsvid-malformed',
    build: (c) => ({ token: `${mint(c.es256)}.AA.AA` }),
  },
  // §2 header members
  {
    rule: '§2 a header member other than alg/kid/typ',
    expect: 'jwtsvid-disallowed-header',
    build: (c) => ({ token: mint(c.es256, { header: { foo: 'bar' } }) }),
  },
  // §2.1 algorithm allow-list
  ...(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const).map(
    (alg): Row => ({
      rule: `§2.1 ${alg} is allowed`,
      expect: 'ok',
      build: (c) => ({ token: mint(c.byAlg[alg]!) }),
    }),
  ),
  ...(['none', 'HS256', 'HS512', 'EdDSA', 'ES256K', 'RS1', 'rs256'] as const).map(
    (alg): Row => ({
      rule: `§2.1 ${alg} is refused`,
      expect: 'jwtsvid-unsupported-alg',
      build: (c) => ({
        token: signJwt({
          header: { alg, kid: c.es256.kid },
          claims: claims(),
          signature: new Uint8Array(64),
        }),
      }),
    }),
  ),
  {
    rule: '§2.1 a non-string alg',
    expect: 'jwtsvid-unsupported-alg',
    build: (c) => ({ token: mint(c.es256, { header: { alg: 256 } }) }),
  },
  // §2.2 key ID
  {
    rule: '§2.2 missing kid (decision: required)',
    expect: 'jwtsvid-missing-kid',
    build: (c) => ({ token: mint(c.es256, { header: { kid: undefined } }) }),
  },
  {
    rule: '§2.2 empty kid',
    expect: 'jwtsvid-invalid-kid',
    build: (c) => ({ token: mint(c.es256, { header: { kid: '' } }) }),
  },
  {
    rule: '§2.2 non-string kid',
    expect: 'jwtsvid-invalid-kid',
    build: (c) => ({ token: mint(c.es256, { header: { kid: 7 } }) }),
  },
  {
    rule: '§2.2 kid not in the bundle',
    expect: 'jwtsvid-unknown-kid',
    build: (c) => ({ token: mint(c.es256, { header: { kid: 'nope' } }) }),
  },
  // §2.3 type
  {
    rule: '§2.3 typ absent',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { header: { typ: undefined } }) }),
  },
  {
    rule: '§2.3 typ JWT',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { header: { typ: 'JWT' } }) }),
  },
  {
    rule: '§2.3 typ JOSE',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { header: { typ: 'JOSE' } }) }),
  },
  {
    rule: '§2.3 typ at+jwt',
    expect: 'jwtsvid-invalid-typ',
    build: (c) => ({ token: mint(c.es256, { header: { typ: 'at+jwt' } }) }),
  },
  {
    rule: '§2.3 typ jwt (lowercase)',
    expect: 'jwtsvid-invalid-typ',
    build: (c) => ({ token: mint(c.es256, { header: { typ: 'jwt' } }) }),
  },
  {
    rule: '§2.3 non-string typ',
    expect: 'jwtsvid-invalid-typ',
    build: (c) => ({ token: mint(c.es256, { header: { typ: 1 } }) }),
  },
  // §3.1 subject
  {
    rule: '§3.1 missing sub',
    expect: 'jwtsvid-missing-subject',
    build: (c) => ({ token: mint(c.es256, { claims: { sub: undefined } }) }),
  },
  {
    rule: '§3.1 non-string sub',
    expect: 'jwtsvid-invalid-subject',
    build: (c) => ({ token: mint(c.es256, { claims: { sub: ['spiffe://example.org/w'] } }) }),
  },
  {
    rule: '§3.1 sub that is not a SPIFFE ID',
    expect: 'jwtsvid-invalid-subject',
    build: (c) => ({ token: mint(c.es256, { sub: 'admin' }) }),
  },
  {
    rule: '§3.1 sub with a dot segment',
    expect: 'jwtsvid-invalid-subject',
    build: (c) => ({ token: mint(c.es256, { sub: 'spiffe://example.org/a/../b' }) }),
  },
  {
    rule: '§3.1 sub that is a trust domain ID',
    expect: 'jwtsvid-invalid-subject',
    build: (c) => ({ token: mint(c.es256, { sub: 'spiffe://example.org' }) }),
  },
  // §3.2 audience
  {
    rule: '§3.2 missing aud',
    expect: 'jwtsvid-missing-audience',
    build: (c) => ({ token: mint(c.es256, { claims: { aud: undefined } }) }),
  },
  {
    rule: '§3.2 empty aud list',
    expect: 'jwtsvid-missing-audience',
    build: (c) => ({ token: mint(c.es256, { aud: [] }) }),
  },
  { rule: '§3.2 aud as a string', expect: 'ok', build: (c) => ({ token: mint(c.es256, { aud: AUD }) }) },
  {
    rule: '§3.2 aud as a list containing ours',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { aud: ['other', AUD] }) }),
  },
  {
    rule: '§3.2 aud without ours',
    expect: 'jwtsvid-audience-mismatch',
    build: (c) => ({ token: mint(c.es256, { aud: ['other'] }) }),
  },
  {
    rule: '§3.2 aud compared exactly (no prefix match)',
    expect: 'jwtsvid-audience-mismatch',
    build: (c) => ({ token: mint(c.es256, { aud: `${AUD}/x` }) }),
  },
  {
    rule: '§3.2 one of several expected audiences',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { aud: 'b' }), audience: ['a', 'b'] }),
  },
  {
    rule: '§3.2 more than 32 aud values',
    expect: 'jwtsvid-too-many-audiences',
    build: (c) => ({
      token: mint(c.es256, { aud: [AUD, ...Array.from({ length: 32 }, (_, i) => `a${i}`)] }),
    }),
  },
  {
    rule: '§3.2 32 aud values',
    expect: 'ok',
    build: (c) => ({
      token: mint(c.es256, { aud: [AUD, ...Array.from({ length: 31 }, (_, i) => `a${i}`)] }),
    }),
  },
  {
    rule: '§3.2 aud of the wrong type',
    expect: 'jwtsvid-invalid-claim',
    build: (c) => ({ token: mint(c.es256, { claims: { aud: 5 } }) }),
  },
  {
    rule: '§3.2 aud list with a non-string',
    expect: 'jwtsvid-invalid-claim',
    build: (c) => ({ token: mint(c.es256, { claims: { aud: [AUD, 5] } }) }),
  },
  {
    rule: '§3.2 empty expected audience list',
    expect: 'jwtsvid-empty-expected-audience',
    build: (c) => ({ token: mint(c.es256), audience: [] }),
  },
  {
    rule: '§3.2 empty expected audience string',
    expect: 'jwtsvid-empty-expected-audience',
    build: (c) => ({ token: mint(c.es256, { aud: '' }), audience: '' }),
  },
  // §3.3 expiration, and nbf/iat per RFC 7519
  {
    rule: '§3.3 missing exp',
    expect: 'jwtsvid-missing-expiry',
    build: (c) => ({ token: mint(c.es256, { claims: { exp: undefined } }) }),
  },
  {
    rule: '§3.3 exp as a string',
    expect: 'jwtsvid-invalid-claim',
    build: (c) => ({ token: mint(c.es256, { claims: { exp: String(NOW_SEC + 60) } }) }),
  },
  {
    rule: '§3.3 exp beyond any Date',
    expect: 'jwtsvid-invalid-claim',
    build: (c) => ({ token: mint(c.es256, { claims: { exp: 1e300 } }) }),
  },
  {
    rule: '§3.3 expired 10 s ago (tolerance 5 s)',
    expect: 'jwtsvid-expired',
    build: (c) => ({ token: mint(c.es256, { claims: { exp: NOW_SEC - 10 } }) }),
  },
  {
    rule: '§3.3 expired 3 s ago is within the default 5 s tolerance',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { claims: { exp: NOW_SEC - 3 } }) }),
  },
  {
    rule: '§3.3 exp equal to now with no tolerance',
    expect: 'jwtsvid-expired',
    build: (c) => ({
      token: mint(c.es256, { claims: { exp: NOW_SEC } }),
      opts: { now: NOW, clockToleranceSec: 0 },
    }),
  },
  {
    rule: '§3.3 a larger tolerance admits a recently expired token',
    expect: 'ok',
    build: (c) => ({
      token: mint(c.es256, { claims: { exp: NOW_SEC - 50 } }),
      opts: { now: NOW, clockToleranceSec: 60 },
    }),
  },
  {
    rule: 'RFC 7519 nbf in the future',
    expect: 'jwtsvid-not-yet-valid',
    build: (c) => ({ token: mint(c.es256, { claims: { nbf: NOW_SEC + 60 } }) }),
  },
  {
    rule: 'RFC 7519 nbf within tolerance',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256, { claims: { nbf: NOW_SEC + 4 } }) }),
  },
  {
    rule: 'RFC 7519 nbf of the wrong type',
    expect: 'jwtsvid-invalid-claim',
    build: (c) => ({ token: mint(c.es256, { claims: { nbf: 'soon' } }) }),
  },
  {
    rule: 'RFC 7519 iat in the future',
    expect: 'jwtsvid-issued-in-future',
    build: (c) => ({ token: mint(c.es256, { claims: { iat: NOW_SEC + 3600 } }) }),
  },
  {
    rule: 'RFC 7519 iat of the wrong type',
    expect: 'jwtsvid-invalid-claim',
    build: (c) => ({ token: mint(c.es256, { claims: { iat: null } }) }),
  },
  {
    rule: 'maxTokenAgeSec: token too old',
    expect: 'jwtsvid-too-old',
    build: (c) => ({
      token: mint(c.es256, { claims: { iat: NOW_SEC - 120 } }),
      opts: { now: NOW, maxTokenAgeSec: 60 },
    }),
  },
  {
    rule: 'maxTokenAgeSec: young enough',
    expect: 'ok',
    build: (c) => ({
      token: mint(c.es256, { claims: { iat: NOW_SEC - 30 } }),
      opts: { now: NOW, maxTokenAgeSec: 60 },
    }),
  },
  {
    rule: 'maxTokenAgeSec needs iat',
    expect: 'jwtsvid-missing-iat',
    build: (c) => ({
      token: mint(c.es256, { claims: { iat: undefined } }),
      opts: { now: NOW, maxTokenAgeSec: 60 },
    }),
  },
  // §4 signature
  {
    rule: '§4 a tampered payload',
    expect: 'jwtsvid-invalid-signature',
    build: (c) => {
      const [h, , s] = mint(c.es256).split('.');
      return { token: `${h}.${b64url(JSON.stringify(claims({ sub: 'spiffe://example.org/admin' })))}.${s}` };
    },
  },
  {
    rule: '§4 signed by another key under a known kid',
    expect: 'jwtsvid-invalid-signature',
    build: (c) => ({
      token: mint(c.es256, { key: createJwtAuthority({ trustDomain: 'example.org' }).privateKey }),
    }),
  },
  {
    rule: '§4 RSA signature of the wrong length',
    expect: 'jwtsvid-invalid-signature',
    build: (c) => ({ token: `${mint(c.byAlg['RS256']!)}AAAA` }),
  },
  {
    rule: '§4 PSS with a salt shorter than the hash',
    expect: 'jwtsvid-invalid-signature',
    build: (c) => ({ token: mint(c.byAlg['PS256']!, { pssSaltLength: 20 }) }),
  },
  {
    rule: '§4 empty signature',
    expect: 'jwtsvid-invalid-signature',
    build: (c) => ({ token: `${mint(c.es256).split('.').slice(0, 2).join('.')}.` }),
  },
  // §6.3 / Workload API §6.3: the sub's trust domain selects the bundle
  {
    rule: '§6.3 key from the sub trust domain bundle',
    expect: 'ok',
    build: (c) => ({ token: mintJwtSvid(c.other, { sub: 'spiffe://other.org/w', aud: AUD, now: NOW }) }),
  },
  {
    rule: '§6.3 kid known only in another trust domain',
    expect: 'jwtsvid-unknown-kid',
    build: (c) => ({ token: mintJwtSvid(c.other, { sub: SUB, aud: AUD, now: NOW }) }),
  },
  {
    rule: '§6.3 no JWT bundle for the sub trust domain',
    expect: 'jwtsvid-no-bundle',
    build: (c) => ({ token: mint(c.es256, { sub: 'spiffe://third.org/w' }) }),
  },
  {
    rule: '§6.3 a single JwtBundle of another trust domain',
    expect: 'jwtsvid-no-bundle',
    build: (c) => ({ token: mint(c.es256), bundles: jwtBundleOf(c.other) }),
  },
  {
    rule: '§6.3 a single JwtBundle of the sub trust domain',
    expect: 'ok',
    build: (c) => ({ token: mint(c.es256), bundles: jwtBundleOf(c.es256) }),
  },
];

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: SUB, aud: AUD, exp: NOW_SEC + 300, iat: NOW_SEC, ...over };
}

const ctx = {} as Ctx;
beforeAll(() => {
  ctx.byAlg = {};
  for (const alg of JWT_SVID_ALGORITHMS) {
    ctx.byAlg[alg] = createJwtAuthority({
      trustDomain: 'example.org',
      alg: alg as SigningAlgorithm,
      kid: `k-${alg}`,
    });
  }
  ctx.es256 = ctx.byAlg['ES256']!;
  ctx.other = createJwtAuthority({ trustDomain: 'other.org', kid: 'k-other' });
  ctx.bundles = new BundleSet(jwtBundleOf(...Object.values(ctx.byAlg)), jwtBundleOf(ctx.other));
});

describe('JWT-SVID rules (validateJwtSvid)', () => {
  for (const row of rows) {
    it(`${row.rule} → ${row.expect}`, async () => {
      const c = row.build(ctx);
      const run = validateJwtSvid(
        c.token,
        c.bundles ?? ctx.bundles,
        c.audience ?? AUD,
        c.opts ?? { now: NOW },
      );
      if (row.expect === 'ok') {
        const svid = await run;
        expect(svid.token).toBe(c.token);
        expect(svid.spiffeId.toString()).toBe(
          JSON.parse(Buffer.from(c.token.split('.')[1]!, 'base64url').toString())['sub'],
        );
      } else {
        await expectIdentityRejection(run, row.expect);
      }
    });
  }
});

describe('validateJwtSvid results and options', () => {
  it('returns the SPIFFE ID, audience list, expiry and frozen claims', async () => {
    const token = mint(ctx.es256, { aud: ['x', AUD], claims: { extra: { nested: [1, 2] } } });
    const svid = await validateJwtSvid(token, ctx.bundles, AUD, { now: NOW });
    expect(svid.spiffeId.toString()).toBe(SUB);
    expect(svid.audience).toEqual(['x', AUD]);
    expect(svid.expiresAt.toISOString()).toBe(new Date((NOW_SEC + 300) * 1000).toISOString());
    expect(svid.claims['extra']).toEqual({ nested: [1, 2] });
    expect(Object.isFrozen(svid.claims)).toBe(true);
    expect(Object.isFrozen((svid.claims['extra'] as { nested: number[] }).nested)).toBe(true);
    expect(Object.isFrozen(svid.audience)).toBe(true);
    expect(svid.hint).toBeUndefined();
    expect(svid.marshal()).toBe(token);
  });

  it('turns a string aud into a one-element list', async () => {
    const svid = await validateJwtSvid(mint(ctx.es256, { aud: AUD }), ctx.bundles, [AUD], { now: NOW });
    expect(svid.audience).toEqual([AUD]);
  });

  it('uses the real clock by default', async () => {
    const token = mintJwtSvid(ctx.es256, { sub: SUB, aud: AUD });
    expect((await validateJwtSvid(token, ctx.bundles, AUD)).spiffeId.toString()).toBe(SUB);
    await expectIdentityRejection(
      validateJwtSvid(mint(ctx.es256), ctx.bundles, AUD),
      'jwtsvid-issued-in-future',
    );
  });

  it('requireSingleAudience refuses multi-audience tokens', async () => {
    const multi = mint(ctx.es256, { aud: [AUD, 'other'] });
    expect((await validateJwtSvid(multi, ctx.bundles, AUD, { now: NOW })).audience).toHaveLength(2);
    await expectIdentityRejection(
      validateJwtSvid(multi, ctx.bundles, AUD, { now: NOW, requireSingleAudience: true }),
      'jwtsvid-audience-mismatch',
    );
    const single = mint(ctx.es256, { aud: [AUD] });
    expect(
      (await validateJwtSvid(single, ctx.bundles, AUD, { now: NOW, requireSingleAudience: true })).audience,
    ).toEqual([AUD]);
  });

  it('rejects bad options', async () => {
    const t = mint(ctx.es256);
    for (const opts of [
      { now: NOW, clockToleranceSec: 61 },
      { now: NOW, clockToleranceSec: -1 },
      { now: NOW, clockToleranceSec: Number.NaN },
      { now: NOW, maxTokenAgeSec: 0 },
      { now: new Date(Number.NaN) },
      { now: NOW, requireSingleAudience: 'yes' as never },
    ]) {
      await expectIdentityRejection(validateJwtSvid(t, ctx.bundles, AUD, opts), 'jwtsvid-invalid-option');
    }
    await expectIdentityRejection(
      validateJwtSvid(t, ctx.bundles, [AUD, 3] as never, { now: NOW }),
      'jwtsvid-invalid-option',
    );
    await expectIdentityRejection(
      validateJwtSvid(t, ctx.bundles, { aud: AUD } as never, { now: NOW }),
      'jwtsvid-invalid-option',
    );
    await expectIdentityRejection(
      validateJwtSvid(t, {} as never, AUD, { now: NOW }),
      'jwtsvid-invalid-option',
    );
    await expectIdentityRejection(
      validateJwtSvid(42 as never, ctx.bundles, AUD, { now: NOW }),
      'jwtsvid-malformed',
    );
  });

  it('never throws synchronously: every failure is a rejected promise', () => {
    const p = validateJwtSvid('garbage', ctx.bundles, [], { now: NOW });
    expect(p).toBeInstanceOf(Promise);
    return expectIdentityRejection(p, 'jwtsvid-empty-expected-audience');
  });

  it('accepts tokens signed by jose (ES256, PS256, RS512)', async () => {
    for (const alg of ['ES256', 'PS256', 'RS512'] as const) {
      const a = ctx.byAlg[alg]!;
      const jwk = a.privateKey.export({ format: 'jwk' });
      const key = await importJWK({ ...jwk, alg }, alg);
      const token = await new SignJWT({ aud: AUD })
        .setProtectedHeader({ alg, kid: a.kid, typ: 'JWT' })
        .setSubject(SUB)
        .setIssuedAt(NOW_SEC)
        .setExpirationTime(NOW_SEC + 60)
        .sign(key);
      expect((await validateJwtSvid(token, ctx.bundles, AUD, { now: NOW })).spiffeId.toString()).toBe(SUB);
    }
  });

  it('refuses a token whose alg differs from the alg named by the bundle key', async () => {
    const a = createJwtAuthority({ trustDomain: 'example.org', alg: 'RS256', kid: 'rs-only' });
    const bundle = jwtBundleOf({ ...a, jwk: { ...a.jwk, alg: 'RS256' } });
    const ps = mintJwtSvid(a, { sub: SUB, aud: AUD, now: NOW, alg: 'PS256' });
    await expectIdentityRejection(validateJwtSvid(ps, bundle, AUD, { now: NOW }), 'jwtsvid-alg-key-mismatch');
    const rs = mintJwtSvid(a, { sub: SUB, aud: AUD, now: NOW });
    expect((await validateJwtSvid(rs, bundle, AUD, { now: NOW })).spiffeId.toString()).toBe(SUB);
  });
});

describe('parseJwtSvidInsecure', () => {
  it('parses without checking the signature or the clock', () => {
    const stranger = createJwtAuthority({ trustDomain: 'example.org' });
    const token = mintJwtSvid(stranger, { sub: SUB, aud: [AUD], now: new Date('2001-01-01T00:00:00Z') });
    const svid = parseJwtSvidInsecure(token, { hint: 'db' });
    expect(svid.spiffeId.toString()).toBe(SUB);
    expect(svid.audience).toEqual([AUD]);
    expect(svid.expiresAt.getUTCFullYear()).toBe(2001);
    expect(svid.hint).toBe('db');
    expect(svid.token).toBe(token);
  });

  it('applies the structure, header and claim rules', () => {
    const a = ctx.es256;
    expectIdentityError(
      () => parseJwtSvidInsecure(mint(a, { header: { alg: 'none' } })),
      'jwtsvid-unsupported-alg',
    );
    expectIdentityError(
      () => parseJwtSvidInsecure(mint(a, { header: { jku: 'https://x' } })),
      'jwtsvid-disallowed-header',
    );
    expectIdentityError(
      () => parseJwtSvidInsecure(mint(a, { claims: { aud: undefined } })),
      'jwtsvid-missing-audience',
    );
    expectIdentityError(
      () => parseJwtSvidInsecure(mint(a, { claims: { exp: undefined } })),
      'jwtsvid-missing-expiry',
    );
    expectIdentityError(() => parseJwtSvidInsecure(mint(a, { sub: 'x' })), 'jwtsvid-invalid-subject');
    expectIdentityError(
      () => parseJwtSvidInsecure(mint(a).split('.').slice(0, 2).join('.')),
      'jwtsvid-malformed',
    );
    expectIdentityError(
      () => parseJwtSvidInsecure(`${mint(a).split('.').slice(0, 2).join('.')}.`),
      'jwtsvid-invalid-signature',
    );
    expectIdentityError(() => parseJwtSvidInsecure(`${mint(a)}=`), 'jwtsvid-invalid-base64url');
  });

  it('validates the hint', () => {
    const t = mint(ctx.es256);
    expectIdentityError(() => parseJwtSvidInsecure(t, { hint: 'x'.repeat(1025) }), 'jwtsvid-invalid-option');
    expectIdentityError(() => parseJwtSvidInsecure(t, { hint: 1 as never }), 'jwtsvid-invalid-option');
  });
});
