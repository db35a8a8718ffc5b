import type { JsonWebKey, KeyObject } from 'node:crypto';
import { IdentityError } from '../errors/index.js';
import { isJsonObject, type JsonObject } from '../internal/strict-json.js';
import type { TrustDomain } from '../spiffeid/index.js';
import {
  MAX_BUNDLE_KEYS,
  quote,
  readJsonDocument,
  readKeys,
  type SkippedBundleKey,
  toTrustDomain,
  typeName,
} from './common.js';
import { checkJwtAuthority, type JwtAuthority, rejectPrivateMembers } from './jwk.js';

const constructKey: unique symbol = Symbol('JwtBundle.construct');

/** A JWK Set as written by {@link JwtBundle.toJwks}. */
export interface JwkSet {
  /** The public keys, each with `kid` and `use: "jwt-svid"`. */
  keys: JsonWebKey[];
}

/**
 * Adds a checked authority to `into`, rejecting a repeated `kid` (which key would verify a token
 * naming it would be ambiguous).
 *
 * @internal
 */
export function addJwtAuthority(
  into: Map<string, JwtAuthority>,
  authority: JwtAuthority,
  where: string,
): void {
  if (into.has(authority.kid)) {
    throw new IdentityError(
      'bundle-jwt-duplicate-kid',
      `${where}: key ID ${quote(authority.kid)} appears more than once; key IDs must be unique`,
    );
  }
  into.set(authority.kid, authority);
}

/**
 * Builds a JwtBundle from authorities already checked by the SPIFFE bundle parser.
 *
 * @internal
 */
export let makeJwtBundle: (
  td: TrustDomain,
  authorities: ReadonlyMap<string, JwtAuthority>,
  skipped: readonly SkippedBundleKey[],
) => JwtBundle;

/**
 * The JWT authorities (public keys) of one trust domain: the keys that JWT-SVIDs of that trust
 * domain must be signed with, looked up by key ID.
 *
 * Every key is imported with node:crypto once, when the bundle is built; verifications reuse the
 * cached `KeyObject` ({@link JwtBundle.getPublicKey}). Bundles are immutable.
 *
 * Accepted keys: `kty` `EC` (P-256, P-384, P-521) or `RSA` (2048 to 8192 bits), with a non-empty
 * `kid`. Keys of other types, curves or algorithms are ignored and listed in
 * {@link JwtBundle.skippedKeys}.
 *
 * @example
 * ```ts
 * const bundle = JwtBundle.parse('example.org', jwksJson);
 * const key = bundle.getPublicKey(kidFromTokenHeader); // KeyObject | undefined
 * ```
 */
export class JwtBundle {
  /** The trust domain whose authorities these are. */
  readonly trustDomain: TrustDomain;
  /** Number of authorities. */
  readonly size: number;
  /** Entries of the parsed document that were ignored, with the reason (frozen). */
  readonly skippedKeys: readonly SkippedBundleKey[];
  readonly #authorities: ReadonlyMap<string, JwtAuthority>;

  /** @internal Use {@link JwtBundle.parse} or {@link JwtBundle.fromAuthorities}. */
  private constructor(
    key: typeof constructKey,
    td: TrustDomain,
    authorities: ReadonlyMap<string, JwtAuthority>,
    skipped: readonly SkippedBundleKey[],
  ) {
    if (key !== constructKey) {
      throw new IdentityError(
        'bundle-private-constructor',
        'use JwtBundle.parse() or JwtBundle.fromAuthorities()',
      );
    }
    this.trustDomain = td;
    this.#authorities = new Map(authorities);
    this.size = this.#authorities.size;
    this.skippedKeys = Object.freeze(skipped.map((s) => Object.freeze({ ...s })));
    Object.freeze(this);
  }

  static {
    makeJwtBundle = (td, authorities, skipped) => new JwtBundle(constructKey, td, authorities, skipped);
  }

  /**
   * Parses a JWK Set (the Workload API `FetchJWTBundles` format).
   *
   * Rules: the document is a JSON object with a `keys` array (duplicate member names anywhere
   * are an error); a key counts when its `use` is `jwt-svid` or absent, other `use` values are
   * ignored; a counted key needs a non-empty, unique `kid`; unknown key types, curves and
   * algorithms are ignored (that key only); malformed key members, RSA keys under 2048 bits and
   * any private key material reject the whole bundle. At most 1 MiB and 1000 keys.
   *
   * @param td - the trust domain the keys belong to.
   * @param jwks - JSON text, UTF-8 bytes, or an already parsed object (serialised and re-read
   *   strictly, so duplicate names cannot be detected in that case).
   * @throws IdentityError `bundle-json-*`, `bundle-jwks-*`, `bundle-jwt-*` or `bundle-jwk-*`.
   */
  static parse(td: TrustDomain | string, jwks: string | Uint8Array | object): JwtBundle {
    const trustDomain = toTrustDomain(td);
    const what = `JWT bundle of ${trustDomain.name}`;
    const keys = readKeys(readJsonDocument(jwks, what), what);
    const authorities = new Map<string, JwtAuthority>();
    const skipped: SkippedBundleKey[] = [];
    keys.forEach((entry, index) => {
      const where = `${what}: key ${index}`;
      const key = requireKeyObject(entry, where);
      rejectPrivateMembers(key, where);
      const use = key['use'];
      if (use !== undefined && use !== 'jwt-svid') {
        skipped.push({
          index,
          reason: typeof use === 'string' ? `use ${quote(use)} is not jwt-svid` : 'use is not a string',
        });
        return;
      }
      const r = checkJwtAuthority(key, where);
      if (!r.ok) {
        skipped.push({ index, reason: r.reason });
        return;
      }
      addJwtAuthority(authorities, r.authority, what);
    });
    return new JwtBundle(constructKey, trustDomain, authorities, skipped);
  }

  /**
   * Builds a bundle from JWKs keyed by key ID. Stricter than {@link JwtBundle.parse}: a key that
   * parse would ignore (unsupported type, curve or algorithm, or a `use` other than `jwt-svid`)
   * is an error here, and a `kid` inside a JWK must equal its record key.
   *
   * @param td - the trust domain the keys belong to.
   * @param authorities - public JWKs by key ID (at most 1000); an empty record is an empty bundle.
   * @throws IdentityError `bundle-jwk-unsupported`, `bundle-jwt-kid-mismatch`,
   *   `bundle-invalid-argument`, or the key errors of {@link JwtBundle.parse}.
   */
  static fromAuthorities(
    td: TrustDomain | string,
    authorities: Readonly<Record<string, JsonWebKey>>,
  ): JwtBundle {
    const trustDomain = toTrustDomain(td);
    const what = `JWT bundle of ${trustDomain.name}`;
    if (typeof authorities !== 'object' || authorities === null || Array.isArray(authorities)) {
      throw new IdentityError(
        'bundle-invalid-argument',
        `${what}: authorities must be a record of JWKs by key ID`,
      );
    }
    const entries = Object.entries(authorities);
    if (entries.length > MAX_BUNDLE_KEYS) {
      throw new IdentityError(
        'bundle-jwks-too-many-keys',
        `${what} has ${entries.length} keys, more than ${MAX_BUNDLE_KEYS}`,
      );
    }
    const map = new Map<string, JwtAuthority>();
    for (const [kid, jwk] of entries) {
      const where = `${what}: key ${quote(kid)}`;
      if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
        throw new IdentityError(
          'bundle-invalid-argument',
          `${where} must be a JWK object, got ${typeName(jwk)}`,
        );
      }
      // Re-read through the strict JSON path so that only JSON data (no getters, no prototypes) is seen.
      const key = readJsonDocument(jwk, where);
      if (key['kid'] !== undefined && key['kid'] !== kid) {
        throw new IdentityError(
          'bundle-jwt-kid-mismatch',
          `${where}: the JWK's "kid" differs from its record key`,
        );
      }
      if (key['use'] !== undefined && key['use'] !== 'jwt-svid') {
        throw new IdentityError('bundle-jwk-unsupported', `${where}: "use" must be "jwt-svid" or absent`);
      }
      key['kid'] = kid;
      const r = checkJwtAuthority(key, where);
      if (!r.ok) throw new IdentityError('bundle-jwk-unsupported', `${where}: ${r.reason}`);
      addJwtAuthority(map, r.authority, what);
    }
    return new JwtBundle(constructKey, trustDomain, map, []);
  }

  /**
   * Returns the public JWK with key ID `kid` (frozen; without `use`, so that jose's `importJWK`
   * accepts it), or `undefined`.
   *
   * @param kid - the key ID, e.g. from a JWT header.
   */
  findAuthority(kid: string): JsonWebKey | undefined {
    return this.#authorities.get(kid)?.jwk;
  }

  /**
   * Returns the imported public key with key ID `kid`, or `undefined`. The same `KeyObject` is
   * returned on every call: keys are imported once, when the bundle is built.
   *
   * @param kid - the key ID, e.g. from a JWT header.
   */
  getPublicKey(kid: string): KeyObject | undefined {
    return this.#authorities.get(kid)?.key;
  }

  /** Returns the key IDs, in document order. */
  keyIds(): string[] {
    return [...this.#authorities.keys()];
  }

  /** Returns the bundle as a JWK Set: `{"keys":[...]}`, each key with `use: "jwt-svid"`. */
  marshal(): string {
    return JSON.stringify(this.toJwks());
  }

  /** Returns the bundle as a JWK Set object (what {@link JwtBundle.marshal} serialises); a fresh copy. */
  toJwks(): JwkSet {
    return {
      keys: [...this.#authorities.values()].map(({ jwk }) => {
        const { kty, kid, ...rest } = jwk;
        return { kty, kid, use: 'jwt-svid', ...rest } as JsonWebKey;
      }),
    };
  }

  /**
   * Tells whether `o` is a bundle of the same trust domain with the same key IDs, each naming
   * the same public key and `alg` (order does not matter).
   *
   * @param o - another bundle; anything else compares unequal.
   */
  equals(o: JwtBundle): boolean {
    if (!(o instanceof JwtBundle) || !o.trustDomain.equals(this.trustDomain)) return false;
    if (o.#authorities.size !== this.#authorities.size) return false;
    for (const [kid, a] of this.#authorities) {
      if (o.#authorities.get(kid)?.fingerprint !== a.fingerprint) return false;
    }
    return true;
  }
}

/** Checks that an entry of `keys` is a JSON object. */
export function requireKeyObject(entry: unknown, where: string): JsonObject {
  if (!isJsonObject(entry as never)) {
    throw new IdentityError(
      'bundle-jwk-not-object',
      `${where} must be a JSON object, got ${typeName(entry)}`,
    );
  }
  return entry as JsonObject;
}
