import type { JsonWebKey, X509Certificate } from 'node:crypto';
import { IdentityError } from '../errors/index.js';
import { JsonNumber, type JsonObject, type JsonValue } from '../internal/strict-json.js';
import type { TrustDomain } from '../spiffeid/index.js';
import {
  decodeBase64Strict,
  parseCertificate,
  quote,
  readJsonDocument,
  readKeys,
  type SkippedBundleKey,
  splitDer,
  toTrustDomain,
  typeName,
} from './common.js';
import {
  checkJwtAuthority,
  importJwk,
  type JwtAuthority,
  ktyOfCertificate,
  rejectPrivateMembers,
  spkiOf,
} from './jwk.js';
import { addJwtAuthority, JwtBundle, makeJwtBundle, requireKeyObject } from './jwt-bundle.js';
import { X509Bundle } from './x509-bundle.js';

const constructKey: unique symbol = Symbol('SpiffeBundle.construct');

/** Key types that may carry an `x509-svid` authority. */
const X509_KTY = new Set(['EC', 'RSA', 'OKP']);
/** Members that describe the public key itself (as opposed to metadata such as `x5c`). */
const KEY_PARAMS = ['crv', 'x', 'y', 'n', 'e'] as const;

/** Parts accepted by {@link SpiffeBundle.fromParts}. */
export interface SpiffeBundleParts {
  /** X.509 authorities; must belong to the same trust domain. Default: none. */
  x509?: X509Bundle | undefined;
  /** JWT authorities; must belong to the same trust domain. Default: none. */
  jwt?: JwtBundle | undefined;
  /** `spiffe_refresh_hint` in seconds: a non-negative safe integer. */
  refreshHint?: number | undefined;
  /** `spiffe_sequence`: a non-negative safe integer. */
  sequenceNumber?: number | undefined;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Reads an optional non-negative integer member written as a plain integer literal. */
function readUint(doc: JsonObject, member: string, code: string, what: string): number | undefined {
  if (!Object.hasOwn(doc, member)) return undefined;
  const v: JsonValue | undefined = doc[member];
  const bad = (got: string): never => {
    throw new IdentityError(
      code,
      `${what}: "${member}" must be an integer from 0 to 2^53-1 written without sign, fraction or exponent, got ${got}`,
    );
  };
  if (!(v instanceof JsonNumber)) return bad(typeName(v));
  if (!/^(?:0|[1-9][0-9]*)$/.test(v.text) || v.text.length > 16 || BigInt(v.text) > MAX_SAFE) {
    return bad(quote(v.text));
  }
  return Number(v.text);
}

function checkUint(value: unknown, member: string, code: string, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new IdentityError(code, `${what}: ${member} must be an integer from 0 to 2^53-1`);
  }
  return value;
}

/**
 * Reads the certificate of an `x509-svid` entry. Returns `undefined` when the entry must be
 * ignored (SPIFFE Trust Domain and Bundle §4.2.1; X509-SVID §6.2: missing or empty `x5c`).
 */
function readX509Entry(
  key: JsonObject,
  where: string,
): { ok: true; cert: X509Certificate } | { ok: false; reason: string } {
  const kty = key['kty'];
  if (typeof kty !== 'string' || !X509_KTY.has(kty)) {
    return {
      ok: false,
      reason: typeof kty === 'string' ? `unsupported key type ${quote(kty)}` : 'missing key type (kty)',
    };
  }
  const x5c = key['x5c'];
  if (!Array.isArray(x5c) || x5c.length === 0) return { ok: false, reason: 'x509-svid entry without x5c' };
  const first = x5c[0];
  if (typeof first !== 'string') {
    throw new IdentityError(
      'bundle-spiffe-bad-x5c',
      `${where}: x5c[0] must be a base64 string, got ${typeName(first)}`,
    );
  }
  const der = decodeBase64Strict(first);
  if (der === undefined) {
    throw new IdentityError(
      'bundle-spiffe-bad-x5c',
      `${where}: x5c[0] is not canonical padded base64 (RFC 7517 §4.7)`,
    );
  }
  const ders = splitDer(der, `${where}: x5c[0]`);
  if (ders.length !== 1) {
    throw new IdentityError('bundle-spiffe-bad-x5c', `${where}: x5c[0] must be exactly one DER certificate`);
  }
  const cert = parseCertificate(ders[0]!, `${where}: x5c[0]`);
  // The JWK members, when present, must describe the certificate's key.
  if (ktyOfCertificate(cert) !== kty) {
    throw new IdentityError(
      'bundle-spiffe-x5c-key-mismatch',
      `${where}: kty ${quote(kty)} does not match the key type of the x5c certificate`,
    );
  }
  if (KEY_PARAMS.some((m) => Object.hasOwn(key, m))) {
    const material: JsonWebKey = { kty };
    for (const m of KEY_PARAMS) {
      const v = key[m];
      if (v === undefined) continue;
      if (typeof v !== 'string') {
        throw new IdentityError(
          'bundle-jwk-bad-key',
          `${where}: member "${m}" must be a string, got ${typeName(v)}`,
        );
      }
      material[m] = v;
    }
    if (spkiOf(importJwk(material, where)) !== spkiOf(cert.publicKey)) {
      throw new IdentityError(
        'bundle-spiffe-x5c-key-mismatch',
        `${where}: the JWK key members do not match the public key of the x5c certificate`,
      );
    }
  }
  return { ok: true, cert };
}

/**
 * A SPIFFE bundle: the JWK Set format of SPIFFE federation (`spire-server bundle show -format
 * spiffe`), holding both the X.509 and the JWT authorities of one trust domain plus the
 * `spiffe_sequence` and `spiffe_refresh_hint` metadata.
 *
 * @example
 * ```ts
 * const bundle = SpiffeBundle.parse('example.org', json);
 * bundle.x509Bundle().authorities;
 * bundle.jwtBundle().keyIds();
 * bundle.refreshHint; // seconds, or undefined
 * ```
 */
export class SpiffeBundle {
  /** The trust domain the bundle belongs to. */
  readonly trustDomain: TrustDomain;
  /** `spiffe_refresh_hint`: how often to poll for updates, in seconds (absent when not set). */
  declare readonly refreshHint?: number;
  /** `spiffe_sequence`: increases with every change of the bundle (absent when not set). */
  declare readonly sequenceNumber?: number;
  /** Entries of the parsed document that were ignored, with the reason (frozen). */
  readonly skippedKeys: readonly SkippedBundleKey[];
  readonly #x509: X509Bundle;
  readonly #jwt: JwtBundle;

  /** @internal Use {@link SpiffeBundle.parse} or {@link SpiffeBundle.fromParts}. */
  private constructor(
    key: typeof constructKey,
    td: TrustDomain,
    x509: X509Bundle,
    jwt: JwtBundle,
    refreshHint: number | undefined,
    sequenceNumber: number | undefined,
    skipped: readonly SkippedBundleKey[],
  ) {
    if (key !== constructKey) {
      throw new IdentityError(
        'bundle-private-constructor',
        'use SpiffeBundle.parse() or SpiffeBundle.fromParts()',
      );
    }
    this.trustDomain = td;
    this.#x509 = x509;
    this.#jwt = jwt;
    if (refreshHint !== undefined) this.refreshHint = refreshHint;
    if (sequenceNumber !== undefined) this.sequenceNumber = sequenceNumber;
    this.skippedKeys = Object.freeze(skipped.map((s) => Object.freeze({ ...s })));
    Object.freeze(this);
  }

  /**
   * Parses a SPIFFE bundle document.
   *
   * Rules (SPIFFE Trust Domain and Bundle §4, X509-SVID §6, JWT-SVID §6): a JSON object without
   * duplicate member names, with a `keys` array; unknown members are ignored. Each key needs a
   * `use`: `x509-svid` entries give the first certificate of `x5c` (entries with missing or
   * empty `x5c` are ignored; JWK key members, when present, must match the certificate);
   * `jwt-svid` entries follow the {@link JwtBundle.parse} rules; a missing or other `use`, or an
   * unknown `kty`, ignores that key. `spiffe_sequence` and `spiffe_refresh_hint` are optional
   * integers from 0 to 2^53-1, written without fraction or exponent. Private key material
   * anywhere rejects the bundle. At most 1 MiB and 1000 keys.
   *
   * @param td - the trust domain the bundle belongs to (never inferred from the document).
   * @param json - JSON text, UTF-8 bytes, or an already parsed object.
   * @throws IdentityError `bundle-json-*`, `bundle-jwks-*`, `bundle-jwk-*`, `bundle-jwt-*`,
   *   `bundle-spiffe-*` or `bundle-x509-*`.
   */
  static parse(td: TrustDomain | string, json: string | Uint8Array | object): SpiffeBundle {
    const trustDomain = toTrustDomain(td);
    const what = `SPIFFE bundle of ${trustDomain.name}`;
    const doc = readJsonDocument(json, what);
    const keys = readKeys(doc, what);
    const certs: X509Certificate[] = [];
    const authorities = new Map<string, JwtAuthority>();
    const skipped: SkippedBundleKey[] = [];
    keys.forEach((entry, index) => {
      const where = `${what}: key ${index}`;
      const key = requireKeyObject(entry, where);
      rejectPrivateMembers(key, where);
      const use = key['use'];
      if (use === 'x509-svid') {
        const r = readX509Entry(key, where);
        if (r.ok) certs.push(r.cert);
        else skipped.push({ index, reason: r.reason });
      } else if (use === 'jwt-svid') {
        const r = checkJwtAuthority(key, where);
        if (r.ok) addJwtAuthority(authorities, r.authority, what);
        else skipped.push({ index, reason: r.reason });
      } else {
        skipped.push({
          index,
          reason:
            use === undefined
              ? 'missing use'
              : typeof use === 'string'
                ? `unknown use ${quote(use)}`
                : 'use is not a string',
        });
      }
    });
    const sequence = readUint(doc, 'spiffe_sequence', 'bundle-spiffe-bad-sequence', what);
    const hint = readUint(doc, 'spiffe_refresh_hint', 'bundle-spiffe-bad-refresh-hint', what);
    return new SpiffeBundle(
      constructKey,
      trustDomain,
      X509Bundle.fromAuthorities(trustDomain, certs),
      makeJwtBundle(trustDomain, authorities, []),
      hint,
      sequence,
      skipped,
    );
  }

  /**
   * Builds a SPIFFE bundle from an X.509 bundle, a JWT bundle and the metadata.
   *
   * @param td - the trust domain; both bundles must belong to it.
   * @param parts - the bundles (missing ones are empty) and the metadata.
   * @throws IdentityError `bundle-trust-domain-mismatch`, `bundle-spiffe-bad-refresh-hint`,
   *   `bundle-spiffe-bad-sequence`, `bundle-invalid-argument`.
   */
  static fromParts(td: TrustDomain | string, parts: SpiffeBundleParts): SpiffeBundle {
    const trustDomain = toTrustDomain(td);
    const what = `SPIFFE bundle of ${trustDomain.name}`;
    if (typeof parts !== 'object' || parts === null) {
      throw new IdentityError('bundle-invalid-argument', `${what}: parts must be an object`);
    }
    const { x509, jwt } = parts;
    if (x509 !== undefined && !(x509 instanceof X509Bundle)) {
      throw new IdentityError('bundle-invalid-argument', `${what}: parts.x509 must be an X509Bundle`);
    }
    if (jwt !== undefined && !(jwt instanceof JwtBundle)) {
      throw new IdentityError('bundle-invalid-argument', `${what}: parts.jwt must be a JwtBundle`);
    }
    for (const b of [x509, jwt]) {
      if (b !== undefined && !b.trustDomain.equals(trustDomain)) {
        throw new IdentityError(
          'bundle-trust-domain-mismatch',
          `${what}: a bundle of trust domain ${b.trustDomain.name} cannot be part of it`,
        );
      }
    }
    return new SpiffeBundle(
      constructKey,
      trustDomain,
      x509 ?? X509Bundle.fromAuthorities(trustDomain, []),
      jwt ?? JwtBundle.fromAuthorities(trustDomain, {}),
      checkUint(parts.refreshHint, 'refreshHint', 'bundle-spiffe-bad-refresh-hint', what),
      checkUint(parts.sequenceNumber, 'sequenceNumber', 'bundle-spiffe-bad-sequence', what),
      [],
    );
  }

  /** Returns the X.509 authorities (possibly an empty bundle). */
  x509Bundle(): X509Bundle {
    return this.#x509;
  }

  /** Returns the JWT authorities (possibly an empty bundle). */
  jwtBundle(): JwtBundle {
    return this.#jwt;
  }

  /**
   * Returns the bundle as SPIFFE bundle JSON, in the layout SPIRE writes: `x509-svid` entries
   * (key members plus `x5c`), then `jwt-svid` entries, then `spiffe_refresh_hint` and
   * `spiffe_sequence` when set.
   *
   * An authority whose key has no JWK members (RSA-PSS) is written with `kty` and `x5c` only.
   *
   * @throws IdentityError `bundle-spiffe-unsupported-authority-key` when an X.509 authority's key
   *   has no JWK key type at all (for example DSA).
   */
  marshal(): string {
    const keys: JsonWebKey[] = [];
    for (const cert of this.#x509.authorities) {
      const entry: Record<string, unknown> = { use: 'x509-svid' };
      let jwk: JsonWebKey | undefined;
      try {
        jwk = cert.publicKey.export({ format: 'jwk' });
      } catch {
        // No JWK form (RSA-PSS, DSA): the certificate alone carries the key.
      }
      const kty = jwk?.kty ?? ktyOfCertificate(cert);
      if (kty === undefined) {
        throw new IdentityError(
          'bundle-spiffe-unsupported-authority-key',
          `SPIFFE bundle of ${this.trustDomain.name}: an X.509 authority's ${cert.publicKey.asymmetricKeyType} key has no JWK key type`,
        );
      }
      entry['kty'] = kty;
      for (const m of KEY_PARAMS) if (jwk?.[m] !== undefined) entry[m] = jwk[m];
      entry['x5c'] = [cert.raw.toString('base64')];
      keys.push(entry as JsonWebKey);
    }
    for (const k of this.#jwt.toJwks().keys) {
      const { kty, kid, use, ...rest } = k;
      keys.push({ use, kty, kid, ...rest } as JsonWebKey);
    }
    const doc: Record<string, unknown> = { keys };
    if (this.refreshHint !== undefined) doc['spiffe_refresh_hint'] = this.refreshHint;
    if (this.sequenceNumber !== undefined) doc['spiffe_sequence'] = this.sequenceNumber;
    return JSON.stringify(doc, null, 4);
  }

  /**
   * Tells whether `o` holds the same trust domain, authorities, refresh hint and sequence number.
   *
   * @param o - another bundle; anything else compares unequal.
   */
  equals(o: SpiffeBundle): boolean {
    return (
      o instanceof SpiffeBundle &&
      o.trustDomain.equals(this.trustDomain) &&
      o.refreshHint === this.refreshHint &&
      o.sequenceNumber === this.sequenceNumber &&
      o.#x509.equals(this.#x509) &&
      o.#jwt.equals(this.#jwt)
    );
  }
}
