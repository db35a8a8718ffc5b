// `readFileSync(path)` hands PEM text over as bytes; it must parse as PEM, while real DER
// (and bytes that merely contain PEM later on) keep being treated as DER.
import { describe, expect, it } from 'vitest';
import { X509Bundle } from '../../../src/bundle/index.js';
import { X509Svid } from '../../../src/svid/index.js';
import { createCa, issueSvid } from '../../fixtures/pki.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('PEM text given as bytes', () => {
  it('parses an SVID and a bundle from PEM bytes exactly as from PEM text', async () => {
    const ca = await createCa({ trustDomain: 'pem.test' });
    const svid = await issueSvid(ca, 'spiffe://pem.test/w');
    const fromText = X509Svid.parse(svid.chainPem, svid.key.pkcs8Pem);
    const fromBytes = X509Svid.parse(bytes(`\n${svid.chainPem}`), bytes(svid.key.pkcs8Pem));
    expect(fromBytes.spiffeId.toString()).toBe('spiffe://pem.test/w');
    expect(fromBytes.leaf.raw.equals(fromText.leaf.raw)).toBe(true);
    expect(X509Bundle.parse('pem.test', bytes(ca.pem)).equals(X509Bundle.parse('pem.test', ca.pem))).toBe(
      true,
    );
  });

  it('still treats bytes that do not start with a PEM header as DER', async () => {
    const ca = await createCa({ trustDomain: 'pem.test' });
    const svid = await issueSvid(ca, 'spiffe://pem.test/w');
    expect(() => X509Svid.parse(bytes(`garbage ${svid.chainPem}`), svid.key.pkcs8Der)).toThrow(
      /x509svid-malformed-certificate/,
    );
    expect(X509Svid.parse(svid.chainDer, svid.key.pkcs8Der).spiffeId.toString()).toBe('spiffe://pem.test/w');
  });
});
