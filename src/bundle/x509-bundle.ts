import { X509Certificate } from 'node:crypto';
import { IdentityError } from '../errors/index.js';
import type { TrustDomain } from '../spiffeid/index.js';
import {
  checkCertificateKey,
  MAX_BUNDLE_CERTIFICATES,
  MAX_X509_BUNDLE_BYTES,
  parseCertificate,
  parsePem,
  splitDer,
  toTrustDomain,
  typeName,
} from './common.js';

const constructKey: unique symbol = Symbol('X509Bundle.construct');

const utf8 = new TextDecoder('utf-8', { fatal: true });

function tooLarge(size: number): never {
  throw new IdentityError(
    'bundle-x509-too-large',
    `X.509 bundle input is larger than ${MAX_X509_BUNDLE_BYTES} bytes (at least ${size})`,
    { details: { size } },
  );
}

function rawKey(cert: X509Certificate): string {
  return cert.raw.toString('base64');
}

/** Tells whether bytes look like DER: a SEQUENCE with a long-form length (every certificate is > 127 bytes). */
function looksLikeDer(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x30 && b[1]! >= 0x81 && b[1]! <= 0x84;
}

/**
 * The X.509 authorities (CA certificates) of one trust domain: the roots that X509-SVIDs of
 * that trust domain must chain to.
 *
 * Bundles are immutable. Authorities are deduplicated by their DER encoding (first occurrence
 * wins) and keep their input order.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs';
 * const bundle = X509Bundle.parse('example.org', readFileSync('bundle.pem'));
 * bundle.authorities.length;
 * bundle.hasAuthority(someCert);
 * ```
 */
export class X509Bundle {
  /** The trust domain whose authorities these are. */
  readonly trustDomain: TrustDomain;
  /** The CA certificates, deduplicated, in input order (frozen). */
  readonly authorities: readonly X509Certificate[];
  readonly #keys: ReadonlySet<string>;

  /** @internal Use {@link X509Bundle.parse} or {@link X509Bundle.fromAuthorities}. */
  private constructor(key: typeof constructKey, td: TrustDomain, certs: readonly X509Certificate[]) {
    if (key !== constructKey) {
      throw new IdentityError(
        'bundle-private-constructor',
        'use X509Bundle.parse() or X509Bundle.fromAuthorities()',
      );
    }
    const keys = new Set<string>();
    const unique: X509Certificate[] = [];
    for (const c of certs) {
      const k = rawKey(c);
      if (keys.has(k)) continue;
      keys.add(k);
      unique.push(c);
    }
    this.trustDomain = td;
    this.authorities = Object.freeze(unique);
    this.#keys = keys;
    Object.freeze(this);
  }

  /**
   * Parses the authorities of `td` from PEM text or DER bytes.
   *
   * - A string is PEM: one or more `CERTIFICATE` blocks; text between blocks is ignored, any
   *   other block type (a private key, say) is an error.
   * - A `Uint8Array` is DER when it starts like an ASN.1 SEQUENCE: one or more certificates back
   *   to back, the Workload API format. Otherwise it is read as UTF-8 PEM text (a file read
   *   with `readFileSync`).
   *
   * Input with no certificate is an error; to represent a trust domain with no authorities
   * (an empty Workload API bundle) use `X509Bundle.fromAuthorities(td, [])`.
   *
   * @param td - the trust domain the authorities belong to.
   * @param pemOrDer - PEM text, concatenated DER, or PEM bytes; at most 4 MiB and 1000 certificates.
   * @throws IdentityError `bundle-x509-empty`, `bundle-x509-too-large`,
   *   `bundle-x509-too-many-certificates`, `bundle-x509-bad-der`, `bundle-x509-bad-pem`,
   *   `bundle-x509-unexpected-pem-block`, `bundle-x509-bad-certificate`, `bundle-invalid-argument`.
   */
  static parse(td: TrustDomain | string, pemOrDer: string | Uint8Array): X509Bundle {
    const trustDomain = toTrustDomain(td);
    const what = `X.509 bundle of ${trustDomain.name}`;
    let ders: Uint8Array[];
    if (typeof pemOrDer === 'string') {
      if (pemOrDer.length > MAX_X509_BUNDLE_BYTES) tooLarge(pemOrDer.length);
      ders = parsePem(pemOrDer, what);
    } else if (pemOrDer instanceof Uint8Array) {
      if (pemOrDer.byteLength > MAX_X509_BUNDLE_BYTES) tooLarge(pemOrDer.byteLength);
      if (looksLikeDer(pemOrDer)) {
        ders = splitDer(pemOrDer, what);
      } else {
        let text: string;
        try {
          text = utf8.decode(pemOrDer);
        } catch (err) {
          throw new IdentityError('bundle-x509-bad-pem', `${what} is neither DER nor UTF-8 PEM text`, {
            cause: err,
          });
        }
        ders = parsePem(text, what);
      }
    } else {
      throw new IdentityError(
        'bundle-invalid-argument',
        `${what} must be a PEM string or DER bytes, got ${typeName(pemOrDer)}`,
      );
    }
    if (ders.length === 0) {
      throw new IdentityError(
        'bundle-x509-empty',
        `${what} holds no certificate (use X509Bundle.fromAuthorities(td, []) for an empty bundle)`,
      );
    }
    const certs = ders.map((der, i) => parseCertificate(der, `${what}: certificate ${i}`));
    return new X509Bundle(constructKey, trustDomain, certs);
  }

  /**
   * Builds a bundle from certificates. An empty list is allowed: it is a trust domain with no
   * trusted authorities, against which every X509-SVID fails.
   *
   * @param td - the trust domain the authorities belong to.
   * @param authorities - node:crypto certificates, or single DER certificates (at most 1000).
   * @throws IdentityError `bundle-invalid-argument`, `bundle-x509-too-many-certificates`, or a
   *   DER/certificate code for a malformed `Uint8Array`.
   */
  static fromAuthorities(
    td: TrustDomain | string,
    authorities: readonly (X509Certificate | Uint8Array)[],
  ): X509Bundle {
    const trustDomain = toTrustDomain(td);
    const what = `X.509 bundle of ${trustDomain.name}`;
    if (!Array.isArray(authorities)) {
      throw new IdentityError('bundle-invalid-argument', `${what}: authorities must be an array`);
    }
    if (authorities.length > MAX_BUNDLE_CERTIFICATES) {
      throw new IdentityError(
        'bundle-x509-too-many-certificates',
        `${what}: more than ${MAX_BUNDLE_CERTIFICATES} certificates in one bundle`,
      );
    }
    const certs = authorities.map((a: unknown, i) => {
      if (a instanceof X509Certificate) return checkCertificateKey(a, `${what}: authority ${i}`);
      if (a instanceof Uint8Array) {
        const ders = splitDer(a, `${what}: authority ${i}`);
        if (ders.length !== 1) {
          throw new IdentityError(
            'bundle-x509-bad-der',
            `${what}: authority ${i} must be exactly one DER certificate`,
          );
        }
        return parseCertificate(ders[0]!, `${what}: authority ${i}`);
      }
      throw new IdentityError(
        'bundle-invalid-argument',
        `${what}: authority ${i} must be an X509Certificate or DER bytes, got ${typeName(a)}`,
      );
    });
    return new X509Bundle(constructKey, trustDomain, certs);
  }

  /**
   * Tells whether `cert` is one of the authorities, comparing the DER encoding byte for byte.
   *
   * @param cert - a certificate; anything else gives `false`.
   */
  hasAuthority(cert: X509Certificate): boolean {
    return cert instanceof X509Certificate && this.#keys.has(rawKey(cert));
  }

  /** Returns the authorities as PEM text (one `CERTIFICATE` block each, 64-column base64). */
  marshal(): string {
    let out = '';
    for (const c of this.authorities) {
      const b64 = c.raw.toString('base64');
      out += '-----BEGIN CERTIFICATE-----\n';
      for (let i = 0; i < b64.length; i += 64) out += `${b64.slice(i, i + 64)}\n`;
      out += '-----END CERTIFICATE-----\n';
    }
    return out;
  }

  /** Returns the authorities as concatenated DER (the Workload API format); empty for no authorities. */
  toDer(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.authorities.map((c) => c.raw)));
  }

  /**
   * Tells whether `o` is a bundle of the same trust domain with the same set of authorities
   * (order does not matter).
   *
   * @param o - another bundle; anything else compares unequal.
   */
  equals(o: X509Bundle): boolean {
    if (!(o instanceof X509Bundle) || !o.trustDomain.equals(this.trustDomain)) return false;
    if (o.#keys.size !== this.#keys.size) return false;
    for (const k of this.#keys) if (!o.#keys.has(k)) return false;
    return true;
  }
}
