// Helpers shared by the bundle classes. Not exported from the package.

import { X509Certificate } from 'node:crypto';
import { IdentityError } from '../errors/index.js';
import { isJsonObject, type JsonObject, parseStrictJson } from '../internal/strict-json.js';
import { TrustDomain } from '../spiffeid/index.js';

/** Largest X.509 bundle input (PEM text or DER) accepted, in bytes (4 MiB). */
export const MAX_X509_BUNDLE_BYTES: number = 4 * 1024 * 1024;

/** Most certificates one X.509 bundle may hold. */
export const MAX_BUNDLE_CERTIFICATES = 1000;

/** Largest single certificate accepted in a bundle, in DER bytes (64 KiB). */
export const MAX_CERTIFICATE_BYTES: number = 64 * 1024;

/** Largest JWKS / SPIFFE bundle JSON document accepted, in UTF-8 bytes (1 MiB). */
export const MAX_BUNDLE_JSON_BYTES: number = 1024 * 1024;

/** Most entries a JWKS / SPIFFE bundle `keys` array may hold (ignored entries included). */
export const MAX_BUNDLE_KEYS = 1000;

/** Parses the trust domain argument of every bundle factory. */
export function toTrustDomain(td: TrustDomain | string): TrustDomain {
  return td instanceof TrustDomain ? td : TrustDomain.parse(td);
}

/** Quotes untrusted text for an error message: JSON-escaped and cut to 64 characters. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/** Describes the type of an untrusted value for an error message. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Splits concatenated DER certificates (the Workload API bundle format) by reading each outer
 * ASN.1 SEQUENCE header. Only definite, minimally encoded lengths are accepted.
 *
 * @param der - one or more DER certificates back to back.
 * @param what - names the input in error messages.
 */
export function splitDer(der: Uint8Array, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < der.length) {
    const bad = (rule: string): never => {
      throw new IdentityError(
        'bundle-x509-bad-der',
        `${what}: certificate ${out.length} at byte ${i}: ${rule}`,
        {
          details: { offset: i, index: out.length },
        },
      );
    };
    if (out.length >= MAX_BUNDLE_CERTIFICATES) {
      throw new IdentityError(
        'bundle-x509-too-many-certificates',
        `${what}: more than ${MAX_BUNDLE_CERTIFICATES} certificates in one bundle`,
      );
    }
    if (der.length - i < 2) bad('truncated DER header');
    if (der[i] !== 0x30)
      bad(`expected an ASN.1 SEQUENCE (0x30), got 0x${der[i]!.toString(16).padStart(2, '0')}`);
    const first = der[i + 1]!;
    let length: number;
    let header: number;
    if (first < 0x80) {
      length = first;
      header = 2;
    } else {
      const n = first & 0x7f;
      if (n === 0) bad('indefinite length is not DER');
      if (n > 3) bad('length field too large for a certificate');
      if (der.length - i < 2 + n) bad('truncated DER length');
      length = 0;
      for (let k = 0; k < n; k++) length = length * 256 + der[i + 2 + k]!;
      if (der[i + 2] === 0 || length < 0x80) bad('length is not minimally encoded (not DER)');
      header = 2 + n;
    }
    const total = header + length;
    if (total > MAX_CERTIFICATE_BYTES) {
      throw new IdentityError(
        'bundle-x509-too-large',
        `${what}: certificate ${out.length} is ${total} bytes, more than ${MAX_CERTIFICATE_BYTES}`,
      );
    }
    if (der.length - i < total) bad(`truncated: ${total} bytes announced, ${der.length - i} left`);
    out.push(der.subarray(i, i + total));
    i += total;
  }
  return out;
}

/**
 * Parses exactly one DER certificate (no trailing bytes) into a node:crypto X509Certificate.
 *
 * @param der - the certificate, already framed by {@link splitDer}.
 * @param what - names the certificate in error messages.
 */
export function parseCertificate(der: Uint8Array, what: string): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    throw new IdentityError('bundle-x509-bad-certificate', `${what} is not a valid X.509 certificate`, {
      cause: err,
    });
  }
  // node:crypto silently ignores trailing data and falls back to PEM; insist that the DER we
  // framed is exactly what OpenSSL parsed.
  if (!Buffer.from(der.buffer, der.byteOffset, der.byteLength).equals(cert.raw)) {
    throw new IdentityError('bundle-x509-bad-certificate', `${what} is not a canonical DER certificate`);
  }
  return checkCertificateKey(cert, what);
}

/**
 * Insists that node:crypto can decode the certificate's public key. X509Certificate parses
 * lazily: a certificate with a malformed or unsupported key only fails when `publicKey` is read,
 * which would otherwise surface later as a plain Error.
 *
 * @param cert - the certificate.
 * @param what - names the certificate in error messages.
 */
export function checkCertificateKey(cert: X509Certificate, what: string): X509Certificate {
  try {
    void cert.publicKey.asymmetricKeyType;
  } catch (err) {
    throw new IdentityError('bundle-x509-bad-certificate', `${what}: its public key cannot be decoded`, {
      cause: err,
    });
  }
  return cert;
}

/** Decodes strict standard base64 (with padding, canonical trailing bits); `undefined` if invalid. */
export function decodeBase64Strict(b64: string): Buffer | undefined {
  if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  return bytes.toString('base64') === b64 ? bytes : undefined;
}

/** Decodes strict unpadded base64url (canonical trailing bits); `undefined` if invalid. */
export function decodeBase64UrlStrict(b64u: string): Buffer | undefined {
  if (b64u.length === 0 || !/^[A-Za-z0-9_-]+$/.test(b64u)) return undefined;
  const bytes = Buffer.from(b64u, 'base64url');
  return bytes.toString('base64url') === b64u ? bytes : undefined;
}

const PEM_BEGIN = /^-----BEGIN ([A-Z0-9 ]{1,64})-----$/;

/**
 * Extracts the certificates of a PEM text. Text outside PEM blocks (comments, `openssl` output)
 * is ignored; any block other than `CERTIFICATE`, PEM headers, bad base64 or a block that does
 * not hold exactly one DER certificate is an error.
 *
 * @param text - the PEM text.
 * @param what - names the input in error messages.
 */
export function parsePem(text: string, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const lines = text.split('\n');
  let body: string[] | undefined;
  let beginLine = 0;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    const badPem = (rule: string): IdentityError =>
      new IdentityError('bundle-x509-bad-pem', `${what}: line ${n + 1}: ${rule}`, {
        details: { line: n + 1 },
      });
    if (body === undefined) {
      if (!line.startsWith('-----BEGIN')) continue;
      const m = PEM_BEGIN.exec(line);
      if (m === null) throw badPem('malformed PEM BEGIN line');
      if (m[1] !== 'CERTIFICATE') {
        throw new IdentityError(
          'bundle-x509-unexpected-pem-block',
          `${what}: line ${n + 1}: a bundle holds only CERTIFICATE blocks, found ${quote(m[1]!)}`,
          { details: { line: n + 1 } },
        );
      }
      body = [];
      beginLine = n + 1;
      continue;
    }
    if (line.startsWith('-----')) {
      if (line !== '-----END CERTIFICATE-----') throw badPem("expected '-----END CERTIFICATE-----'");
      const der = decodeBase64Strict(body.join(''));
      if (der === undefined) throw badPem(`the block starting on line ${beginLine} is not valid base64`);
      const certs = splitDer(der, `${what}: PEM block on line ${beginLine}`);
      if (certs.length !== 1)
        throw badPem(`the block starting on line ${beginLine} must hold exactly one certificate`);
      if (out.length >= MAX_BUNDLE_CERTIFICATES) {
        throw new IdentityError(
          'bundle-x509-too-many-certificates',
          `${what}: more than ${MAX_BUNDLE_CERTIFICATES} certificates in one bundle`,
        );
      }
      out.push(certs[0]!);
      body = undefined;
      continue;
    }
    if (line.includes(':')) throw badPem('PEM headers (encrypted or annotated blocks) are not supported');
    body.push(line);
  }
  if (body !== undefined) {
    throw new IdentityError(
      'bundle-x509-bad-pem',
      `${what}: the PEM block starting on line ${beginLine} has no END line`,
    );
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a JWKS / SPIFFE bundle document given as JSON text, UTF-8 bytes or an already parsed
 * object, with the size bound and duplicate-member detection of the strict parser. An object is
 * serialised with `JSON.stringify` first, so getters, `toJSON` and prototypes behave as JSON would.
 *
 * @param input - the document.
 * @param what - names the document in error messages.
 */
export function readJsonDocument(input: unknown, what: string): JsonObject {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_BUNDLE_JSON_BYTES) tooLarge(what, input.byteLength);
    try {
      text = utf8.decode(input);
    } catch (err) {
      throw new IdentityError('bundle-json-syntax', `${what} is not valid UTF-8`, { cause: err });
    }
  } else if (typeof input === 'object' && input !== null) {
    let s: string | undefined;
    try {
      s = JSON.stringify(input);
    } catch (err) {
      throw new IdentityError('bundle-invalid-argument', `${what} object cannot be serialised as JSON`, {
        cause: err,
      });
    }
    if (typeof s !== 'string') {
      throw new IdentityError('bundle-invalid-argument', `${what} object cannot be serialised as JSON`);
    }
    text = s;
  } else {
    throw new IdentityError(
      'bundle-invalid-argument',
      `${what} must be JSON text, UTF-8 bytes or an object, got ${typeName(input)}`,
    );
  }
  // A UTF-16 code unit takes 1 to 3 UTF-8 bytes: check the cheap bound before counting.
  if (text.length > MAX_BUNDLE_JSON_BYTES) tooLarge(what, text.length);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_BUNDLE_JSON_BYTES) tooLarge(what, bytes);
  const doc = parseStrictJson(text, { codePrefix: 'bundle', maxDepth: 32 });
  if (!isJsonObject(doc)) {
    throw new IdentityError('bundle-jwks-not-object', `${what} must be a JSON object`);
  }
  return doc;
}

function tooLarge(what: string, size: number): never {
  throw new IdentityError(
    'bundle-json-too-large',
    `${what} is larger than ${MAX_BUNDLE_JSON_BYTES} bytes (at least ${size})`,
    { details: { size } },
  );
}

/**
 * Returns the `keys` array of a JWK Set, enforcing its presence (SPIFFE Trust Domain and Bundle
 * §4.1.3) and the key count bound.
 */
export function readKeys(doc: JsonObject, what: string): readonly unknown[] {
  if (!Object.hasOwn(doc, 'keys')) {
    throw new IdentityError(
      'bundle-jwks-missing-keys',
      `${what} has no "keys" member (required for a JWK Set)`,
    );
  }
  const keys = doc['keys'];
  if (!Array.isArray(keys)) {
    throw new IdentityError(
      'bundle-jwks-missing-keys',
      `${what}: "keys" must be an array, got ${typeName(keys)}`,
    );
  }
  if (keys.length > MAX_BUNDLE_KEYS) {
    throw new IdentityError(
      'bundle-jwks-too-many-keys',
      `${what} has ${keys.length} keys, more than ${MAX_BUNDLE_KEYS}`,
    );
  }
  return keys;
}

/** An entry of a JWK Set that was ignored, and why. */
export interface SkippedBundleKey {
  /** Position of the entry in the document's `keys` array. */
  readonly index: number;
  /** Why the entry was ignored, e.g. `unsupported key type "OKP"`. */
  readonly reason: string;
}
