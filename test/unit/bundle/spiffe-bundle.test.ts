import { generateKeyPairSync, type X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { JwtBundle, SpiffeBundle, X509Bundle } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import { TrustDomain } from '../../../src/spiffeid/index.js';
import { corruptEcPublicKey, makeCa, makeCaWithSpki } from './certs.js';
import { makeKey, type TestKey } from './keys.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).code;
  }
  return 'no error';
}

type Ca = { cert: X509Certificate; der: Uint8Array };
const TD = 'example.org';
let ecCa: Ca;
let rsaCa: Ca;
let edCa: Ca;
let otherCa: Ca;
let jwtKey: TestKey;
let jwtKey2: TestKey;

beforeAll(async () => {
  [ecCa, rsaCa, edCa, otherCa] = await Promise.all([
    makeCa(TD, 'P-256'),
    makeCa(TD, 'RSA-2048'),
    makeCa(TD, 'Ed25519'),
    makeCa(TD, 'P-256'),
  ]);
  jwtKey = makeKey('P-256');
  jwtKey2 = makeKey('RSA-2048');
});

const b64 = (der: Uint8Array): string => Buffer.from(der).toString('base64');

/** An x509-svid entry laid out as SPIRE writes it: use, kty, key members, x5c. */
function x509Entry(ca: Ca, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { kty, ...members } = ca.cert.publicKey.export({ format: 'jwk' });
  return { use: 'x509-svid', kty, ...members, x5c: [b64(ca.der)], ...extra };
}

function jwtEntry(k: TestKey, kid: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { kty, ...members } = k.jwk;
  return { use: 'jwt-svid', kty, kid, ...members, ...extra };
}

/** A document shaped like `spire-server bundle show -format spiffe` output. */
function spireDoc(): string {
  return JSON.stringify(
    {
      keys: [x509Entry(ecCa), x509Entry(rsaCa), jwtEntry(jwtKey, 'Yd1dyhLdgkkOwFRuLplQyiE3DTPu5E6V')],
      spiffe_refresh_hint: 300,
      spiffe_sequence: 3,
    },
    null,
    4,
  );
}

const rawHex = (b: X509Bundle): string[] => b.authorities.map((c) => c.raw.toString('hex'));
const hex = (der: Uint8Array): string => Buffer.from(der).toString('hex');

describe('SpiffeBundle.parse: the SPIRE format', () => {
  it('reads x509-svid and jwt-svid keys, the sequence number and the refresh hint', () => {
    const bundle = SpiffeBundle.parse(TD, spireDoc());
    expect(bundle.trustDomain.name).toBe(TD);
    expect(rawHex(bundle.x509Bundle())).toEqual([hex(ecCa.der), hex(rsaCa.der)]);
    expect(bundle.x509Bundle().trustDomain.name).toBe(TD);
    expect(bundle.jwtBundle().keyIds()).toEqual(['Yd1dyhLdgkkOwFRuLplQyiE3DTPu5E6V']);
    expect(bundle.jwtBundle().trustDomain.name).toBe(TD);
    expect(bundle.refreshHint).toBe(300);
    expect(bundle.sequenceNumber).toBe(3);
    expect(bundle.skippedKeys).toEqual([]);
  });

  it('accepts bytes and objects, and an empty keys array', () => {
    expect(SpiffeBundle.parse(TD, new TextEncoder().encode(spireDoc())).sequenceNumber).toBe(3);
    expect(SpiffeBundle.parse(TD, JSON.parse(spireDoc()) as object).refreshHint).toBe(300);
    const empty = SpiffeBundle.parse(TD, '{"keys":[]}');
    expect(empty.x509Bundle().authorities).toEqual([]);
    expect(empty.jwtBundle().size).toBe(0);
    expect(empty.refreshHint).toBeUndefined();
    expect(empty.sequenceNumber).toBeUndefined();
    expect('refreshHint' in empty).toBe(false);
  });

  it('ignores unknown top-level members', () => {
    const doc = JSON.stringify({ keys: [x509Entry(ecCa)], spiffe_future: { a: 1 }, note: 'x' });
    expect(rawHex(SpiffeBundle.parse(TD, doc).x509Bundle())).toEqual([hex(ecCa.der)]);
  });

  it('round-trips through marshal with the same layout', () => {
    const bundle = SpiffeBundle.parse(TD, spireDoc());
    const text = bundle.marshal();
    const doc = JSON.parse(text) as { keys: Array<Record<string, unknown>> } & Record<string, unknown>;
    expect(doc).toEqual(JSON.parse(spireDoc()));
    expect(Object.keys(doc.keys[0]!)).toEqual(['use', 'kty', 'crv', 'x', 'y', 'x5c']);
    expect(Object.keys(doc.keys[2]!)).toEqual(['use', 'kty', 'kid', 'crv', 'x', 'y']);
    expect(SpiffeBundle.parse(TD, text).equals(bundle)).toBe(true);
  });

  it('round-trips an Ed25519 authority', () => {
    const bundle = SpiffeBundle.fromParts(TD, { x509: X509Bundle.fromAuthorities(TD, [edCa.cert]) });
    const back = SpiffeBundle.parse(TD, bundle.marshal());
    expect(rawHex(back.x509Bundle())).toEqual([hex(edCa.der)]);
    expect((JSON.parse(bundle.marshal()) as { keys: Array<{ kty: string }> }).keys[0]!.kty).toBe('OKP');
  });
});

describe('SpiffeBundle.marshal: authorities without a JWK form', () => {
  it('writes an RSA-PSS authority with kty and x5c only, and reads it back', async () => {
    const { publicKey } = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const ca = await makeCaWithSpki(TD, publicKey.export({ type: 'spki', format: 'der' }));
    const bundle = SpiffeBundle.fromParts(TD, { x509: X509Bundle.fromAuthorities(TD, [ca.cert]) });
    const doc = JSON.parse(bundle.marshal()) as { keys: Array<Record<string, unknown>> };
    expect(doc.keys).toEqual([{ use: 'x509-svid', kty: 'RSA', x5c: [b64(ca.der)] }]);
    expect(SpiffeBundle.parse(TD, bundle.marshal()).equals(bundle)).toBe(true);
  });

  it('refuses to marshal a DSA authority (no JWK key type), and never parses one from JSON', async () => {
    const { publicKey } = generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 });
    const ca = await makeCaWithSpki(TD, publicKey.export({ type: 'spki', format: 'der' }));
    const bundle = SpiffeBundle.fromParts(TD, { x509: X509Bundle.fromAuthorities(TD, [ca.der]) });
    expect(codeOf(() => bundle.marshal())).toBe('bundle-spiffe-unsupported-authority-key');
    for (const kty of ['EC', 'RSA', 'OKP']) {
      const doc = JSON.stringify({ keys: [{ use: 'x509-svid', kty, x5c: [b64(ca.der)] }] });
      expect(codeOf(() => SpiffeBundle.parse(TD, doc))).toBe('bundle-spiffe-x5c-key-mismatch');
    }
  });
});

describe('SpiffeBundle.parse: entries that are ignored (that key only)', () => {
  const rows: Array<[string, () => Record<string, unknown>, RegExp]> = [
    [
      'x509-svid without x5c',
      () => {
        const { x5c: _x, ...e } = x509Entry(otherCa);
        return e;
      },
      /without x5c/,
    ],
    ['x509-svid with empty x5c', () => x509Entry(otherCa, { x5c: [] }), /without x5c/],
    ['x509-svid with x5c not an array', () => x509Entry(otherCa, { x5c: b64(otherCa.der) }), /without x5c/],
    [
      'missing use',
      () => {
        const { use: _u, ...e } = x509Entry(otherCa);
        return e;
      },
      /missing use/,
    ],
    ['unknown use', () => x509Entry(otherCa, { use: 'enc' }), /unknown use "enc"/],
    ['use in another case', () => x509Entry(otherCa, { use: 'X509-SVID' }), /unknown use/],
    ['non-string use', () => x509Entry(otherCa, { use: ['x509-svid'] }), /use is not a string/],
    [
      'unknown kty on an x509-svid entry',
      () => x509Entry(otherCa, { kty: 'FOO' }),
      /unsupported key type "FOO"/,
    ],
    [
      'missing kty on an x509-svid entry',
      () => {
        const { kty: _k, ...e } = x509Entry(otherCa);
        return e;
      },
      /missing key type/,
    ],
    [
      'jwt-svid key of an unsupported type',
      () => jwtEntry(makeKey('Ed25519'), 'ed'),
      /unsupported key type "OKP"/,
    ],
  ];
  it.each(rows)('%s', (_name, entry, reason) => {
    const bundle = SpiffeBundle.parse(TD, JSON.stringify({ keys: [x509Entry(ecCa), entry()] }));
    expect(rawHex(bundle.x509Bundle())).toEqual([hex(ecCa.der)]);
    expect(bundle.jwtBundle().size).toBe(0);
    expect(bundle.skippedKeys).toHaveLength(1);
    expect(bundle.skippedKeys[0]).toMatchObject({ index: 1 });
    expect(bundle.skippedKeys[0]!.reason).toMatch(reason);
  });

  it('uses only the first x5c certificate (the rest is never parsed)', () => {
    const entry = x509Entry(ecCa, { x5c: [b64(ecCa.der), b64(otherCa.der), 'not base64 at all!'] });
    const bundle = SpiffeBundle.parse(TD, JSON.stringify({ keys: [entry] }));
    expect(rawHex(bundle.x509Bundle())).toEqual([hex(ecCa.der)]);
  });

  it('accepts an x509-svid entry with no key members besides kty', () => {
    const entry = { use: 'x509-svid', kty: 'RSA', x5c: [b64(rsaCa.der)] };
    expect(rawHex(SpiffeBundle.parse(TD, JSON.stringify({ keys: [entry] })).x509Bundle())).toEqual([
      hex(rsaCa.der),
    ]);
  });

  it('tolerates a kid on x509-svid entries', () => {
    const entry = x509Entry(ecCa, { kid: 'ca-1' });
    expect(SpiffeBundle.parse(TD, JSON.stringify({ keys: [entry] })).x509Bundle().authorities).toHaveLength(
      1,
    );
  });
});

describe('SpiffeBundle.parse: rejected bundles, one row per rule', () => {
  const doc = (...keys: Array<Record<string, unknown>>): string => JSON.stringify({ keys });
  const rows: Array<[string, () => string, string]> = [
    ['missing keys', () => '{"spiffe_sequence":1}', 'bundle-jwks-missing-keys'],
    ['duplicate keys member', () => `{"keys":[],"keys":[]}`, 'bundle-json-duplicate-member'],
    [
      'duplicate spiffe_sequence',
      () => `{"keys":[],"spiffe_sequence":1,"spiffe_sequence":2}`,
      'bundle-json-duplicate-member',
    ],
    ['x5c[0] not a string', () => doc(x509Entry(ecCa, { x5c: [1] })), 'bundle-spiffe-bad-x5c'],
    ['x5c[0] not base64', () => doc(x509Entry(ecCa, { x5c: ['!!!!'] })), 'bundle-spiffe-bad-x5c'],
    [
      'x5c[0] base64url',
      () => doc(x509Entry(ecCa, { x5c: [Buffer.from(ecCa.der).toString('base64url')] })),
      'bundle-spiffe-bad-x5c',
    ],
    [
      'x5c[0] holds two certificates',
      () => doc(x509Entry(ecCa, { x5c: [b64(Buffer.concat([ecCa.der, rsaCa.der]))] })),
      'bundle-spiffe-bad-x5c',
    ],
    [
      'x5c[0] with trailing bytes',
      () => doc(x509Entry(ecCa, { x5c: [b64(Buffer.concat([ecCa.der, Buffer.from([0])]))] })),
      'bundle-x509-bad-der',
    ],
    [
      'x5c[0] not a certificate',
      () => doc(x509Entry(ecCa, { x5c: [b64(Buffer.from([0x30, 3, 1, 2, 3]))] })),
      'bundle-x509-bad-certificate',
    ],
    [
      'x5c[0] with an undecodable key',
      () => doc(x509Entry(ecCa, { x5c: [b64(corruptEcPublicKey(ecCa.cert))] })),
      'bundle-x509-bad-certificate',
    ],
    [
      'kty does not match the certificate',
      () => doc(x509Entry(ecCa, { kty: 'RSA' })),
      'bundle-spiffe-x5c-key-mismatch',
    ],
    [
      'key members of another key',
      () => doc({ ...x509Entry(otherCa), x5c: [b64(ecCa.der)] }),
      'bundle-spiffe-x5c-key-mismatch',
    ],
    ['key members malformed', () => doc(x509Entry(ecCa, { x: 'AA' })), 'bundle-jwk-bad-key'],
    ['key member not a string', () => doc(x509Entry(ecCa, { crv: 256 })), 'bundle-jwk-bad-key'],
    [
      'private key on an x509-svid entry',
      () => doc(x509Entry(ecCa, { d: 'AAAA' })),
      'bundle-jwk-private-key',
    ],
    ['private key on an entry without use', () => doc({ kty: 'EC', d: 'AAAA' }), 'bundle-jwk-private-key'],
    ['jwt-svid without kid', () => doc(jwtEntry(jwtKey, 'a', { kid: undefined })), 'bundle-jwt-missing-kid'],
    [
      'jwt-svid duplicate kid',
      () => doc(jwtEntry(jwtKey, 'a'), jwtEntry(jwtKey2, 'a')),
      'bundle-jwt-duplicate-kid',
    ],
    ['jwt-svid weak RSA key', () => doc(jwtEntry(makeKey('RSA-1024'), 'a')), 'bundle-jwk-weak-key'],
    ['key entry not an object', () => '{"keys":["x"]}', 'bundle-jwk-not-object'],
  ];
  it.each(rows)('%s → %s', (_name, input, code) => {
    expect(codeOf(() => SpiffeBundle.parse(TD, input()))).toBe(code);
  });

  const uints: Array<[string, string, boolean]> = [
    ['0', '0', true],
    ['300', '300', true],
    ['2^53-1', '9007199254740991', true],
    ['2^53', '9007199254740992', false],
    ['2^53+1 (rounds down in a double)', '9007199254740993', false],
    ['2^64-1', '18446744073709551615', false],
    ['negative', '-1', false],
    ['negative zero', '-0', false],
    ['fraction', '1.5', false],
    ['integral fraction', '1.0', false],
    ['exponent', '1e3', false],
    ['tiny fraction near 2^53', '9007199254740990.5', false],
    ['string', '"5"', false],
    ['null', 'null', false],
    ['boolean', 'true', false],
    ['array', '[1]', false],
  ];
  it.each(uints)('spiffe_sequence %s', (_name, literal, ok) => {
    const text = `{"keys":[],"spiffe_sequence":${literal}}`;
    if (ok) expect(SpiffeBundle.parse(TD, text).sequenceNumber).toBe(Number(literal));
    else expect(codeOf(() => SpiffeBundle.parse(TD, text))).toBe('bundle-spiffe-bad-sequence');
  });
  it.each(uints)('spiffe_refresh_hint %s', (_name, literal, ok) => {
    const text = `{"keys":[],"spiffe_refresh_hint":${literal}}`;
    if (ok) expect(SpiffeBundle.parse(TD, text).refreshHint).toBe(Number(literal));
    else expect(codeOf(() => SpiffeBundle.parse(TD, text))).toBe('bundle-spiffe-bad-refresh-hint');
  });
});

describe('SpiffeBundle.fromParts', () => {
  it('combines bundles and metadata; missing parts are empty', () => {
    const x509 = X509Bundle.fromAuthorities(TD, [ecCa.cert]);
    const jwt = JwtBundle.fromAuthorities(TD, { a: jwtKey.jwk });
    const bundle = SpiffeBundle.fromParts(TD, { x509, jwt, refreshHint: 60, sequenceNumber: 0 });
    expect(bundle.x509Bundle()).toBe(x509);
    expect(bundle.jwtBundle()).toBe(jwt);
    expect(bundle.refreshHint).toBe(60);
    expect(bundle.sequenceNumber).toBe(0);
    const bare = SpiffeBundle.fromParts(TrustDomain.parse(TD), {});
    expect(bare.x509Bundle().authorities).toEqual([]);
    expect(bare.jwtBundle().size).toBe(0);
    expect(JSON.parse(bare.marshal())).toEqual({ keys: [] });
  });

  const rows: Array<[string, () => unknown, string]> = [
    [
      'X.509 bundle of another trust domain',
      () => ({ x509: X509Bundle.fromAuthorities('other.org', []) }),
      'bundle-trust-domain-mismatch',
    ],
    [
      'JWT bundle of another trust domain',
      () => ({ jwt: JwtBundle.fromAuthorities('other.org', {}) }),
      'bundle-trust-domain-mismatch',
    ],
    ['negative refresh hint', () => ({ refreshHint: -1 }), 'bundle-spiffe-bad-refresh-hint'],
    ['fractional refresh hint', () => ({ refreshHint: 0.5 }), 'bundle-spiffe-bad-refresh-hint'],
    ['NaN refresh hint', () => ({ refreshHint: Number.NaN }), 'bundle-spiffe-bad-refresh-hint'],
    ['string refresh hint', () => ({ refreshHint: '5' }), 'bundle-spiffe-bad-refresh-hint'],
    ['sequence over 2^53-1', () => ({ sequenceNumber: 2 ** 53 }), 'bundle-spiffe-bad-sequence'],
    ['bigint sequence', () => ({ sequenceNumber: 5n }), 'bundle-spiffe-bad-sequence'],
    ['x509 not a bundle', () => ({ x509: [ecCa.cert] }), 'bundle-invalid-argument'],
    ['jwt not a bundle', () => ({ jwt: {} }), 'bundle-invalid-argument'],
    ['parts not an object', () => null, 'bundle-invalid-argument'],
  ];
  it.each(rows)('rejects %s', (_name, parts, code) => {
    expect(codeOf(() => SpiffeBundle.fromParts(TD, parts() as never))).toBe(code);
  });
});

describe('SpiffeBundle.equals', () => {
  it('compares trust domain, authorities, refresh hint and sequence number', () => {
    const x509 = X509Bundle.fromAuthorities(TD, [ecCa.cert]);
    const jwt = JwtBundle.fromAuthorities(TD, { a: jwtKey.jwk });
    const base = SpiffeBundle.fromParts(TD, { x509, jwt, refreshHint: 60, sequenceNumber: 1 });
    expect(base.equals(SpiffeBundle.fromParts(TD, { x509, jwt, refreshHint: 60, sequenceNumber: 1 }))).toBe(
      true,
    );
    expect(base.equals(SpiffeBundle.fromParts(TD, { x509, jwt, refreshHint: 61, sequenceNumber: 1 }))).toBe(
      false,
    );
    expect(base.equals(SpiffeBundle.fromParts(TD, { x509, jwt, refreshHint: 60 }))).toBe(false);
    expect(base.equals(SpiffeBundle.fromParts(TD, { x509, refreshHint: 60, sequenceNumber: 1 }))).toBe(false);
    expect(base.equals(SpiffeBundle.fromParts(TD, { jwt, refreshHint: 60, sequenceNumber: 1 }))).toBe(false);
    const other = SpiffeBundle.fromParts('other.org', {
      x509: X509Bundle.fromAuthorities('other.org', [ecCa.cert]),
      jwt: JwtBundle.fromAuthorities('other.org', { a: jwtKey.jwk }),
      refreshHint: 60,
      sequenceNumber: 1,
    });
    expect(base.equals(other)).toBe(false);
    expect(base.equals({} as SpiffeBundle)).toBe(false);
  });

  it('is immutable and cannot be constructed directly', () => {
    const bundle = SpiffeBundle.parse(TD, spireDoc());
    expect(Object.isFrozen(bundle)).toBe(true);
    const Ctor = SpiffeBundle as unknown as new (...args: unknown[]) => unknown;
    expect(codeOf(() => new Ctor(Symbol('x')))).toBe('bundle-private-constructor');
  });
});
