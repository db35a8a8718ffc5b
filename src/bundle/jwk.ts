// JWK checks shared by JwtBundle and SpiffeBundle. Not exported from the package.

import { createPublicKey, type JsonWebKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { IdentityError } from '../errors/index.js';
import type { JsonObject, JsonValue } from '../internal/strict-json.js';
import { decodeBase64UrlStrict, quote, typeName } from './common.js';

/** Smallest RSA modulus accepted for a JWT authority, in bits. */
export const MIN_RSA_BITS = 2048;
/** Largest RSA modulus accepted for a JWT authority, in bits (bounds verification cost). */
export const MAX_RSA_BITS = 8192;

/** Members that only private or symmetric JWKs carry (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
/** Key types whose private members we recognise. */
const KNOWN_KTY = new Set(['EC', 'RSA', 'OKP', 'oct']);

/** Curve name → coordinate length in bytes and the one ES algorithm the curve goes with. */
const EC_CURVES: ReadonlyMap<string, { bytes: number; alg: string }> = new Map([
  ['P-256', { bytes: 32, alg: 'ES256' }],
  ['P-384', { bytes: 48, alg: 'ES384' }],
  ['P-521', { bytes: 66, alg: 'ES512' }],
]);
const RSA_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);

/** A validated JWT authority: its public JWK (without `use`) and the key imported once. */
export interface JwtAuthority {
  readonly kid: string;
  /** Public members only, frozen; no `use`, so it can be handed to jose's `importJWK`. */
  readonly jwk: Readonly<JsonWebKey>;
  readonly key: KeyObject;
  /** SPKI DER (base64) plus `alg`, for equality. */
  readonly fingerprint: string;
}

/** Result of checking a JWT authority: usable, or to be ignored (with why). */
export type JwtAuthorityResult =
  | { readonly ok: true; readonly authority: JwtAuthority }
  | { readonly ok: false; readonly reason: string };

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * Rejects a key that carries private or symmetric key material. Applies to every entry of a
 * bundle whose `kty` we know, used or not: a bundle that leaks a private key is not trusted.
 */
export function rejectPrivateMembers(key: JsonObject, where: string): void {
  const kty = key['kty'];
  if (typeof kty !== 'string' || !KNOWN_KTY.has(kty)) return;
  for (const m of PRIVATE_MEMBERS) {
    if (Object.hasOwn(key, m)) {
      throw new IdentityError(
        'bundle-jwk-private-key',
        `${where} carries private or secret key material (member "${m}"): a bundle must hold public keys only`,
      );
    }
  }
}

function badKey(where: string, rule: string, cause?: unknown): never {
  throw new IdentityError(
    'bundle-jwk-bad-key',
    `${where}: ${rule}`,
    cause === undefined ? undefined : { cause },
  );
}

function coordinate(key: JsonObject, member: string, where: string, bytes?: number): string {
  const v = key[member];
  if (typeof v !== 'string')
    badKey(where, `member "${member}" must be a base64url string, got ${typeName(v)}`);
  const decoded = decodeBase64UrlStrict(v);
  if (decoded === undefined) badKey(where, `member "${member}" is not canonical unpadded base64url`);
  if (bytes !== undefined && decoded.length !== bytes) {
    badKey(where, `member "${member}" must be ${bytes} bytes for this curve, got ${decoded.length}`);
  }
  return v;
}

/**
 * Checks one JWT authority (a JWK whose `use` the caller already accepted) and imports it.
 *
 * Unknown or unusable key types, curves and algorithms are reported as `ok: false` (the key is
 * ignored, SPIFFE Trust Domain and Bundle §4.2.1). A missing `kid`, malformed key members, an RSA
 * key under 2048 or over 8192 bits, and private members are errors for the whole bundle.
 *
 * @param key - the JWK object.
 * @param where - names the key in messages, e.g. `JWT bundle key 2`.
 */
export function checkJwtAuthority(key: JsonObject, where: string): JwtAuthorityResult {
  rejectPrivateMembers(key, where);
  const kty = key['kty'];
  if (kty !== 'EC' && kty !== 'RSA') {
    return {
      ok: false,
      reason: typeof kty === 'string' ? `unsupported key type ${quote(kty)}` : 'missing key type (kty)',
    };
  }
  const kid = key['kid'];
  if (typeof kid !== 'string' || kid.length === 0) {
    throw new IdentityError(
      'bundle-jwt-missing-kid',
      `${where}: a JWT authority must have a non-empty "kid"`,
    );
  }
  const alg = key['alg'];
  if (alg !== undefined && typeof alg !== 'string') {
    return { ok: false, reason: `"alg" must be a string, got ${typeName(alg)}` };
  }
  let jwk: JsonWebKey;
  if (kty === 'EC') {
    const crv = str(key['crv']);
    const curve = crv === undefined ? undefined : EC_CURVES.get(crv);
    if (crv === undefined || curve === undefined) {
      return { ok: false, reason: `unsupported EC curve ${crv === undefined ? '(missing)' : quote(crv)}` };
    }
    if (alg !== undefined && alg !== curve.alg) {
      return { ok: false, reason: `algorithm ${quote(alg)} does not fit curve ${crv}` };
    }
    jwk = {
      kty,
      kid,
      crv,
      x: coordinate(key, 'x', where, curve.bytes),
      y: coordinate(key, 'y', where, curve.bytes),
    };
  } else {
    if (alg !== undefined && !RSA_ALGS.has(alg)) {
      return { ok: false, reason: `algorithm ${quote(alg)} is not allowed for RSA JWT-SVID keys` };
    }
    jwk = { kty, kid, n: coordinate(key, 'n', where), e: coordinate(key, 'e', where) };
  }
  if (alg !== undefined) jwk['alg'] = alg;
  const key0 = importJwk(jwk, where);
  if (kty === 'RSA') {
    const bits = key0.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new IdentityError(
        'bundle-jwk-weak-key',
        `${where}: RSA key of ${bits} bits, at least ${MIN_RSA_BITS} are required`,
        { details: { bits } },
      );
    }
    if (bits > MAX_RSA_BITS) {
      throw new IdentityError(
        'bundle-jwk-key-too-large',
        `${where}: RSA key of ${bits} bits, at most ${MAX_RSA_BITS} are accepted`,
        { details: { bits } },
      );
    }
  }
  Object.freeze(jwk);
  return { ok: true, authority: { kid, jwk, key: key0, fingerprint: `${spkiOf(key0)}|${alg ?? ''}` } };
}

/** Imports public JWK members with node:crypto. */
export function importJwk(jwk: JsonWebKey, where: string): KeyObject {
  const { kid: _kid, alg: _alg, use: _use, ...material } = jwk;
  try {
    return createPublicKey({ key: material, format: 'jwk' });
  } catch (err) {
    return badKey(where, 'node:crypto cannot import the key (not a valid public key)', err);
  }
}

/** The SPKI DER of a public key, base64: a canonical form for comparing keys. */
export function spkiOf(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** Maps a certificate's key type to the JWK `kty`, or `undefined` when JWK has none for it. */
export function ktyOfCertificate(cert: X509Certificate): string | undefined {
  switch (cert.publicKey.asymmetricKeyType) {
    case 'ec':
      return 'EC';
    case 'rsa':
    case 'rsa-pss':
      return 'RSA';
    case 'ed25519':
    case 'ed448':
    case 'x25519':
    case 'x448':
      return 'OKP';
    default:
      return undefined;
  }
}
