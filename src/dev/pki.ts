/**
 * Certificate minting for the dev Workload API server: a self-signed CA per trust domain and
 * X509-SVIDs under it, DER-encoded by ./der.ts and signed with node:crypto (ECDSA P-256,
 * SHA-256). No WebCrypto engine and no global state are involved.
 *
 * @internal
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import * as der from './der.js';

const OID_EC_SHA256 = '1.2.840.10045.4.3.2';
const OID_ORG = '2.5.4.10';
const OID_CN = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SAN = '2.5.29.17';
const OID_SKI = '2.5.29.14';
const OID_AKI = '2.5.29.35';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** KeyUsage bits (RFC 5280 §4.2.1.3), as the first byte of the BIT STRING. */
const KU_DIGITAL_SIGNATURE = 0x80;
const KU_KEY_CERT_SIGN = 0x04;
const KU_CRL_SIGN = 0x02;

/** An EC P-256 key pair. */
export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Makes a fresh ECDSA P-256 key pair. */
export function generateKeyPair(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/** A minted certificate with the facts the server needs again. */
export interface MintedCert {
  der: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** SubjectKeyIdentifier bytes. */
  ski: Uint8Array;
  /** The subject name, for the issuer field of children. */
  subject: Uint8Array;
}

/** Parameters of {@link mintCertificate}. */
export interface MintParams {
  publicKey: KeyObject;
  /** Signer: the issuing CA (undefined for a self-signed CA). */
  issuer: { cert: MintedCert; privateKey: KeyObject } | undefined;
  /** Private key of a self-signed certificate (when `issuer` is undefined). */
  selfPrivateKey?: KeyObject | undefined;
  commonName: string;
  isCa: boolean;
  uris: readonly string[];
  dnsNames?: readonly string[] | undefined;
  notBefore: Date;
  notAfter: Date;
}

function name(commonName: string): Uint8Array {
  const rdn = (o: string, v: string): Uint8Array => der.set(der.seq(der.oid(o), der.utf8(v)));
  return der.seq(rdn(OID_ORG, 'Tachikoma dev Workload API'), rdn(OID_CN, commonName));
}

function keyUsage(byte: number): Uint8Array {
  let unused = 0;
  while (unused < 7 && (byte & (1 << unused)) === 0) unused++;
  return der.bits(Uint8Array.of(byte), unused);
}

function extension(o: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? der.seq(der.oid(o), der.boolTrue(), der.octets(value))
    : der.seq(der.oid(o), der.octets(value));
}

const SIG_ALG = der.seq(der.oid(OID_EC_SHA256));
const ASCII = new TextEncoder();

/** Builds, signs and encodes one certificate. */
export function mintCertificate(p: MintParams): MintedCert {
  const spki = new Uint8Array(p.publicKey.export({ type: 'spki', format: 'der' }));
  // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }
  const outer = der.readTlv(spki, 0);
  const alg = der.readTlv(spki, outer.start);
  const keyBits = der.readTlv(spki, alg.end);
  const ski = new Uint8Array(
    createHash('sha1')
      .update(spki.subarray(keyBits.start + 1, keyBits.end))
      .digest(),
  );
  const serialBytes = randomBytes(16);
  serialBytes[0] = (serialBytes[0]! & 0x7f) | 0x10; // positive, never zero, always 16 bytes
  const subject = name(p.commonName);

  const extensions: Uint8Array[] = [
    extension(OID_BASIC_CONSTRAINTS, true, p.isCa ? der.seq(der.boolTrue()) : der.seq()),
    extension(
      OID_KEY_USAGE,
      true,
      keyUsage(p.isCa ? KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN : KU_DIGITAL_SIGNATURE),
    ),
    extension(OID_SKI, false, der.octets(ski)),
  ];
  if (p.issuer) {
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
    extensions.push(extension(OID_AKI, false, der.seq(der.ctxPrim(0, p.issuer.cert.ski))));
  }
  if (!p.isCa) {
    extensions.push(
      extension(OID_EXT_KEY_USAGE, false, der.seq(der.oid(OID_SERVER_AUTH), der.oid(OID_CLIENT_AUTH))),
    );
  }
  const sans = [
    ...p.uris.map((u) => der.ctxPrim(6, ASCII.encode(u))),
    ...(p.dnsNames ?? []).map((d) => der.ctxPrim(2, ASCII.encode(d))),
  ];
  if (sans.length > 0) extensions.push(extension(OID_SAN, false, der.seq(...sans)));

  const tbs = der.seq(
    der.ctxCons(0, der.uint(Uint8Array.of(2))),
    der.uint(serialBytes),
    SIG_ALG,
    p.issuer ? p.issuer.cert.subject : subject,
    der.seq(der.time(p.notBefore), der.time(p.notAfter)),
    subject,
    spki,
    der.ctxCons(3, der.seq(...extensions)),
  );
  const signer = p.issuer ? p.issuer.privateKey : p.selfPrivateKey;
  if (!signer) throw new Error('mintCertificate: no signing key');
  const signature = new Uint8Array(sign('sha256', tbs, signer)); // DER ECDSA-Sig-Value, as X.509 wants
  const cert = der.seq(tbs, SIG_ALG, der.bits(signature));
  return {
    der: cert,
    serialHex: Buffer.from(serialBytes).toString('hex'),
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    ski,
    subject,
  };
}

/** A certificate authority of the dev server. */
export interface DevAuthority {
  keys: KeyPair;
  cert: MintedCert;
}

/** Makes a self-signed CA for `trustDomainId` (`spiffe://td`). */
export function createAuthority(
  trustDomainId: string,
  serialNo: number,
  ttlMs: number,
  now: number,
): DevAuthority {
  const keys = generateKeyPair();
  const cert = mintCertificate({
    publicKey: keys.publicKey,
    issuer: undefined,
    selfPrivateKey: keys.privateKey,
    commonName: `dev CA ${serialNo}`,
    isCa: true,
    uris: [trustDomainId],
    notBefore: new Date(Math.floor((now - 60_000) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + ttlMs) / 1000) * 1000),
  });
  return { keys, cert };
}

/** An issued X509-SVID: chain DER (leaf first) and PKCS#8 key DER. */
export interface IssuedSvid {
  chainDer: Uint8Array;
  keyDer: Uint8Array;
  serialHex: string;
  notAfter: Date;
}

/** Issues an X509-SVID for `spiffeId` under `ca`, capped at the CA's expiry. */
export function issueX509Svid(
  ca: DevAuthority,
  spiffeId: string,
  ttlMs: number,
  now: number,
  dnsNames?: readonly string[] | undefined,
): IssuedSvid {
  const keys = generateKeyPair();
  // Backdated a little, as SPIRE does, to tolerate clock skew between peers.
  const notBefore = new Date(Math.floor((now - 10_000) / 1000) * 1000);
  const notAfterMs = Math.min(Math.ceil((now + ttlMs) / 1000) * 1000, ca.cert.notAfter.getTime());
  const cert = mintCertificate({
    publicKey: keys.publicKey,
    issuer: { cert: ca.cert, privateKey: ca.keys.privateKey },
    commonName: 'dev workload',
    isCa: false,
    uris: [spiffeId],
    dnsNames,
    notBefore,
    notAfter: new Date(notAfterMs),
  });
  return {
    chainDer: cert.der,
    keyDer: new Uint8Array(keys.privateKey.export({ type: 'pkcs8', format: 'der' })),
    serialHex: cert.serialHex,
    notAfter: cert.notAfter,
  };
}
