// X509-SVID spec rules (spiffe-rules.md §1.2), one table row per rule and outcome. Every
// negative row asserts the exact error code, so removing the check under it fails the row (a
// later check rejecting the same input would report another code).
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet, X509Bundle } from '../../../src/bundle/index.js';
import { type CertificateChainInput, parseX509SvidLeaf, verifyX509Svid } from '../../../src/svid/index.js';
import { expectIdentityError } from '../../fixtures/errors.js';
import {
  type CaMaterial,
  concatDer,
  createCa,
  createIntermediate,
  generateKey,
  issueSvid,
  UNKNOWN_EXTENSION_OID,
  x509BundleOf,
} from '../../fixtures/pki.js';

interface Ctx {
  root: CaMaterial;
  inter: CaMaterial;
  otherRoot: CaMaterial;
  bundles: BundleSet;
}

interface Scenario {
  chain: CertificateChainInput;
  bundles?: BundleSet | X509Bundle;
  now?: Date;
  /** Expected SPIFFE ID for a positive row. */
  id?: string;
}

interface Row {
  rule: string;
  /** `ok` or the IdentityError code. */
  expect: string;
  build: (ctx: Ctx) => Promise<Scenario>;
}

const W = 'spiffe://example.org/workload';
const HOUR = 3600_000;

/** A root trusted for example.org and evil.org at once (one upstream CA for two trust domains). */
function sharedBundles(root: CaMaterial): BundleSet {
  return new BundleSet(x509BundleOf(root), X509Bundle.fromAuthorities('evil.org', [root.cert]));
}

const rows: Row[] = [
  // §2 SPIFFE ID / §5.2 exactly one URI SAN
  {
    rule: '§2 one URI SAN with a SPIFFE ID',
    expect: 'ok',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W)).chainDer, id: W }),
  },
  {
    rule: '§2 other SAN types may be present',
    expect: 'ok',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { dnsNames: ['web.example.org'], emails: ['a@example.org'] }))
        .chainDer,
      id: W,
    }),
  },
  {
    rule: '§2 no SAN extension',
    expect: 'x509svid-leaf-missing-uri-san',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { uris: [] })).chainDer }),
  },
  {
    rule: '§2 SANs but no URI SAN',
    expect: 'x509svid-leaf-missing-uri-san',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { uris: [], dnsNames: ['web.example.org'] })).chainDer,
    }),
  },
  {
    rule: '§5.2 more than one URI SAN',
    expect: 'x509svid-leaf-multiple-uri-sans',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { uris: [W, 'spiffe://example.org/other'] })).chainDer,
    }),
  },
  {
    rule: '§5.2 URI SAN with another scheme',
    expect: 'x509svid-leaf-invalid-spiffe-id',
    build: async (c) => ({ chain: (await issueSvid(c.inter, 'https://example.org/workload')).chainDer }),
  },
  {
    rule: '§2 SPIFFE ID with a dot segment',
    expect: 'x509svid-leaf-invalid-spiffe-id',
    build: async (c) => ({ chain: (await issueSvid(c.inter, 'spiffe://example.org/a/../b')).chainDer }),
  },
  {
    rule: '§2 SPIFFE ID with an uppercase scheme',
    expect: 'x509svid-leaf-invalid-spiffe-id',
    build: async (c) => ({ chain: (await issueSvid(c.inter, 'SPIFFE://example.org/workload')).chainDer }),
  },
  // §3.1 leaf certificates
  {
    rule: '§3.1 leaf SPIFFE ID with a root path',
    expect: 'x509svid-leaf-root-path',
    build: async (c) => ({ chain: (await issueSvid(c.inter, 'spiffe://example.org')).chainDer }),
  },
  {
    rule: '§3.1 empty subject with a critical SAN (producer rule, tolerated)',
    expect: 'ok',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { subject: '' })).chainDer, id: W }),
  },
  // §3.2 signing certificates
  {
    rule: '§3.2 intermediate with CA=false',
    expect: 'x509svid-intermediate-not-ca',
    build: async (c) => {
      const bad = await createIntermediate(c.root, { basicConstraints: { ca: false } });
      return { chain: (await issueSvid(bad, W)).chainDer };
    },
  },
  {
    rule: '§3.2 intermediate without basicConstraints',
    expect: 'x509svid-intermediate-not-ca',
    build: async (c) => {
      const bad = await createIntermediate(c.root, { basicConstraints: null });
      return { chain: (await issueSvid(bad, W)).chainDer };
    },
  },
  {
    rule: '§3.2/§4.3 intermediate keyUsage without keyCertSign',
    expect: 'x509svid-intermediate-no-key-cert-sign',
    build: async (c) => {
      const bad = await createIntermediate(c.root, { keyUsage: ['cRLSign', 'digitalSignature'] });
      return { chain: (await issueSvid(bad, W)).chainDer };
    },
  },
  {
    rule: '§4.3 intermediate without keyUsage',
    expect: 'x509svid-intermediate-no-key-cert-sign',
    build: async (c) => {
      const bad = await createIntermediate(c.root, { keyUsage: null });
      return { chain: (await issueSvid(bad, W)).chainDer };
    },
  },
  {
    rule: '§3.2 intermediate SPIFFE ID with a path',
    expect: 'x509svid-intermediate-has-path',
    build: async (c) => {
      const bad = await createIntermediate(c.root, { spiffeId: 'spiffe://example.org/ca' });
      return { chain: (await issueSvid(bad, W)).chainDer };
    },
  },
  {
    rule: '§3.2 intermediate with an invalid SPIFFE ID',
    expect: 'x509svid-intermediate-invalid-spiffe-id',
    build: async (c) => {
      const bad = await createIntermediate(c.root, { spiffeId: 'spiffe://Example.org' });
      return { chain: (await issueSvid(bad, W)).chainDer };
    },
  },
  {
    rule: '§3.2 intermediate without any URI SAN',
    expect: 'ok',
    build: async (c) => {
      const plain = await createIntermediate(c.root, { spiffeId: null });
      return { chain: (await issueSvid(plain, W)).chainDer, id: W };
    },
  },
  // §4.1 basic constraints
  {
    rule: '§4.1 leaf with CA=true',
    expect: 'x509svid-leaf-is-ca',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { basicConstraints: { ca: true } })).chainDer,
    }),
  },
  {
    rule: '§4.1 leaf without basicConstraints counts as CA=false',
    expect: 'ok',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { basicConstraints: null })).chainDer,
      id: W,
    }),
  },
  {
    rule: '§4.1 pathLenConstraint 0 on the CA that issues the leaf',
    expect: 'ok',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { basicConstraints: { ca: true, pathLength: 0 } });
      return { chain: (await issueSvid(inter, W)).chainDer, id: W };
    },
  },
  {
    rule: '§4.1 pathLenConstraint 0 on a root with an intermediate below',
    expect: 'x509svid-path-length-exceeded',
    build: async () => {
      const root = await createCa({
        trustDomain: 'example.org',
        basicConstraints: { ca: true, pathLength: 0 },
      });
      const inter = await createIntermediate(root);
      return { chain: (await issueSvid(inter, W)).chainDer, bundles: x509BundleOf(root) };
    },
  },
  {
    rule: '§4.1 pathLenConstraint 0 on an intermediate with another intermediate below',
    expect: 'x509svid-path-length-exceeded',
    build: async (c) => {
      const top = await createIntermediate(c.root, { basicConstraints: { ca: true, pathLength: 0 } });
      const low = await createIntermediate(top);
      return { chain: (await issueSvid(low, W)).chainDer };
    },
  },
  // §4.2 name constraints
  {
    rule: '§4.2 URI name constraint permits the leaf trust domain',
    expect: 'ok',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { permittedUris: ['example.org'] } });
      return { chain: (await issueSvid(inter, W)).chainDer, bundles: sharedBundles(c.root), id: W };
    },
  },
  {
    rule: '§4.2 URI name constraint excludes a trust domain outside the permitted subtree',
    expect: 'x509svid-name-constraint-violation',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { permittedUris: ['example.org'] } });
      return {
        chain: (await issueSvid(inter, 'spiffe://evil.org/w')).chainDer,
        bundles: sharedBundles(c.root),
      };
    },
  },
  {
    rule: '§4.2 excluded URI subtree',
    expect: 'x509svid-name-constraint-violation',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { excludedUris: ['evil.org'] } });
      return {
        chain: (await issueSvid(inter, 'spiffe://evil.org/w')).chainDer,
        bundles: sharedBundles(c.root),
      };
    },
  },
  {
    rule: '§4.2 leading-dot URI constraint admits subdomains',
    expect: 'ok',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { permittedUris: ['.org'] } });
      return { chain: (await issueSvid(inter, W)).chainDer, id: W };
    },
  },
  {
    rule: '§4.2 leading-dot URI constraint does not admit the domain itself',
    expect: 'x509svid-name-constraint-violation',
    build: async (c) => {
      const inter = await createIntermediate(c.root, {
        nameConstraints: { permittedUris: ['.example.org'] },
      });
      return { chain: (await issueSvid(inter, W)).chainDer };
    },
  },
  {
    rule: '§4.2 constraints on the root apply to the whole chain',
    expect: 'x509svid-name-constraint-violation',
    build: async () => {
      const root = await createCa({
        trustDomain: 'example.org',
        nameConstraints: { permittedUris: ['example.org'] },
      });
      const inter = await createIntermediate(root, { spiffeId: null });
      return {
        chain: (await issueSvid(inter, 'spiffe://evil.org/w')).chainDer,
        bundles: sharedBundles(root),
      };
    },
  },
  {
    rule: '§4.2 DNS name constraint checks DNS SANs',
    expect: 'x509svid-name-constraint-violation',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { permittedDns: ['example.org'] } });
      return { chain: (await issueSvid(inter, W, { dnsNames: ['web.evil.org'] })).chainDer };
    },
  },
  {
    rule: '§4.2 DNS name constraint matches whole labels only',
    expect: 'x509svid-name-constraint-violation',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { permittedDns: ['example.org'] } });
      return { chain: (await issueSvid(inter, W, { dnsNames: ['evilexample.org'] })).chainDer };
    },
  },
  {
    rule: '§4.2 DNS name constraint admits names below it',
    expect: 'ok',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { nameConstraints: { permittedDns: ['example.org'] } });
      return { chain: (await issueSvid(inter, W, { dnsNames: ['web.example.org'] })).chainDer, id: W };
    },
  },
  {
    rule: '§4.2 a name constraint kind we do not evaluate fails closed',
    expect: 'x509svid-unsupported-name-constraint',
    build: async (c) => {
      const inter = await createIntermediate(c.root, {
        nameConstraints: { permittedEmails: ['example.org'] },
      });
      return { chain: (await issueSvid(inter, W)).chainDer };
    },
  },
  {
    rule: '§4.2 a GeneralSubtree with minimum ≠ 0 fails closed',
    expect: 'x509svid-unsupported-name-constraint',
    build: async (c) => {
      const inter = await createIntermediate(c.root, {
        nameConstraints: { permittedUris: ['example.org'], withMinimum: true },
      });
      return { chain: (await issueSvid(inter, W)).chainDer };
    },
  },
  // §4.3 key usage
  {
    rule: '§4.3 leaf without keyUsage',
    expect: 'x509svid-leaf-missing-key-usage',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { keyUsage: null })).chainDer }),
  },
  {
    rule: '§4.3 leaf keyUsage without digitalSignature',
    expect: 'x509svid-leaf-no-digital-signature',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { keyUsage: ['keyAgreement', 'keyEncipherment'] })).chainDer,
    }),
  },
  {
    rule: '§4.3 leaf keyUsage with keyCertSign',
    expect: 'x509svid-leaf-key-cert-sign',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { keyUsage: ['digitalSignature', 'keyCertSign'] })).chainDer,
    }),
  },
  {
    rule: '§4.3 leaf keyUsage with cRLSign',
    expect: 'x509svid-leaf-crl-sign',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { keyUsage: ['digitalSignature', 'cRLSign'] })).chainDer,
    }),
  },
  {
    rule: '§4.3 non-critical keyUsage is tolerated (its bits are enforced anyway)',
    expect: 'ok',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W, { keyUsageCritical: false })).chainDer,
      id: W,
    }),
  },
  // §4.4 extended key usage
  {
    rule: '§4.4 leaf without EKU',
    expect: 'ok',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { extKeyUsage: null })).chainDer, id: W }),
  },
  {
    rule: '§4.4 leaf EKU codeSigning only',
    expect: 'x509svid-leaf-bad-extended-key-usage',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { extKeyUsage: ['codeSigning'] })).chainDer }),
  },
  {
    rule: '§4.4 leaf EKU serverAuth without clientAuth',
    expect: 'x509svid-leaf-bad-extended-key-usage',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { extKeyUsage: ['serverAuth'] })).chainDer }),
  },
  {
    rule: '§4.4 intermediate EKU allowing neither TLS purpose',
    expect: 'x509svid-intermediate-bad-extended-key-usage',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { extKeyUsage: ['codeSigning'] });
      return { chain: (await issueSvid(inter, W)).chainDer };
    },
  },
  {
    rule: '§4.4 intermediate EKU anyExtendedKeyUsage',
    expect: 'ok',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { extKeyUsage: ['any'] });
      return { chain: (await issueSvid(inter, W)).chainDer, id: W };
    },
  },
  // §5.1 path validation
  {
    rule: '§5.1 leaf issued directly by the root',
    expect: 'ok',
    build: async (c) => ({ chain: (await issueSvid(c.root, W)).chainDer, id: W }),
  },
  {
    rule: '§5.1 chain that ends with the root itself',
    expect: 'ok',
    build: async (c) => {
      const svid = await issueSvid(c.inter, W);
      return { chain: concatDer(svid.chainDer, c.root.der), id: W };
    },
  },
  {
    rule: '§5.1 intermediates in reverse order',
    expect: 'ok',
    build: async (c) => {
      const low = await createIntermediate(c.inter);
      const svid = await issueSvid(low, W);
      return { chain: [svid.der, c.inter.der, low.der], id: W };
    },
  },
  {
    rule: '§5.1 unknown root',
    expect: 'x509svid-untrusted-chain',
    build: async () => ({
      chain: (await issueSvid(await createCa({ trustDomain: 'example.org' }), W)).chainDer,
    }),
  },
  {
    rule: '§5.1 forged signature (right issuer name, wrong key)',
    expect: 'x509svid-untrusted-chain',
    build: async (c) => ({ chain: (await issueSvid(c.root, W, { signWith: await generateKey() })).chainDer }),
  },
  {
    rule: '§5.1 missing intermediate',
    expect: 'x509svid-untrusted-chain',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W)).der }),
  },
  {
    rule: '§5.1 expired leaf',
    expect: 'x509svid-expired',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { expired: true })).chainDer }),
  },
  {
    rule: '§5.1 leaf not yet valid',
    expect: 'x509svid-not-yet-valid',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { notYetValid: true })).chainDer }),
  },
  {
    rule: '§5.1 expired intermediate',
    expect: 'x509svid-expired',
    build: async (c) => {
      const inter = await createIntermediate(c.root, { expired: true });
      const leaf = await issueSvid(inter, W, {
        notBefore: new Date(Date.now() - 3 * HOUR),
        notAfter: new Date(Date.now() + HOUR),
      });
      return { chain: leaf.chainDer };
    },
  },
  {
    rule: '§5.1 expired bundle authority',
    expect: 'x509svid-expired',
    build: async () => {
      const root = await createCa({ trustDomain: 'example.org', expired: true });
      return { chain: (await issueSvid(root, W)).chainDer, bundles: x509BundleOf(root) };
    },
  },
  {
    rule: '§5.1 bundle authority that is not a CA',
    expect: 'x509svid-authority-not-ca',
    build: async () => {
      const fake = await createCa({ trustDomain: 'example.org', basicConstraints: { ca: false } });
      return { chain: (await issueSvid(fake, W)).chainDer, bundles: x509BundleOf(fake) };
    },
  },
  {
    rule: '§5.1 injected clock after notAfter',
    expect: 'x509svid-expired',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W)).chainDer,
      now: new Date(Date.now() + 2 * HOUR),
    }),
  },
  {
    rule: '§5.1 injected clock before notBefore',
    expect: 'x509svid-not-yet-valid',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W)).chainDer, now: new Date(Date.now() - HOUR) }),
  },
  {
    rule: '§5.1 injected clock inside the validity window',
    expect: 'ok',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W)).chainDer,
      now: new Date(Date.now() + HOUR / 2),
      id: W,
    }),
  },
  // RFC 5280 rules our verifier owns (no OpenSSL chain verification runs)
  {
    rule: 'RFC 5280 §4.2 unknown critical extension',
    expect: 'x509svid-unhandled-critical-extension',
    build: async (c) => ({
      chain: (
        await issueSvid(c.inter, W, {
          extraExtensions: [{ oid: UNKNOWN_EXTENSION_OID, critical: true, value: new Uint8Array([5, 0]) }],
        })
      ).chainDer,
    }),
  },
  {
    rule: 'RFC 5280 §4.2 unknown non-critical extension',
    expect: 'ok',
    build: async (c) => ({
      chain: (
        await issueSvid(c.inter, W, {
          extraExtensions: [{ oid: UNKNOWN_EXTENSION_OID, critical: false, value: new Uint8Array([5, 0]) }],
        })
      ).chainDer,
      id: W,
    }),
  },
  {
    rule: 'unknown critical extension on an intermediate',
    expect: 'x509svid-unhandled-critical-extension',
    build: async (c) => {
      const inter = await createIntermediate(c.root, {
        extraExtensions: [{ oid: UNKNOWN_EXTENSION_OID, critical: true, value: new Uint8Array([5, 0]) }],
      });
      return { chain: (await issueSvid(inter, W)).chainDer };
    },
  },
  // Keys and algorithms
  {
    rule: 'leaf RSA key under 2048 bits',
    expect: 'x509svid-weak-key',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { key: 'rsa-1024' })).chainDer }),
  },
  {
    rule: 'leaf signed with SHA-1',
    expect: 'x509svid-unsupported-signature-algorithm',
    build: async (c) => ({ chain: (await issueSvid(c.inter, W, { signatureHash: 'SHA-1' })).chainDer }),
  },
  {
    rule: 'RSA root, RSASSA-PSS signatures, EC leaf',
    expect: 'ok',
    build: async () => {
      const root = await createCa({ trustDomain: 'example.org', key: 'rsa-2048' });
      return {
        chain: (await issueSvid(root, W, { signatureScheme: 'pss' })).chainDer,
        bundles: x509BundleOf(root),
        id: W,
      };
    },
  },
  {
    rule: 'P-384 and P-521 keys',
    expect: 'ok',
    build: async () => {
      const root = await createCa({ trustDomain: 'example.org', key: 'ec-p521', signatureHash: 'SHA-512' });
      return {
        chain: (await issueSvid(root, W, { key: 'ec-p384', signatureHash: 'SHA-384' })).chainDer,
        bundles: x509BundleOf(root),
        id: W,
      };
    },
  },
  {
    rule: 'Ed25519 keys',
    expect: 'ok',
    build: async () => {
      const root = await createCa({ trustDomain: 'example.org', key: 'ed25519' });
      return {
        chain: (await issueSvid(root, W, { key: 'ed25519' })).chainDer,
        bundles: x509BundleOf(root),
        id: W,
      };
    },
  },
  // Bundle selection (SPIFFE-ID §3.1: an SVID is valid only if signed by its own trust domain)
  {
    rule: 'no bundle for the leaf trust domain',
    expect: 'x509svid-no-bundle',
    build: async (c) => ({ chain: (await issueSvid(c.inter, 'spiffe://third.org/w')).chainDer }),
  },
  {
    rule: 'a single X509Bundle of another trust domain',
    expect: 'x509svid-no-bundle',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W)).chainDer,
      bundles: x509BundleOf(c.otherRoot),
    }),
  },
  {
    rule: 'a single X509Bundle of the leaf trust domain',
    expect: 'ok',
    build: async (c) => ({
      chain: (await issueSvid(c.inter, W)).chainDer,
      bundles: x509BundleOf(c.root),
      id: W,
    }),
  },
];

describe('X509-SVID rules (verifyX509Svid)', () => {
  const ctx = {} as Ctx;
  beforeAll(async () => {
    ctx.root = await createCa({ trustDomain: 'example.org' });
    ctx.inter = await createIntermediate(ctx.root);
    ctx.otherRoot = await createCa({ trustDomain: 'other.org' });
    ctx.bundles = new BundleSet(x509BundleOf(ctx.root), x509BundleOf(ctx.otherRoot));
  });

  for (const row of rows) {
    it(`${row.rule} → ${row.expect}`, async () => {
      const s = await row.build(ctx);
      const run = () =>
        verifyX509Svid(s.chain, s.bundles ?? ctx.bundles, s.now === undefined ? undefined : { now: s.now });
      if (row.expect === 'ok') {
        const result = run();
        expect(result.spiffeId.toString()).toBe(s.id);
        // The path ends at an authority of the leaf's own trust domain bundle.
        const bundle =
          s.bundles instanceof X509Bundle
            ? s.bundles
            : (s.bundles ?? ctx.bundles).getX509Bundle(result.spiffeId.trustDomain)!;
        expect(bundle.hasAuthority(result.chain.at(-1)!)).toBe(true);
        expect(result.chain[0]).toBeInstanceOf(X509Certificate);
      } else {
        expectIdentityError(run, row.expect);
      }
    });
  }
});

describe('verifyX509Svid input forms and limits', () => {
  const ctx = {} as Ctx;
  beforeAll(async () => {
    ctx.root = await createCa({ trustDomain: 'example.org' });
    ctx.inter = await createIntermediate(ctx.root);
    ctx.bundles = new BundleSet(x509BundleOf(ctx.root));
  });

  it('accepts PEM text, concatenated DER, DER list and X509Certificate list alike', async () => {
    const svid = await issueSvid(ctx.inter, W);
    for (const chain of [svid.chainPem, svid.chainDer, svid.chainDers, svid.chain]) {
      const r = verifyX509Svid(chain, ctx.bundles);
      expect(r.spiffeId.toString()).toBe(W);
      expect(r.chain.map((c) => c.fingerprint256)).toEqual([
        svid.cert.fingerprint256,
        ctx.inter.cert.fingerprint256,
        ctx.root.cert.fingerprint256,
      ]);
    }
  });

  it('rejects an empty chain', () => {
    expectIdentityError(() => verifyX509Svid([], ctx.bundles), 'x509svid-empty-chain');
    expectIdentityError(() => verifyX509Svid(new Uint8Array(0), ctx.bundles), 'x509svid-empty-chain');
  });

  it('rejects a PEM chain holding a private key block', async () => {
    const svid = await issueSvid(ctx.inter, W);
    expectIdentityError(
      () => verifyX509Svid(svid.chainPem + svid.key.pkcs8Pem, ctx.bundles),
      'x509svid-malformed-pem',
    );
  });

  it('reads PEM strictly', async () => {
    const svid = await issueSvid(ctx.inter, W);
    const pem = svid.pem;
    const body = pem.split('\n').slice(1, -2).join('\n');
    // Explanatory text between blocks is fine.
    expect(
      verifyX509Svid(`subject=leaf\n${pem}issuer text\n${ctx.inter.pem}`, ctx.bundles).spiffeId.toString(),
    ).toBe(W);
    for (const bad of [
      pem.replace('-----END CERTIFICATE-----', ''), // no END line
      `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`.replace(
        '-----BEGIN CERTIFICATE-----',
        '-----BEGIN CERTIFICATE',
      ), // unterminated BEGIN
      pem.replace(
        /^-----BEGIN CERTIFICATE-----\n/,
        '-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n',
      ), // nested BEGIN
      pem.replace('BEGIN CERTIFICATE', 'BEGIN certificate').replace('END CERTIFICATE', 'END certificate'), // bad label
      pem.replace(/\n-----END/, '=\n-----END'), // bad padding
      pem.replace(/^(-----BEGIN CERTIFICATE-----\n)/, '$1Proc-Type: 4,ENCRYPTED\n\n'), // headers
      pem.replace(/^(-----BEGIN CERTIFICATE-----\n.)/, '$1*'), // not base64
    ]) {
      expectIdentityError(() => verifyX509Svid(bad, ctx.bundles), 'x509svid-malformed-pem');
    }
  });

  it('splits concatenated DER strictly', async () => {
    const svid = await issueSvid(ctx.inter, W);
    const der = svid.der;
    expect(der[0]).toBe(0x30);
    expect(der[1]).toBe(0x82);
    for (const bad of [
      concatDer(der, new Uint8Array([0x31, 0])), // not a SEQUENCE
      concatDer(der, new Uint8Array([0x30, 0x80, 0, 0])), // indefinite length
      concatDer(der, new Uint8Array([0x30, 0x81, 0x05, 1, 2, 3, 4, 5])), // non-minimal length
      concatDer(der, new Uint8Array([0x30, 0x82, 0x00, 0x90])), // leading zero length octet
      concatDer(der, new Uint8Array([0x30, 0x10, 1])), // truncated
      concatDer(der, new Uint8Array([0x30])), // truncated header
      new Uint8Array([0x30, 0x85, 1, 1, 1, 1, 1]), // 5 length octets
    ]) {
      expectIdentityError(() => verifyX509Svid(bad, ctx.bundles), 'x509svid-malformed-certificate');
    }
  });

  it('parseX509SvidLeaf applies the leaf rules to one certificate', async () => {
    const good = await issueSvid(ctx.inter, W);
    expect(parseX509SvidLeaf(good.cert).toString()).toBe(W);
    expect(parseX509SvidLeaf(good.der).toString()).toBe(W);
    const ca = await issueSvid(ctx.inter, W, { basicConstraints: { ca: true } });
    expectIdentityError(() => parseX509SvidLeaf(ca.der), 'x509svid-leaf-is-ca');
    expectIdentityError(() => parseX509SvidLeaf(good.pem as never), 'x509svid-invalid-option');
    // The leaf rules only: an untrusted or expired leaf still yields its ID.
    const expired = await issueSvid(await createCa({ trustDomain: 'example.org' }), W, { expired: true });
    expect(parseX509SvidLeaf(expired.cert).toString()).toBe(W);
  });

  it('rejects text without any PEM block', () => {
    expectIdentityError(() => verifyX509Svid('hello', ctx.bundles), 'x509svid-empty-chain');
  });

  it('rejects a chain of 17 certificates (limit 16)', async () => {
    let ca = ctx.root;
    for (let i = 0; i < 15; i++) ca = await createIntermediate(ca);
    const ok = await issueSvid(ca, W);
    expect(ok.chain).toHaveLength(16);
    expect(verifyX509Svid(ok.chainDer, ctx.bundles).chain).toHaveLength(17);
    const deeper = await createIntermediate(ca);
    const tooLong = await issueSvid(deeper, W);
    expect(tooLong.chain).toHaveLength(17);
    expectIdentityError(() => verifyX509Svid(tooLong.chainDer, ctx.bundles), 'x509svid-chain-too-long');
    expectIdentityError(() => verifyX509Svid(tooLong.chainPem, ctx.bundles), 'x509svid-chain-too-long');
    expectIdentityError(() => verifyX509Svid(tooLong.chain, ctx.bundles), 'x509svid-chain-too-long');
  });

  it('rejects a leaf with more than 256 SAN entries', async () => {
    const dnsNames = Array.from({ length: 256 }, (_, i) => `n${i}.example.org`);
    const atLimit = await issueSvid(ctx.inter, W, { dnsNames: dnsNames.slice(0, 255) });
    expect(verifyX509Svid(atLimit.chainDer, ctx.bundles).spiffeId.toString()).toBe(W);
    const over = await issueSvid(ctx.inter, W, { dnsNames });
    expectIdentityError(() => verifyX509Svid(over.chainDer, ctx.bundles), 'x509svid-too-many-sans');
  });

  it('rejects a certificate over 64 KiB before parsing it', async () => {
    const big = await issueSvid(ctx.inter, W, {
      extraExtensions: [
        { oid: UNKNOWN_EXTENSION_OID, critical: false, value: new Uint8Array(70_000).fill(0x41) },
      ],
    });
    expectIdentityError(
      () => verifyX509Svid([big.der, ctx.inter.der], ctx.bundles),
      'x509svid-certificate-too-large',
    );
    expectIdentityError(() => verifyX509Svid(big.chain, ctx.bundles), 'x509svid-certificate-too-large');
  });

  it('rejects bad options and inputs with x509svid-invalid-option', async () => {
    const svid = await issueSvid(ctx.inter, W);
    expectIdentityError(
      () => verifyX509Svid(svid.chainDer, ctx.bundles, { now: new Date(Number.NaN) }),
      'x509svid-invalid-option',
    );
    expectIdentityError(() => verifyX509Svid(42 as never, ctx.bundles), 'x509svid-invalid-option');
    expectIdentityError(() => verifyX509Svid([{}] as never, ctx.bundles), 'x509svid-invalid-option');
    expectIdentityError(() => verifyX509Svid(svid.chainDer, {} as never), 'x509svid-invalid-option');
  });
});
