import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_BUNDLE_CERTIFICATES, X509Bundle } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import { TrustDomain } from '../../../src/spiffeid/index.js';
import { berVariant, corruptEcPublicKey, derHeader, makeCa, pem } from './certs.js';

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
let a: { cert: X509Certificate; der: Uint8Array };
let b: { cert: X509Certificate; der: Uint8Array };
let c: { cert: X509Certificate; der: Uint8Array };

beforeAll(async () => {
  [a, b, c] = await Promise.all([makeCa(TD, 'P-256'), makeCa(TD, 'RSA-2048'), makeCa(TD, 'P-384')]);
});

const raws = (bundle: X509Bundle): string[] => bundle.authorities.map((x) => x.raw.toString('hex'));
const hex = (der: Uint8Array): string => Buffer.from(der).toString('hex');

describe('X509Bundle.parse: accepted input', () => {
  it('parses one PEM certificate', () => {
    const bundle = X509Bundle.parse(TD, pem(a.der));
    expect(bundle.trustDomain.name).toBe(TD);
    expect(raws(bundle)).toEqual([hex(a.der)]);
    expect(bundle.authorities[0]).toBeInstanceOf(X509Certificate);
  });

  it('parses several PEM blocks with text, comments and CRLF line endings around them', () => {
    const text = `# roots of ${TD}\nsubject=CN=a\n${pem(a.der)}\nissuer: whatever\n${pem(b.der)}`.replaceAll(
      '\n',
      '\r\n',
    );
    expect(raws(X509Bundle.parse(TD, text))).toEqual([hex(a.der), hex(b.der)]);
  });

  it('reads PEM bytes (readFileSync output) as text', () => {
    const bytes = new TextEncoder().encode(pem(a.der) + pem(c.der));
    expect(raws(X509Bundle.parse(TD, bytes))).toEqual([hex(a.der), hex(c.der)]);
  });

  it('a PEM file whose comment starts with "0" is still read as PEM', () => {
    const bytes = new TextEncoder().encode(`0 s:CN=a\n${pem(a.der)}`);
    expect(raws(X509Bundle.parse(TD, bytes))).toEqual([hex(a.der)]);
  });

  it('splits concatenated DER certificates (Workload API format)', () => {
    const der = Buffer.concat([a.der, b.der, c.der]);
    expect(raws(X509Bundle.parse(TD, der))).toEqual([hex(a.der), hex(b.der), hex(c.der)]);
    expect(raws(X509Bundle.parse(TD, a.der))).toEqual([hex(a.der)]);
  });

  it('deduplicates by DER, keeping the first occurrence and the order', () => {
    const bundle = X509Bundle.parse(TD, Buffer.concat([b.der, a.der, b.der, a.der]));
    expect(raws(bundle)).toEqual([hex(b.der), hex(a.der)]);
  });

  it('takes the trust domain as a TrustDomain or a string, never from the certificates', () => {
    expect(X509Bundle.parse(TrustDomain.parse('other.org'), a.der).trustDomain.name).toBe('other.org');
    expect(codeOf(() => X509Bundle.parse('Other.org', a.der))).toBe('spiffeid-bad-trust-domain-char');
  });
});

describe('X509Bundle.parse: rejected input, one row per rule', () => {
  const der = (): Uint8Array => a.der;
  const rows: Array<[string, () => string | Uint8Array, string]> = [
    ['empty string', () => '', 'bundle-x509-empty'],
    ['empty bytes', () => new Uint8Array(0), 'bundle-x509-empty'],
    ['text without PEM blocks', () => 'hello world\n', 'bundle-x509-empty'],
    [
      'private key block',
      () => pem(der()) + pem(new Uint8Array([1, 2, 3]), 'PRIVATE KEY'),
      'bundle-x509-unexpected-pem-block',
    ],
    [
      'TRUSTED CERTIFICATE block',
      () => pem(der(), 'TRUSTED CERTIFICATE'),
      'bundle-x509-unexpected-pem-block',
    ],
    [
      'malformed BEGIN line',
      () => `-----BEGIN certificate-----\nAAAA\n-----END certificate-----\n`,
      'bundle-x509-bad-pem',
    ],
    ['missing END line', () => pem(der()).replace('-----END CERTIFICATE-----\n', ''), 'bundle-x509-bad-pem'],
    [
      'mismatched END line',
      () => pem(der()).replace('END CERTIFICATE', 'END X509 CRL'),
      'bundle-x509-bad-pem',
    ],
    [
      'PEM headers',
      () => pem(der()).replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\n'),
      'bundle-x509-bad-pem',
    ],
    ['invalid base64 character', () => pem(der()).replace(/\n[A-Za-z]/, '\n!'), 'bundle-x509-bad-pem'],
    [
      'non-canonical base64 padding bits',
      () => pem(new Uint8Array([0x30])).replace('MA==', 'MB=='),
      'bundle-x509-bad-pem',
    ],
    ['two certificates in one PEM block', () => pem(Buffer.concat([der(), der()])), 'bundle-x509-bad-pem'],
    ['truncated DER', () => der().subarray(0, der().length - 1), 'bundle-x509-bad-der'],
    ['trailing byte after DER', () => Buffer.concat([der(), Buffer.from([0x00])]), 'bundle-x509-bad-der'],
    [
      'trailing garbage after DER',
      () => Buffer.concat([der(), Buffer.from('garbage')]),
      'bundle-x509-bad-der',
    ],
    [
      'indefinite length',
      () => Buffer.concat([der(), Buffer.from([0x30, 0x80, 0, 0])]),
      'bundle-x509-bad-der',
    ],
    [
      'non-minimal length',
      () => Buffer.concat([der(), Buffer.from([0x30, 0x82, 0x00, 0x05, 1, 2, 3, 4, 5])]),
      'bundle-x509-bad-der',
    ],
    [
      'short length in long form',
      () => Buffer.concat([der(), Buffer.from([0x30, 0x81, 0x05, 1, 2, 3, 4, 5])]),
      'bundle-x509-bad-der',
    ],
    [
      'SEQUENCE that is not a certificate',
      () => Buffer.concat([derHeader(200), Buffer.alloc(200, 7)]),
      'bundle-x509-bad-certificate',
    ],
    ['BER instead of DER', () => berVariant(der()), 'bundle-x509-bad-certificate'],
    ['undecodable public key', () => corruptEcPublicKey(a.cert), 'bundle-x509-bad-certificate'],
    [
      'bytes that are neither DER nor UTF-8',
      () => new Uint8Array([0xff, 0xfe, 0x00, 0x81]),
      'bundle-x509-bad-pem',
    ],
    [
      'certificate over 64 KiB',
      () => Buffer.concat([Buffer.from([0x30, 0x83, 0x01, 0x00, 0x00]), Buffer.alloc(16)]),
      'bundle-x509-too-large',
    ],
    ['input over 4 MiB', () => new Uint8Array(4 * 1024 * 1024 + 1), 'bundle-x509-too-large'],
    ['PEM text over 4 MiB', () => ' '.repeat(4 * 1024 * 1024 + 1), 'bundle-x509-too-large'],
  ];
  it.each(rows)('%s', (_name, input, code) => {
    expect(codeOf(() => X509Bundle.parse(TD, input()))).toBe(code);
  });

  it('rejects more than 1000 certificates, counted before deduplication', () => {
    const many = Buffer.concat(Array.from({ length: MAX_BUNDLE_CERTIFICATES + 1 }, () => a.der));
    expect(codeOf(() => X509Bundle.parse(TD, many))).toBe('bundle-x509-too-many-certificates');
    const exactly = Buffer.concat(Array.from({ length: MAX_BUNDLE_CERTIFICATES }, () => a.der));
    expect(X509Bundle.parse(TD, exactly).authorities.length).toBe(1);
    const manyPem = pem(a.der).repeat(MAX_BUNDLE_CERTIFICATES + 1);
    expect(codeOf(() => X509Bundle.parse(TD, manyPem))).toBe('bundle-x509-too-many-certificates');
  });

  it('rejects input of the wrong type', () => {
    for (const v of [undefined, null, 3, {}, [a.der]]) {
      expect(codeOf(() => X509Bundle.parse(TD, v as unknown as string))).toBe('bundle-invalid-argument');
    }
  });
});

describe('X509Bundle.fromAuthorities', () => {
  it('accepts certificates and DER, and an empty list', () => {
    expect(raws(X509Bundle.fromAuthorities(TD, [a.cert, b.der]))).toEqual([hex(a.der), hex(b.der)]);
    const empty = X509Bundle.fromAuthorities(TD, []);
    expect(empty.authorities).toEqual([]);
    expect(empty.toDer().length).toBe(0);
    expect(empty.marshal()).toBe('');
  });

  it('rejects several certificates in one DER item, junk, and non-arrays', () => {
    expect(codeOf(() => X509Bundle.fromAuthorities(TD, [Buffer.concat([a.der, b.der])]))).toBe(
      'bundle-x509-bad-der',
    );
    expect(codeOf(() => X509Bundle.fromAuthorities(TD, [pem(a.der) as unknown as Uint8Array]))).toBe(
      'bundle-invalid-argument',
    );
    expect(codeOf(() => X509Bundle.fromAuthorities(TD, 'x' as unknown as Uint8Array[]))).toBe(
      'bundle-invalid-argument',
    );
    expect(codeOf(() => X509Bundle.fromAuthorities(TD, [new Uint8Array([0x30, 0x03, 1, 2, 3])]))).toBe(
      'bundle-x509-bad-certificate',
    );
    expect(
      codeOf(() => X509Bundle.fromAuthorities(TD, [new X509Certificate(corruptEcPublicKey(a.cert))])),
    ).toBe('bundle-x509-bad-certificate');
    const many = Array.from({ length: MAX_BUNDLE_CERTIFICATES + 1 }, () => a.cert);
    expect(codeOf(() => X509Bundle.fromAuthorities(TD, many))).toBe('bundle-x509-too-many-certificates');
  });
});

describe('X509Bundle methods', () => {
  it('hasAuthority compares DER', () => {
    const bundle = X509Bundle.fromAuthorities(TD, [a.cert]);
    expect(bundle.hasAuthority(new X509Certificate(a.der))).toBe(true);
    expect(bundle.hasAuthority(b.cert)).toBe(false);
    expect(bundle.hasAuthority({ raw: a.cert.raw } as unknown as X509Certificate)).toBe(false);
  });

  it('marshal and toDer round-trip through parse', () => {
    const bundle = X509Bundle.fromAuthorities(TD, [a.cert, b.cert, c.cert]);
    const text = bundle.marshal();
    expect(text).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(64);
    expect(X509Bundle.parse(TD, text).equals(bundle)).toBe(true);
    expect(raws(X509Bundle.parse(TD, text))).toEqual(raws(bundle));
    expect(hex(bundle.toDer())).toBe(hex(Buffer.concat([a.der, b.der, c.der])));
    expect(X509Bundle.parse(TD, bundle.toDer()).equals(bundle)).toBe(true);
  });

  it('equals ignores order but not the trust domain or the set', () => {
    const ab = X509Bundle.fromAuthorities(TD, [a.cert, b.cert]);
    expect(ab.equals(X509Bundle.fromAuthorities(TD, [b.cert, a.cert]))).toBe(true);
    expect(ab.equals(X509Bundle.fromAuthorities(TD, [a.cert, b.cert, a.cert]))).toBe(true);
    expect(ab.equals(X509Bundle.fromAuthorities('other.org', [a.cert, b.cert]))).toBe(false);
    expect(ab.equals(X509Bundle.fromAuthorities(TD, [a.cert]))).toBe(false);
    expect(ab.equals(X509Bundle.fromAuthorities(TD, [a.cert, c.cert]))).toBe(false);
    expect(ab.equals({} as X509Bundle)).toBe(false);
  });

  it('is immutable', () => {
    const bundle = X509Bundle.fromAuthorities(TD, [a.cert]);
    expect(() => (bundle.authorities as X509Certificate[]).push(b.cert)).toThrow(TypeError);
    expect(Object.isFrozen(bundle)).toBe(true);
    const Ctor = X509Bundle as unknown as new (...args: unknown[]) => unknown;
    expect(codeOf(() => new Ctor(Symbol('x'), TrustDomain.parse(TD), [b.cert]))).toBe(
      'bundle-private-constructor',
    );
  });
});
