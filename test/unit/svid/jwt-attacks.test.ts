// The JWT attack catalogue (spiffe-rules.md §2), one named test per item. Each asserts the exact
// code of the check that must stop the attack; a positive control shows the setup is sound.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet, type JwtBundle } from '../../../src/bundle/index.js';
import { validateJwtSvid } from '../../../src/svid/index.js';
import { expectIdentityError, expectIdentityRejection } from '../../fixtures/errors.js';
import {
  b64url,
  createJwtAuthority,
  type JwtAuthority,
  jwtBundleOf,
  type MintOptions,
  mintJwtSvid,
  signJwt,
} from '../../fixtures/token.js';

const SUB = 'spiffe://example.org/workload';
const AUD = 'spiffe://example.org/api';
const NOW = new Date('2030-06-01T12:00:00Z');
const NOW_SEC = NOW.getTime() / 1000;

let es: JwtAuthority;
let rs: JwtAuthority;
let bundles: BundleSet;

beforeAll(() => {
  es = createJwtAuthority({ trustDomain: 'example.org', alg: 'ES256', kid: 'es' });
  rs = createJwtAuthority({ trustDomain: 'example.org', alg: 'RS256', kid: 'rs' });
  bundles = new BundleSet(jwtBundleOf(es, rs));
});

function mint(a: JwtAuthority, o: Partial<MintOptions> = {}): string {
  return mintJwtSvid(a, { sub: SUB, aud: AUD, now: NOW, ...o });
}

function validate(token: string, set: BundleSet | JwtBundle = bundles, audience: string | string[] = AUD) {
  return validateJwtSvid(token, set, audience, { now: NOW });
}

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: SUB, aud: AUD, exp: NOW_SEC + 300, iat: NOW_SEC, ...over };
}

/** A bundle source holding keys our JwtBundle refuses to import (to test the validator's own checks). */
function rawKeyBundle(td: string, keys: Record<string, KeyObject>): JwtBundle {
  return {
    trustDomain: { name: td, equals: (o: { name: string }) => o.name === td },
    getPublicKey: (kid: string) => (Object.hasOwn(keys, kid) ? keys[kid] : undefined),
    findAuthority: (kid: string) =>
      Object.hasOwn(keys, kid) ? keys[kid]!.export({ format: 'jwk' }) : undefined,
  } as unknown as JwtBundle;
}

describe('JWT attack catalogue', () => {
  it('accepts the positive control (well-formed ES256 and RS256 tokens)', async () => {
    expect((await validate(mint(es))).spiffeId.toString()).toBe(SUB);
    expect((await validate(mint(rs))).spiffeId.toString()).toBe(SUB);
  });

  it('rejects alg none', async () => {
    const token = signJwt({ header: { alg: 'none', kid: es.kid }, claims: claims() });
    expect(token.endsWith('.')).toBe(true);
    await expectIdentityRejection(validate(token), 'jwtsvid-unsupported-alg');
  });

  it('rejects HS256 key confusion (HMAC keyed with the RSA public key)', async () => {
    const token = signJwt({
      header: { alg: 'HS256', kid: rs.kid, typ: 'JWT' },
      claims: claims(),
      key: rs.publicKey,
    });
    await expectIdentityRejection(validate(token), 'jwtsvid-unsupported-alg');
  });

  it('rejects EdDSA even when the Ed25519 key is in the bundle', async () => {
    const ed = generateKeyPairSync('ed25519');
    const token = signJwt({
      header: { alg: 'EdDSA', kid: 'ed', typ: 'JWT' },
      claims: claims(),
      key: ed.privateKey,
    });
    await expectIdentityRejection(
      validate(token, rawKeyBundle('example.org', { ed: ed.publicKey })),
      'jwtsvid-unsupported-alg',
    );
  });

  it('rejects an RS256 header over an EC key (alg/key mismatch)', async () => {
    const token = mint(es, { header: { alg: 'RS256' }, alg: 'ES256' });
    await expectIdentityRejection(validate(token), 'jwtsvid-alg-key-mismatch');
  });

  it('rejects ES384 with a P-256 key (alg/curve mismatch)', async () => {
    const token = mint(es, { header: { alg: 'ES384' }, alg: 'ES256' });
    await expectIdentityRejection(validate(token), 'jwtsvid-alg-key-mismatch');
  });

  it('rejects an ES256 header over an RSA key', async () => {
    const token = mint(rs, { header: { alg: 'ES256' }, alg: 'RS256' });
    await expectIdentityRejection(validate(token), 'jwtsvid-alg-key-mismatch');
  });

  it('rejects an unknown kid', async () => {
    await expectIdentityRejection(validate(mint(es, { header: { kid: 'unknown' } })), 'jwtsvid-unknown-kid');
  });

  it('rejects a missing kid even with a single key in the bundle (decision)', async () => {
    const single = jwtBundleOf(es);
    await expectIdentityRejection(
      validate(mint(es, { header: { kid: undefined } }), single),
      'jwtsvid-missing-kid',
    );
  });

  it('treats kid injection strings as opaque map keys', async () => {
    for (const kid of ['../../dev/null', "' OR 1=1 --", '__proto__', 'constructor', 'toString']) {
      await expectIdentityRejection(validate(mint(es, { header: { kid } })), 'jwtsvid-unknown-kid');
    }
  });

  it('caps kid length (300 characters)', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { kid: 'k'.repeat(300) } })),
      'jwtsvid-invalid-kid',
    );
  });

  it('caps the header size before decoding it (10 kB kid)', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { kid: 'k'.repeat(10_000) } })),
      'jwtsvid-token-too-large',
    );
  });

  it('never uses another trust domain key (sub in TD B, kid only in TD A)', async () => {
    const b = createJwtAuthority({ trustDomain: 'b.org', kid: 'b-key' });
    const set = new BundleSet(jwtBundleOf(es), jwtBundleOf(b));
    // Signed with TD A's key, claiming a TD B subject.
    await expectIdentityRejection(
      validate(mint(es, { sub: 'spiffe://b.org/admin' }), set),
      'jwtsvid-unknown-kid',
    );
    // Signed with TD B's key, claiming a TD A subject.
    await expectIdentityRejection(
      validate(mintJwtSvid(b, { sub: SUB, aud: AUD, now: NOW }), set),
      'jwtsvid-unknown-kid',
    );
    // Even when both trust domains use the same kid, only the sub's trust domain key verifies.
    const b2 = createJwtAuthority({ trustDomain: 'b.org', kid: es.kid });
    const same = new BundleSet(jwtBundleOf(es), jwtBundleOf(b2));
    await expectIdentityRejection(
      validate(mint(es, { sub: 'spiffe://b.org/admin' }), same),
      'jwtsvid-invalid-signature',
    );
    expect(
      (
        await validate(mintJwtSvid(b2, { sub: 'spiffe://b.org/admin', aud: AUD, now: NOW }), same)
      ).spiffeId.toString(),
    ).toBe('spiffe://b.org/admin');
  });

  it('quotes untrusted text in error messages (no forged log lines)', async () => {
    const err = await expectIdentityRejection(
      validate(mint(es, { header: { kid: 'x\nlevel=info msg="accepted"' } })),
      'jwtsvid-unknown-kid',
    );
    expect(err.message).not.toContain('\n');
    expect(err.message).toContain('"x\\nlevel=info msg=\\"accepted\\""');
    const member = await expectIdentityRejection(
      validate(mint(es, { header: { 'a\rb': 1 } })),
      'jwtsvid-disallowed-header',
    );
    expect(member.message).not.toContain('\r');
  });

  it('rejects a jku header', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { jku: 'https://attacker.example/jwks' } })),
      'jwtsvid-disallowed-header',
    );
  });

  it('rejects an x5u header', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { x5u: 'https://attacker.example/cert' } })),
      'jwtsvid-disallowed-header',
    );
  });

  it('rejects an embedded jwk header (attacker key)', async () => {
    const attacker = createJwtAuthority({ trustDomain: 'example.org', kid: es.kid });
    const token = mintJwtSvid(attacker, { sub: SUB, aud: AUD, now: NOW, header: { jwk: attacker.jwk } });
    const err = await expectIdentityRejection(validate(token), 'jwtsvid-disallowed-header');
    expect(err.details).toEqual({ member: 'jwk' });
  });

  it('rejects an embedded x5c header', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { x5c: ['MIIB'] } })),
      'jwtsvid-disallowed-header',
    );
  });

  it('rejects crit', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { crit: ['foo'], foo: 1 } })),
      'jwtsvid-disallowed-header',
    );
  });

  it('rejects b64:false (unencoded payload)', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { b64: false, crit: ['b64'] } })),
      'jwtsvid-disallowed-header',
    );
  });

  it('rejects a missing exp', async () => {
    await expectIdentityRejection(
      validate(mint(es, { claims: { exp: undefined } })),
      'jwtsvid-missing-expiry',
    );
  });

  it('rejects a token expired 10 s ago', async () => {
    await expectIdentityRejection(validate(mint(es, { claims: { exp: NOW_SEC - 10 } })), 'jwtsvid-expired');
  });

  it('rejects a token expired 5 min ago even with the largest tolerance', async () => {
    const token = mint(es, { claims: { exp: NOW_SEC - 300 } });
    await expectIdentityRejection(
      validateJwtSvid(token, bundles, AUD, { now: NOW, clockToleranceSec: 60 }),
      'jwtsvid-expired',
    );
    await expectIdentityRejection(
      validateJwtSvid(token, bundles, AUD, { now: NOW, clockToleranceSec: 300 }),
      'jwtsvid-invalid-option',
    );
  });

  it('rejects exp as a string', async () => {
    await expectIdentityRejection(
      validate(mint(es, { claims: { exp: '9999999999' } })),
      'jwtsvid-invalid-claim',
    );
  });

  it('rejects nbf in the future', async () => {
    await expectIdentityRejection(
      validate(mint(es, { claims: { nbf: NOW_SEC + 60 } })),
      'jwtsvid-not-yet-valid',
    );
  });

  it('rejects iat in the future', async () => {
    await expectIdentityRejection(
      validate(mint(es, { claims: { iat: NOW_SEC + 3600 } })),
      'jwtsvid-issued-in-future',
    );
  });

  it('rejects a missing aud', async () => {
    await expectIdentityRejection(
      validate(mint(es, { claims: { aud: undefined } })),
      'jwtsvid-missing-audience',
    );
  });

  it('accepts both aud forms ("svc" and ["other","svc"])', async () => {
    expect((await validate(mint(es, { aud: 'svc' }), bundles, 'svc')).audience).toEqual(['svc']);
    expect((await validate(mint(es, { aud: ['other', 'svc'] }), bundles, 'svc')).audience).toEqual([
      'other',
      'svc',
    ]);
  });

  it('rejects an empty aud list', async () => {
    await expectIdentityRejection(validate(mint(es, { aud: [] })), 'jwtsvid-missing-audience');
  });

  it('never treats an empty expected audience as "accept any"', async () => {
    await expectIdentityRejection(validate(mint(es), bundles, []), 'jwtsvid-empty-expected-audience');
    await expectIdentityRejection(
      validate(mint(es, { aud: '' }), bundles, ''),
      'jwtsvid-empty-expected-audience',
    );
    await expectIdentityRejection(
      validate(mint(es, { aud: '' }), bundles, ['']),
      'jwtsvid-empty-expected-audience',
    );
  });

  it('stops multi-audience replay in single-audience mode', async () => {
    const token = mint(es, { aud: ['spiffe://example.org/a', 'spiffe://example.org/b'] });
    expect((await validate(token, bundles, 'spiffe://example.org/b')).spiffeId.toString()).toBe(SUB);
    await expectIdentityRejection(
      validateJwtSvid(token, bundles, 'spiffe://example.org/b', { now: NOW, requireSingleAudience: true }),
      'jwtsvid-audience-mismatch',
    );
  });

  it('rejects typ at+jwt', async () => {
    await expectIdentityRejection(validate(mint(es, { header: { typ: 'at+jwt' } })), 'jwtsvid-invalid-typ');
  });

  it('rejects a bad sub ("admin")', async () => {
    await expectIdentityRejection(validate(mint(es, { sub: 'admin' })), 'jwtsvid-invalid-subject');
  });

  it('rejects a bad sub (spiffe://td/a/../b)', async () => {
    await expectIdentityRejection(
      validate(mint(es, { sub: 'spiffe://example.org/a/../b' })),
      'jwtsvid-invalid-subject',
    );
  });

  it('rejects a duplicate claim (two sub members)', async () => {
    const rawPayload = `{"sub":"spiffe://b.org/admin","aud":"${AUD}","exp":${NOW_SEC + 300},"sub":"${SUB}"}`;
    const token = signJwt({ header: { alg: 'ES256', kid: es.kid }, rawPayload, key: es.privateKey });
    // JSON.parse would keep the last sub silently.
    expect(JSON.parse(rawPayload).sub).toBe(SUB);
    await expectIdentityRejection(validate(token), 'jwtsvid-duplicate-member');
  });

  it('rejects a duplicate claim spelled with an escape ("s\\u0075b")', async () => {
    const rawPayload = `{"sub":"${SUB}","aud":"${AUD}","exp":${NOW_SEC + 300},"s\\u0075b":"spiffe://example.org/admin"}`;
    const token = signJwt({ header: { alg: 'ES256', kid: es.kid }, rawPayload, key: es.privateKey });
    await expectIdentityRejection(validate(token), 'jwtsvid-duplicate-member');
  });

  it('rejects a duplicate header member (two alg)', async () => {
    const rawHeader = `{"alg":"none","kid":"${es.kid}","alg":"ES256"}`;
    const token = signJwt({ rawHeader, header: { alg: 'ES256' }, claims: claims(), key: es.privateKey });
    await expectIdentityRejection(validate(token), 'jwtsvid-duplicate-member');
  });

  it('bounds payload nesting at 16 levels (the top object included)', async () => {
    const nested = (levels: number) =>
      `{"sub":"${SUB}","aud":"${AUD}","exp":${NOW_SEC + 300},"x":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    const token = (levels: number) =>
      signJwt({ header: { alg: 'ES256', kid: es.kid }, rawPayload: nested(levels), key: es.privateKey });
    expect((await validate(token(16))).claims['x']).toBeDefined();
    await expectIdentityRejection(validate(token(17)), 'jwtsvid-malformed');
  });

  it('rejects a non-object payload ([1])', async () => {
    const token = signJwt({ header: { alg: 'ES256', kid: es.kid }, rawPayload: '[1]', key: es.privateKey });
    await expectIdentityRejection(validate(token), 'jwtsvid-malformed');
  });

  it('rejects JSON serialization', async () => {
    const [h, p, s] = mint(es).split('.');
    await expectIdentityRejection(
      validate(JSON.stringify({ protected: h, payload: p, signature: s })),
      'jwtsvid-malformed',
    );
  });

  it('rejects a JWE (five parts)', async () => {
    await expectIdentityRejection(
      validate(`${b64url('{"alg":"RSA-OAEP","enc":"A256GCM"}')}.AAAA.AAAA.AAAA.AAAA`),
      'jwtsvid-malformed',
    );
  });

  it('rejects malformed compact tokens (2 or 4 parts)', async () => {
    const [h, p, s] = mint(es).split('.');
    await expectIdentityRejection(validate(`${h}.${p}`), 'jwtsvid-malformed');
    await expectIdentityRejection(validate(`${h}.${p}.${s}.${s}`), 'jwtsvid-malformed');
    await expectIdentityRejection(validate(`.${p}.${s}`), 'jwtsvid-malformed');
  });

  it('rejects bad base64url (padding, standard alphabet, non-canonical bits)', async () => {
    const [h, p, s] = mint(es).split('.') as [string, string, string];
    await expectIdentityRejection(validate(`${h}.${p}.${s}=`), 'jwtsvid-invalid-base64url');
    await expectIdentityRejection(
      validate(`${h}.${p.replace(/-|_/g, '+')}x.${s}`),
      'jwtsvid-invalid-base64url',
    );
    await expectIdentityRejection(validate(`${h}.${p} .${s}`), 'jwtsvid-invalid-base64url');
    // 86 characters encode 64 bytes with 4 spare bits; setting them gives a second spelling of the
    // same signature, which Buffer.from would silently accept.
    const last = s.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) | 1]!;
    expect(twin).not.toBe(last);
    expect(Buffer.from(s.slice(0, -1) + twin, 'base64url').equals(Buffer.from(s, 'base64url'))).toBe(true);
    await expectIdentityRejection(
      validate(`${h}.${p}.${s.slice(0, -1)}${twin}`),
      'jwtsvid-invalid-base64url',
    );
  });

  it('rejects invalid UTF-8 and a byte-order mark in the payload', async () => {
    const [h, , sig] = mint(es).split('.');
    const bad = Buffer.concat([
      Buffer.from(`{"sub":"${SUB}","aud":"${AUD}","exp":${NOW_SEC + 300},"x":"`),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    await expectIdentityRejection(validate(`${h}.${bad.toString('base64url')}.${sig}`), 'jwtsvid-malformed');
    const bom = `\uFEFF${JSON.stringify(claims())}`;
    await expectIdentityRejection(
      validate(signJwt({ header: { alg: 'ES256', kid: es.kid }, rawPayload: bom, key: es.privateKey })),
      'jwtsvid-malformed',
    );
  });

  it('rejects a nested JWT (cty: JWT)', async () => {
    await expectIdentityRejection(
      validate(mint(es, { header: { cty: 'JWT' } })),
      'jwtsvid-disallowed-header',
    );
  });

  it('rejects the psychic signature (ES256 r = s = 0, CVE-2022-21449)', async () => {
    await expectIdentityRejection(
      validate(mint(es, { signature: new Uint8Array(64) })),
      'jwtsvid-invalid-signature',
    );
  });

  it('rejects a DER-encoded ECDSA signature', async () => {
    await expectIdentityRejection(validate(mint(es, { ecdsaEncoding: 'der' })), 'jwtsvid-invalid-signature');
  });

  it('rejects a 1024-bit RSA key (the bundle refuses it, and so does the validator)', async () => {
    const weak = createJwtAuthority({ trustDomain: 'example.org', alg: 'RS256', kid: 'weak', rsaBits: 1024 });
    expectIdentityError(() => jwtBundleOf(weak), 'bundle-jwk-weak-key');
    const token = mintJwtSvid(weak, { sub: SUB, aud: AUD, now: NOW });
    await expectIdentityRejection(
      validate(token, rawKeyBundle('example.org', { weak: weak.publicKey })),
      'jwtsvid-weak-key',
    );
  });

  it('rejects an oversized token (1 MB claim) before decoding it', async () => {
    const token = mint(es, { claims: { pad: 'x'.repeat(1 << 20) } });
    await expectIdentityRejection(validate(token), 'jwtsvid-token-too-large');
    const justUnder = mint(es, { claims: { pad: 'x'.repeat(11_000) } });
    expect(justUnder.length).toBeLessThanOrEqual(16_384);
    expect((await validate(justUnder)).claims['pad']).toHaveLength(11_000);
  });

  it('accepts a bundle key published with use "jwt-svid" (translated for import)', async () => {
    const { JwtBundle } = await import('../../../src/bundle/index.js');
    const bundle = JwtBundle.parse('example.org', JSON.stringify({ keys: [{ ...es.jwk, use: 'jwt-svid' }] }));
    expect((await validate(mint(es), bundle)).spiffeId.toString()).toBe(SUB);
  });

  it('rejects a key removed by a bundle update', async () => {
    const next = createJwtAuthority({ trustDomain: 'example.org', kid: 'next' });
    const token = mint(es);
    expect((await validate(token, new BundleSet(jwtBundleOf(es, next)))).spiffeId.toString()).toBe(SUB);
    await expectIdentityRejection(validate(token, new BundleSet(jwtBundleOf(next))), 'jwtsvid-unknown-kid');
  });
});
