// The X.509 attack catalogue (spiffe-rules.md §4), one named test per item that concerns chain
// verification. The TLS-only items (downgrade, client without certificate, manual mode,
// resumption, renegotiation) belong to the TLS layer's tests. Each test asserts the exact code of
// the check that must stop the attack, next to a positive control that passes.
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet, X509Bundle } from '../../../src/bundle/index.js';
import { parseX509SvidLeaf, verifyX509Svid } from '../../../src/svid/index.js';
import { expectIdentityError } from '../../fixtures/errors.js';
import {
  type CaMaterial,
  createCa,
  createIntermediate,
  generateKey,
  issueSvid,
  UNKNOWN_EXTENSION_OID,
  x509BundleOf,
} from '../../fixtures/pki.js';

const W = 'spiffe://example.org/workload';
let root: CaMaterial;
let inter: CaMaterial;
let otherRoot: CaMaterial;
let bundles: BundleSet;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  inter = await createIntermediate(root);
  otherRoot = await createCa({ trustDomain: 'other.org' });
  bundles = new BundleSet(x509BundleOf(root), x509BundleOf(otherRoot));
});

describe('X.509 attack catalogue', () => {
  it('accepts the positive control (a well-formed SVID)', async () => {
    const svid = await issueSvid(inter, W);
    expect(verifyX509Svid(svid.chainDer, bundles).spiffeId.toString()).toBe(W);
  });

  it('rejects a CA certificate used as a leaf', async () => {
    const svid = await issueSvid(inter, W, { basicConstraints: { ca: true } });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-is-ca');
  });

  it('rejects a leaf with keyCertSign', async () => {
    const svid = await issueSvid(inter, W, { keyUsage: ['digitalSignature', 'keyCertSign'] });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-key-cert-sign');
  });

  it('rejects a leaf with cRLSign', async () => {
    const svid = await issueSvid(inter, W, { keyUsage: ['digitalSignature', 'cRLSign'] });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-crl-sign');
  });

  it('rejects an EC leaf with keyAgreement but no digitalSignature', async () => {
    const svid = await issueSvid(inter, W, { keyUsage: ['keyAgreement'] });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-no-digital-signature');
  });

  it('treats a leaf without basicConstraints as CA=false', async () => {
    const svid = await issueSvid(inter, W, { basicConstraints: null });
    expect(verifyX509Svid(svid.chainDer, bundles).spiffeId.toString()).toBe(W);
    // ...but a leaf without basicConstraints cannot act as a CA for another leaf.
    const asCa: CaMaterial = {
      ...svid,
      trustDomain: 'example.org',
      parent: inter,
      root,
      intermediates: [svid, ...inter.intermediates],
      subject: 'CN=svid',
    };
    const grandchild = await issueSvid(asCa, 'spiffe://example.org/grandchild');
    expectIdentityError(() => verifyX509Svid(grandchild.chainDer, bundles), 'x509svid-intermediate-not-ca');
  });

  it('rejects two URI SANs (spiffe://td/w + spiffe://td/admin)', async () => {
    const svid = await issueSvid(inter, W, { uris: [W, 'spiffe://example.org/admin'] });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-multiple-uri-sans');
  });

  it('rejects a leaf without a URI SAN', async () => {
    const svid = await issueSvid(inter, W, { uris: [], dnsNames: ['web.example.org'] });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-missing-uri-san');
  });

  it('rejects a non-spiffe URI SAN', async () => {
    const svid = await issueSvid(inter, 'https://example.org/workload');
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-invalid-spiffe-id');
  });

  it('rejects a leaf whose SPIFFE ID is the trust domain (root path)', async () => {
    const svid = await issueSvid(inter, 'spiffe://example.org');
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-root-path');
  });

  it('does not split SAN strings (CVE-2021-44532 injection)', async () => {
    // A DNS SAN that reads like a second URI SAN in a joined display string.
    const dns = await issueSvid(inter, W, { dnsNames: ['web.example.org, URI:spiffe://example.org/admin'] });
    expect(dns.cert.subjectAltName).toContain('spiffe://example.org/admin');
    expect(verifyX509Svid(dns.chainDer, bundles).spiffeId.toString()).toBe(W);
    expect(parseX509SvidLeaf(dns.cert).toString()).toBe(W);
    // A URI SAN that embeds a second one: one name, and not a valid SPIFFE ID.
    const uri = await issueSvid(inter, `${W}, URI:spiffe://example.org/admin`);
    expectIdentityError(() => verifyX509Svid(uri.chainDer, bundles), 'x509svid-leaf-invalid-spiffe-id');
  });

  it('rejects an ID of another trust domain signed by the local CA (wrong TD, same CA)', async () => {
    const svid = await issueSvid(inter, 'spiffe://other.org/x');
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-untrusted-chain');
  });

  it('never lets other.org vouch for an example.org ID (pooled roots)', async () => {
    const otherInter = await createIntermediate(otherRoot, { spiffeId: null });
    for (const issuer of [otherRoot, otherInter]) {
      const imposter = await issueSvid(issuer, 'spiffe://example.org/imposter');
      expectIdentityError(() => verifyX509Svid(imposter.chainDer, bundles), 'x509svid-untrusted-chain');
      // A single X509Bundle of other.org is refused too: it is not the leaf's trust domain.
      expectIdentityError(
        () => verifyX509Svid(imposter.chainDer, x509BundleOf(otherRoot)),
        'x509svid-no-bundle',
      );
      // The same certificate is fine for other.org's own IDs (positive control for the CA).
      const own = await issueSvid(issuer, 'spiffe://other.org/service');
      expect(verifyX509Svid(own.chainDer, bundles).spiffeId.toString()).toBe('spiffe://other.org/service');
    }
  });

  it('rejects a leaf from an unknown CA (other root)', async () => {
    const rogue = await createCa({ trustDomain: 'example.org' });
    const svid = await issueSvid(rogue, W);
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-untrusted-chain');
  });

  it('rejects a rogue root appended to the chain', async () => {
    const rogue = await createCa({ trustDomain: 'example.org' });
    const svid = await issueSvid(rogue, W);
    expectIdentityError(() => verifyX509Svid([svid.der, rogue.der], bundles), 'x509svid-untrusted-chain');
  });

  it('rejects an intermediate with CA=false', async () => {
    const bad = await createIntermediate(root, { basicConstraints: { ca: false } });
    const svid = await issueSvid(bad, W);
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-intermediate-not-ca');
  });

  it('rejects an intermediate without keyCertSign', async () => {
    const bad = await createIntermediate(root, { keyUsage: ['cRLSign'] });
    const svid = await issueSvid(bad, W);
    expectIdentityError(
      () => verifyX509Svid(svid.chainDer, bundles),
      'x509svid-intermediate-no-key-cert-sign',
    );
  });

  it('rejects a leaf with EKU codeSigning', async () => {
    const svid = await issueSvid(inter, W, { extKeyUsage: ['codeSigning'] });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-leaf-bad-extended-key-usage');
  });

  it('rejects an expired leaf', async () => {
    const svid = await issueSvid(inter, W, { expired: true });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-expired');
  });

  it('rejects a leaf that is not yet valid', async () => {
    const svid = await issueSvid(inter, W, { notYetValid: true });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-not-yet-valid');
  });

  it('enforces URI name constraints (CA permits example.org, leaf claims evil.org)', async () => {
    // One upstream root trusted for two trust domains; the intermediate is constrained to one.
    const shared = new BundleSet(x509BundleOf(root), X509Bundle.fromAuthorities('evil.org', [root.cert]));
    const constrained = await createIntermediate(root, {
      nameConstraints: { permittedUris: ['example.org'] },
    });
    const good = await issueSvid(constrained, W);
    expect(verifyX509Svid(good.chainDer, shared).spiffeId.toString()).toBe(W);
    const evil = await issueSvid(constrained, 'spiffe://evil.org/w');
    expectIdentityError(() => verifyX509Svid(evil.chainDer, shared), 'x509svid-name-constraint-violation');
  });

  it('rejects a signing certificate carrying a SPIFFE ID with a path', async () => {
    const bad = await createIntermediate(root, { spiffeId: 'spiffe://example.org/workload' });
    const svid = await issueSvid(bad, W);
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-intermediate-has-path');
  });

  it('rejects an oversized chain (17 certificates)', async () => {
    let ca = root;
    for (let i = 0; i < 16; i++) ca = await createIntermediate(ca);
    const svid = await issueSvid(ca, W);
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-chain-too-long');
  });

  it('rejects an oversized certificate (1 MB) before parsing it', async () => {
    const svid = await issueSvid(inter, W, {
      extraExtensions: [{ oid: UNKNOWN_EXTENSION_OID, critical: false, value: new Uint8Array(1 << 20) }],
    });
    expectIdentityError(
      () => verifyX509Svid([svid.der, inter.der], bundles),
      'x509svid-certificate-too-large',
    );
    expectIdentityError(() => verifyX509Svid(svid.chain, bundles), 'x509svid-certificate-too-large');
    // As one concatenated DER blob it is refused by the total size cap first.
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-chain-too-large');
  });

  it('rejects a forged signature under a genuine issuer name', async () => {
    const svid = await issueSvid(inter, W, { signWith: await generateKey() });
    expectIdentityError(() => verifyX509Svid(svid.chainDer, bundles), 'x509svid-untrusted-chain');
  });

  it('stops a crafted chain of mutually issuing intermediates without exponential search', async () => {
    // Fifteen intermediates with one key and one name: each "issues" every other one.
    const key = await generateKey();
    const loop: CaMaterial[] = [];
    for (let i = 0; i < 15; i++) {
      loop.push(
        await createIntermediate(root, {
          key,
          subject: 'CN=loop',
          issuerName: 'CN=loop',
          signWith: key,
          omitKeyIdentifiers: true,
        }),
      );
    }
    const svid = await issueSvid(loop[0]!, W);
    // Every pair really links: the search space is all orderings of the fifteen.
    expect(loop[1]!.cert.checkIssued(loop[2]!.cert) && loop[1]!.cert.verify(loop[2]!.cert.publicKey)).toBe(
      true,
    );
    expectIdentityError(
      () => verifyX509Svid([svid.der, ...loop.map((c) => c.der)], bundles),
      'x509svid-untrusted-chain',
    );
  });
});
