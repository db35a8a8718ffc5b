// verifyX509Svid and X509Svid.parse throughput on a SPIRE-shaped chain (leaf + intermediate,
// P-256). Not a goal of issue 3; kept to watch the per-handshake cost the TLS layer pays.
//
//   npx vitest bench --run --project unit bench/x509-svid.bench.ts
import { beforeAll, bench, describe } from 'vitest';
import { BundleSet } from '../src/bundle/index.js';
import { parseCertificateDer } from '../src/internal/x509-ext.js';
import { verifyX509Svid, X509Svid } from '../src/svid/index.js';
import {
  createCa,
  createIntermediate,
  issueSvid,
  type SvidMaterial,
  x509BundleOf,
} from '../test/fixtures/pki.js';

let svid: SvidMaterial;
let bundles: BundleSet;

beforeAll(async () => {
  const root = await createCa({ trustDomain: 'example.org' });
  svid = await issueSvid(await createIntermediate(root), 'spiffe://example.org/workload');
  bundles = new BundleSet(x509BundleOf(root));
});

describe('X509-SVID', () => {
  bench('verifyX509Svid (concatenated DER, 2 certs)', () => {
    verifyX509Svid(svid.chainDer, bundles);
  });
  bench('verifyX509Svid (same X509Certificate objects: parse cached)', () => {
    verifyX509Svid(svid.chain, bundles);
  });
  bench('X509Svid.parse (DER chain + PKCS#8 key)', () => {
    X509Svid.parse(svid.chainDer, svid.key.pkcs8Der);
  });
  bench('parseCertificateDer (one leaf)', () => {
    parseCertificateDer(svid.der);
  });
});
