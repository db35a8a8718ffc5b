// X509Svid.parse: a workload's own X509-SVID (chain + private key), as the Workload API or files
// deliver it.
import { generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { X509Svid } from '../../../src/svid/index.js';
import { expectIdentityError } from '../../fixtures/errors.js';
import {
  type CaMaterial,
  concatDer,
  createCa,
  createIntermediate,
  issueSvid,
  toPem,
} from '../../fixtures/pki.js';

const W = 'spiffe://example.org/workload';
let root: CaMaterial;
let inter: CaMaterial;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  inter = await createIntermediate(root);
});

describe('X509Svid.parse', () => {
  it('parses a PEM chain and a PKCS#8 PEM key', async () => {
    const m = await issueSvid(inter, W);
    const svid = X509Svid.parse(m.chainPem, m.key.pkcs8Pem, { hint: 'internal' });
    expect(svid.spiffeId.toString()).toBe(W);
    expect(svid.certificates.map((c) => c.fingerprint256)).toEqual([
      m.cert.fingerprint256,
      inter.cert.fingerprint256,
    ]);
    expect(svid.leaf.fingerprint256).toBe(m.cert.fingerprint256);
    expect(svid.hint).toBe('internal');
    expect(svid.privateKey.type).toBe('private');
    // The key really is the leaf's: a signature made with it verifies under the leaf key.
    const sig = sign('sha256', Buffer.from('x'), svid.privateKey);
    expect(verify('sha256', Buffer.from('x'), svid.leaf.publicKey, sig)).toBe(true);
    expect(Object.isFrozen(svid)).toBe(true);
    expect(Object.isFrozen(svid.certificates)).toBe(true);
  });

  it('parses the Workload API form: concatenated DER and PKCS#8 DER', async () => {
    const m = await issueSvid(inter, W);
    const svid = X509Svid.parse(m.chainDer, m.key.pkcs8Der);
    expect(svid.spiffeId.toString()).toBe(W);
    expect(svid.certificates).toHaveLength(2);
    expect(svid.hint).toBeUndefined();
    expect('hint' in svid && svid.hint !== undefined).toBe(false);
  });

  it('accepts SEC1 (EC PRIVATE KEY) and PKCS#1 (RSA PRIVATE KEY) PEM keys', async () => {
    const ec = await issueSvid(inter, W);
    const sec1 = ec.key.privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    expect(sec1).toContain('EC PRIVATE KEY');
    expect(X509Svid.parse(ec.chainPem, sec1).spiffeId.toString()).toBe(W);
    const rsa = await issueSvid(inter, W, { key: 'rsa-2048' });
    const pkcs1 = rsa.key.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
    expect(pkcs1).toContain('RSA PRIVATE KEY');
    expect(X509Svid.parse(rsa.chainPem, pkcs1).spiffeId.toString()).toBe(W);
  });

  it('accepts an Ed25519 leaf', async () => {
    const m = await issueSvid(inter, W, { key: 'ed25519' });
    expect(X509Svid.parse(m.chainDer, m.key.pkcs8Der).privateKey.asymmetricKeyType).toBe('ed25519');
  });

  it('expiresAt is the earliest notAfter of the chain', async () => {
    const interEnd = new Date('2030-01-01T00:00:00Z');
    const shortInter = await createIntermediate(root, { notAfter: interEnd });
    const m = await issueSvid(shortInter, W, { notAfter: new Date('2031-01-01T00:00:00Z') });
    expect(X509Svid.parse(m.chainDer, m.key.pkcs8Der).expiresAt.toISOString()).toBe(interEnd.toISOString());
    const leafOnly = await issueSvid(root, W, { notAfter: new Date('2031-01-01T00:00:00Z') });
    expect(X509Svid.parse(leafOnly.chainDer, leafOnly.key.pkcs8Der).expiresAt.toISOString()).toBe(
      '2031-01-01T00:00:00.000Z',
    );
  });

  it('does not check dates (your own SVID from the Workload API); verifyX509Svid does', async () => {
    const m = await issueSvid(inter, W, { expired: true });
    expect(X509Svid.parse(m.chainDer, m.key.pkcs8Der).expiresAt.getTime()).toBeLessThan(Date.now());
  });

  it('rejects a private key that does not belong to the leaf', async () => {
    const a = await issueSvid(inter, W);
    const b = await issueSvid(inter, W);
    expectIdentityError(() => X509Svid.parse(a.chainDer, b.key.pkcs8Der), 'x509svid-key-mismatch');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expectIdentityError(
      () => X509Svid.parse(a.chainDer, new Uint8Array(rsa.export({ format: 'der', type: 'pkcs8' }))),
      'x509svid-key-mismatch',
    );
  });

  it('rejects malformed private keys', async () => {
    const m = await issueSvid(inter, W);
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, new Uint8Array([0x30, 3, 1, 2, 3])),
      'x509svid-malformed-private-key',
    );
    expectIdentityError(() => X509Svid.parse(m.chainDer, 'not a key'), 'x509svid-malformed-private-key');
    expectIdentityError(() => X509Svid.parse(m.chainDer, m.pem), 'x509svid-malformed-private-key');
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, toPem('PRIVATE KEY', new Uint8Array([1, 2, 3]))),
      'x509svid-malformed-private-key',
    );
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, m.key.pkcs8Pem + m.key.pkcs8Pem),
      'x509svid-malformed-private-key',
    );
    const encrypted = m.key.privateKey
      .export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'secret' })
      .toString();
    expectIdentityError(() => X509Svid.parse(m.chainDer, encrypted), 'x509svid-malformed-private-key');
    const legacyEncrypted = m.key.privateKey
      .export({ format: 'pem', type: 'sec1', cipher: 'aes-256-cbc', passphrase: 'secret' })
      .toString();
    expectIdentityError(() => X509Svid.parse(m.chainDer, legacyEncrypted), 'x509svid-malformed-private-key');
  });

  it('rejects a chain whose certificates are not signed by the next one', async () => {
    const m = await issueSvid(inter, W);
    const otherInter = await createIntermediate(root);
    expectIdentityError(
      () => X509Svid.parse(concatDer(m.der, otherInter.der), m.key.pkcs8Der),
      'x509svid-chain-not-linked',
    );
    const low = await createIntermediate(inter);
    const deep = await issueSvid(low, W);
    expectIdentityError(
      () => X509Svid.parse(concatDer(deep.der, inter.der, low.der), deep.key.pkcs8Der),
      'x509svid-chain-not-linked',
    );
    expect(
      X509Svid.parse(concatDer(deep.der, low.der, inter.der, root.der), deep.key.pkcs8Der).certificates,
    ).toHaveLength(4);
  });

  it('applies the leaf rules', async () => {
    const m = await issueSvid(inter, W, { basicConstraints: { ca: true } });
    expectIdentityError(() => X509Svid.parse(m.chainDer, m.key.pkcs8Der), 'x509svid-leaf-is-ca');
    const noDs = await issueSvid(inter, W, { keyUsage: ['keyAgreement'] });
    expectIdentityError(
      () => X509Svid.parse(noDs.chainDer, noDs.key.pkcs8Der),
      'x509svid-leaf-no-digital-signature',
    );
  });

  it('applies the signing-certificate rules', async () => {
    const bad = await createIntermediate(root, { basicConstraints: { ca: false } });
    const m = await issueSvid(bad, W);
    expectIdentityError(() => X509Svid.parse(m.chainDer, m.key.pkcs8Der), 'x509svid-intermediate-not-ca');
    const withPath = await createIntermediate(root, { spiffeId: 'spiffe://example.org/ca' });
    const p = await issueSvid(withPath, W);
    expectIdentityError(() => X509Svid.parse(p.chainDer, p.key.pkcs8Der), 'x509svid-intermediate-has-path');
  });

  it('applies name constraints along the given chain', async () => {
    const constrained = await createIntermediate(root, {
      nameConstraints: { permittedUris: ['example.org'] },
    });
    const ok = await issueSvid(constrained, W);
    expect(X509Svid.parse(ok.chainDer, ok.key.pkcs8Der).spiffeId.toString()).toBe(W);
    const evil = await issueSvid(constrained, 'spiffe://evil.org/w');
    expectIdentityError(
      () => X509Svid.parse(evil.chainDer, evil.key.pkcs8Der),
      'x509svid-name-constraint-violation',
    );
  });

  it('validates the hint', async () => {
    const m = await issueSvid(inter, W);
    expect(X509Svid.parse(m.chainDer, m.key.pkcs8Der, { hint: 'h'.repeat(1024) }).hint).toHaveLength(1024);
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, m.key.pkcs8Der, { hint: 'h'.repeat(1025) }),
      'x509svid-invalid-option',
    );
    // 1024 bytes, not characters: 342 three-byte characters are 1026 bytes.
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, m.key.pkcs8Der, { hint: '€'.repeat(342) }),
      'x509svid-invalid-option',
    );
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, m.key.pkcs8Der, { hint: 7 as never }),
      'x509svid-invalid-option',
    );
  });

  it('rejects input of the wrong type', async () => {
    const m = await issueSvid(inter, W);
    expectIdentityError(() => X509Svid.parse(m.chain as never, m.key.pkcs8Der), 'x509svid-invalid-option');
    expectIdentityError(() => X509Svid.parse(m.chainDer, 42 as never), 'x509svid-invalid-option');
    expectIdentityError(
      () => X509Svid.parse(m.chainDer, KeyObject.from(m.key.cryptoKeys.privateKey) as never),
      'x509svid-invalid-option',
    );
  });
});

describe('X509Svid.marshal', () => {
  it('round-trips through PEM', async () => {
    const m = await issueSvid(inter, W);
    const svid = X509Svid.parse(m.chainDer, m.key.pkcs8Der, { hint: 'x' });
    const { certificatesPem, privateKeyPem } = svid.marshal();
    expect(certificatesPem).toBe(m.chainPem);
    expect(privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
    const again = X509Svid.parse(certificatesPem, privateKeyPem);
    expect(again.spiffeId.equals(svid.spiffeId)).toBe(true);
    expect(again.certificates.map((c) => c.fingerprint256)).toEqual(
      svid.certificates.map((c) => c.fingerprint256),
    );
  });

  it('round-trips through the Workload API DER form', async () => {
    const m = await issueSvid(inter, W);
    const svid = X509Svid.parse(m.chainPem, m.key.pkcs8Pem);
    const { certificatesDer, privateKeyDer } = svid.marshalDer();
    expect(Buffer.from(certificatesDer).equals(Buffer.from(m.chainDer))).toBe(true);
    expect(X509Svid.parse(certificatesDer, privateKeyDer).spiffeId.toString()).toBe(W);
  });
});
