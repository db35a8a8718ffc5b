// Test-only helper: makes CA certificates at test time with @peculiar/x509 (reflect-metadata is
// loaded by the vitest setup file). The full PKI fixture factory lives in test/fixtures/.
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { toPem } from '../../fixtures/pki.js';

x509.cryptoProvider.set(webcrypto as never);

/** Key algorithms the helper can make CAs with. */
export type CaKeyType = 'P-256' | 'P-384' | 'RSA-2048' | 'Ed25519';

function algorithmOf(type: CaKeyType): {
  gen: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | webcrypto.Algorithm;
  sign: webcrypto.Algorithm;
} {
  switch (type) {
    case 'P-256':
      return {
        gen: { name: 'ECDSA', namedCurve: 'P-256' },
        sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.Algorithm,
      };
    case 'P-384':
      return {
        gen: { name: 'ECDSA', namedCurve: 'P-384' },
        sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.Algorithm,
      };
    case 'RSA-2048':
      return {
        gen: {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        sign: { name: 'RSASSA-PKCS1-v1_5' },
      };
    case 'Ed25519':
      return { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
  }
}

let serial = 1;

/** Makes a self-signed CA certificate for `spiffe://<td>` and returns it as node:crypto and DER. */
export async function makeCa(
  td: string,
  type: CaKeyType = 'P-256',
): Promise<{ cert: X509Certificate; der: Uint8Array }> {
  const alg = algorithmOf(type);
  const keys = (await webcrypto.subtle.generateKey(alg.gen as webcrypto.EcKeyGenParams, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    name: `CN=${td} CA ${serial}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    keys,
    signingAlgorithm: alg.sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${td}` }]),
    ],
  });
  const der = new Uint8Array(ca.rawData);
  return { cert: new X509Certificate(der), der };
}

/** Re-encodes the outer signatureAlgorithm of a certificate with a non-minimal length (BER, not DER). */
export function berVariant(der: Uint8Array): Uint8Array {
  const b = Buffer.from(der);
  const tlv = (i: number): { hdr: number; len: number } => {
    const f = b[i + 1]!;
    if (f < 0x80) return { hdr: 2, len: f };
    const n = f & 0x7f;
    let len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + b[i + 2 + k]!;
    return { hdr: 2 + n, len };
  };
  let i = tlv(0).hdr;
  const t = tlv(i);
  const tbs = b.subarray(i, i + t.hdr + t.len);
  i += t.hdr + t.len;
  const a = tlv(i);
  const alg = b.subarray(i, i + a.hdr + a.len);
  i += a.hdr + a.len;
  const sig = b.subarray(i);
  const alg2 = Buffer.concat([Buffer.from([0x30, 0x81, a.len]), alg.subarray(a.hdr)]);
  const content = Buffer.concat([tbs, alg2, sig]);
  return new Uint8Array(Buffer.concat([derHeader(content.length), content]));
}

/** A DER SEQUENCE header for `length` content bytes. */
export function derHeader(length: number): Buffer {
  if (length < 0x80) return Buffer.from([0x30, length]);
  if (length < 0x100) return Buffer.from([0x30, 0x81, length]);
  if (length < 0x10000) return Buffer.from([0x30, 0x82, length >> 8, length & 0xff]);
  return Buffer.from([0x30, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
}

/** PEM-encodes DER with the given label. */
export function pem(der: Uint8Array, label = 'CERTIFICATE'): string {
  return toPem(label, der);
}

/** Returns the certificate with its EC public point moved off the curve (node:crypto cannot decode it). */
export function corruptEcPublicKey(cert: X509Certificate): Uint8Array {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const point = spki.subarray(spki.length - 65);
  const at = Buffer.from(cert.raw).indexOf(point);
  if (at < 0 || point[0] !== 0x04) throw new Error('not an uncompressed P-256 point');
  for (let i = 1; i < 33; i++) {
    const der = Buffer.from(cert.raw);
    der[at + i]! ^= 0x5a;
    try {
      void new X509Certificate(der).publicKey;
    } catch {
      return new Uint8Array(der);
    }
  }
  throw new Error('could not corrupt the key');
}

/**
 * Makes a CA certificate whose subject key is the given SPKI (any algorithm node:crypto can make,
 * e.g. DSA or RSA-PSS), signed by a throwaway P-256 key.
 */
export async function makeCaWithSpki(
  td: string,
  spki: Uint8Array,
): Promise<{ cert: X509Certificate; der: Uint8Array }> {
  const signer = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: `CN=${td} CA ${serial}`,
    issuer: `CN=${td} issuer`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    publicKey: spki,
    signingKey: signer.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.Algorithm,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const der = new Uint8Array(ca.rawData);
  return { cert: new X509Certificate(der), der };
}
