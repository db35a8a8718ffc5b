// src/internal/x509-ext.ts: the DER reader under the X509-SVID rules. Each test pins one thing
// it must read (or refuse) from real certificates made by the fixture factory.
import * as asn1js from 'asn1js';
import { beforeAll, describe, expect, it } from 'vitest';
import { OID, parseCertificateDer, parseRsaPssParams } from '../../../src/internal/x509-ext.js';
import { expectIdentityError } from '../../fixtures/errors.js';
import {
  type CaMaterial,
  concatDer,
  createCa,
  EKU,
  issueSvid,
  UNKNOWN_EXTENSION_OID,
} from '../../fixtures/pki.js';

let ca: CaMaterial;
beforeAll(async () => {
  ca = await createCa({ trustDomain: 'example.org' });
});

describe('parseCertificateDer', () => {
  it('reads keyUsage bits (node X509Certificate.keyUsage returns EKU OIDs instead)', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      keyUsage: ['digitalSignature', 'keyAgreement'],
    });
    const info = parseCertificateDer(leaf.der);
    expect([...info.keyUsage!.usages].sort()).toEqual(['digitalSignature', 'keyAgreement']);
    expect(info.keyUsage!.critical).toBe(true);
    // The node getter is not a KeyUsage reader: it returns the EKU purposes.
    expect(leaf.cert.keyUsage).toEqual(expect.arrayContaining([EKU.serverAuth, EKU.clientAuth]));
    const root = parseCertificateDer(ca.der);
    expect([...root.keyUsage!.usages].sort()).toEqual(['cRLSign', 'keyCertSign']);
  });

  it('reads every one of the nine keyUsage bits at its position', async () => {
    const all = [
      'digitalSignature',
      'nonRepudiation',
      'keyEncipherment',
      'dataEncipherment',
      'keyAgreement',
      'keyCertSign',
      'cRLSign',
      'encipherOnly',
      'decipherOnly',
    ] as const;
    for (const bit of all) {
      const leaf = await issueSvid(ca, 'spiffe://example.org/w', { keyUsage: [bit] });
      expect([...parseCertificateDer(leaf.der).keyUsage!.usages]).toEqual([bit]);
    }
  });

  it('reads keyUsage criticality', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', { keyUsageCritical: false });
    expect(parseCertificateDer(leaf.der).keyUsage!.critical).toBe(false);
  });

  it('reads basicConstraints, absent as undefined', async () => {
    const withPath = await issueSvid(ca, 'spiffe://example.org/w', {
      basicConstraints: { ca: true, pathLength: 3 },
    });
    expect(parseCertificateDer(withPath.der).basicConstraints).toEqual({
      critical: true,
      cA: true,
      pathLen: 3,
    });
    const none = await issueSvid(ca, 'spiffe://example.org/w', { basicConstraints: null });
    expect(parseCertificateDer(none.der).basicConstraints).toBeUndefined();
    const leaf = await issueSvid(ca, 'spiffe://example.org/w');
    expect(parseCertificateDer(leaf.der).basicConstraints).toEqual({ critical: true, cA: false });
  });

  it('reads extKeyUsage OIDs', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', { extKeyUsage: ['codeSigning', '1.2.3.4'] });
    expect(parseCertificateDer(leaf.der).extKeyUsage?.oids).toEqual([EKU.codeSigning, '1.2.3.4']);
    const none = await issueSvid(ca, 'spiffe://example.org/w', { extKeyUsage: null });
    expect(parseCertificateDer(none.der).extKeyUsage).toBeUndefined();
  });

  it('reads SANs as typed names from DER, never by splitting a string', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      uris: ['spiffe://example.org/w'],
      dnsNames: ['a.example, URI:spiffe://example.org/admin'],
      emails: ['x@example.org'],
    });
    const names = parseCertificateDer(leaf.der).subjectAltName!.names;
    expect(names).toEqual([
      { kind: 'uniformResourceIdentifier', value: 'spiffe://example.org/w' },
      { kind: 'dNSName', value: 'a.example, URI:spiffe://example.org/admin' },
      { kind: 'rfc822Name', value: 'x@example.org' },
    ]);
  });

  it('reads name constraints with their kinds', async () => {
    const nc = await createCa({
      trustDomain: 'example.org',
      nameConstraints: { permittedUris: ['example.org'], excludedDns: ['.evil.org'] },
    });
    const info = parseCertificateDer(nc.der).nameConstraints!;
    expect(info.critical).toBe(true);
    expect(info.permitted).toEqual([
      { base: { kind: 'uniformResourceIdentifier', value: 'example.org' }, minimum: 0 },
    ]);
    expect(info.excluded).toEqual([{ base: { kind: 'dNSName', value: '.evil.org' }, minimum: 0 }]);
  });

  it('reads validity with second precision, including GeneralizedTime after 2049', async () => {
    const notBefore = new Date('2024-01-02T03:04:05Z');
    const notAfter = new Date('2060-06-07T08:09:10Z');
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', { notBefore, notAfter });
    const info = parseCertificateDer(leaf.der);
    expect(info.notBefore.toISOString()).toBe(notBefore.toISOString());
    expect(info.notAfter.toISOString()).toBe(notAfter.toISOString());
  });

  it('reads the signature algorithm and subject emptiness', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', { subject: '' });
    const info = parseCertificateDer(leaf.der);
    expect(info.signatureAlgorithm).toBe(OID.ecdsaWithSha256);
    expect(info.subjectEmpty).toBe(true);
    expect(parseCertificateDer(ca.der).subjectEmpty).toBe(false);
  });

  it('lists every extension with its criticality', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      extraExtensions: [{ oid: UNKNOWN_EXTENSION_OID, critical: true, value: new Uint8Array([5, 0]) }],
    });
    const ext = parseCertificateDer(leaf.der).extensions.find((e) => e.oid === UNKNOWN_EXTENSION_OID);
    expect(ext?.critical).toBe(true);
  });

  it('rejects a repeated extension', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      extraExtensions: [{ oid: OID.keyUsage, critical: true, value: new Uint8Array([3, 2, 5, 0xa0]) }],
    });
    expectIdentityError(() => parseCertificateDer(leaf.der), 'x509svid-duplicate-extension');
  });

  it('rejects a malformed keyUsage value', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      keyUsage: null,
      extraExtensions: [{ oid: OID.keyUsage, critical: true, value: new Uint8Array([4, 1, 0]) }],
    });
    expectIdentityError(() => parseCertificateDer(leaf.der), 'x509svid-malformed-extension');
  });

  it('rejects a malformed basicConstraints value (trailing bytes inside the extension)', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      basicConstraints: null,
      extraExtensions: [{ oid: OID.basicConstraints, critical: true, value: new Uint8Array([0x30, 0, 0]) }],
    });
    expectIdentityError(() => parseCertificateDer(leaf.der), 'x509svid-malformed-extension');
  });

  it('rejects a name constraint with no subtrees', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      extraExtensions: [{ oid: OID.nameConstraints, critical: true, value: new Uint8Array([0x30, 0]) }],
    });
    expectIdentityError(() => parseCertificateDer(leaf.der), 'x509svid-malformed-extension');
  });

  it('rejects a constructed element where DER needs a primitive one (no crash)', async () => {
    // NameConstraints { permitted [0] { GeneralSubtree { [6] "a", minimum [0] EXPLICIT INTEGER 1 } } }
    const bad = new Uint8Array([
      0x30, 0x0c, 0xa0, 0x0a, 0x30, 0x08, 0x86, 0x01, 0x61, 0xa0, 0x03, 0x02, 0x01, 0x01,
    ]);
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      extraExtensions: [{ oid: OID.nameConstraints, critical: true, value: bad }],
    });
    expectIdentityError(() => parseCertificateDer(leaf.der), 'x509svid-malformed-extension');
    // basicConstraints { cA: constructed BOOLEAN }
    const bc = await issueSvid(ca, 'spiffe://example.org/w', {
      basicConstraints: null,
      extraExtensions: [
        { oid: OID.basicConstraints, critical: true, value: new Uint8Array([0x30, 5, 0x21, 3, 1, 1, 0xff]) },
      ],
    });
    expectIdentityError(() => parseCertificateDer(bc.der), 'x509svid-malformed-extension');
  });

  it('rejects a SAN holding a non-ASCII IA5String', async () => {
    // SEQUENCE { [6] "a\xff" }
    const leaf = await issueSvid(ca, 'spiffe://example.org/w', {
      uris: [],
      extraExtensions: [
        { oid: OID.subjectAltName, critical: false, value: new Uint8Array([0x30, 4, 0x86, 2, 0x61, 0xff]) },
      ],
    });
    expectIdentityError(() => parseCertificateDer(leaf.der), 'x509svid-malformed-extension');
  });

  it('rejects trailing bytes after the certificate', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w');
    expectIdentityError(
      () => parseCertificateDer(concatDer(leaf.der, new Uint8Array([0]))),
      'x509svid-malformed-certificate',
    );
  });

  it('rejects garbage, truncation and indefinite lengths', async () => {
    const leaf = await issueSvid(ca, 'spiffe://example.org/w');
    expectIdentityError(
      () => parseCertificateDer(new Uint8Array([1, 2, 3])),
      'x509svid-malformed-certificate',
    );
    expectIdentityError(
      () => parseCertificateDer(leaf.der.subarray(0, leaf.der.length - 1)),
      'x509svid-malformed-certificate',
    );
    expectIdentityError(
      () => parseCertificateDer(new Uint8Array([0x30, 0x80, 0, 0])),
      'x509svid-malformed-certificate',
    );
    expectIdentityError(
      () => parseCertificateDer(new Uint8Array([0x30, 0])),
      'x509svid-malformed-certificate',
    );
  });
});

describe('parseRsaPssParams', () => {
  const algId = (oid: string): asn1js.Sequence =>
    new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid }), new asn1js.Null()] });
  const tagged = (n: number, inner: asn1js.BaseBlock): asn1js.Constructed =>
    new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: n }, value: [inner] });

  it('reads the message and MGF1 hashes', () => {
    const params = new asn1js.Sequence({
      value: [
        tagged(0, algId(OID.sha384)),
        tagged(
          1,
          new asn1js.Sequence({
            value: [new asn1js.ObjectIdentifier({ value: OID.mgf1 }), algId(OID.sha384)],
          }),
        ),
        tagged(2, new asn1js.Integer({ value: 48 })),
      ],
    });
    expect(parseRsaPssParams(new Uint8Array(params.toBER()))).toEqual({
      hash: OID.sha384,
      mgfHash: OID.sha384,
    });
  });

  it('defaults absent fields to SHA-1 (which the verifier then refuses)', () => {
    expect(parseRsaPssParams(undefined)).toEqual({ hash: '1.3.14.3.2.26', mgfHash: '1.3.14.3.2.26' });
    expect(parseRsaPssParams(new Uint8Array([0x30, 0]))).toEqual({
      hash: '1.3.14.3.2.26',
      mgfHash: '1.3.14.3.2.26',
    });
  });

  it('rejects a mask generation function other than MGF1', () => {
    const params = new asn1js.Sequence({ value: [tagged(1, algId('1.2.3.4'))] });
    expectIdentityError(
      () => parseRsaPssParams(new Uint8Array(params.toBER())),
      'x509svid-malformed-certificate',
    );
  });
});
