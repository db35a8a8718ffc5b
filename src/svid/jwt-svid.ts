import { constants, type KeyObject, verify } from 'node:crypto';
import type { BundleSet, JwtBundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import { SpiffeId, type TrustDomain } from '../spiffeid/index.js';
import { decodeBase64url, decodeJsonObject, deepFreeze } from './compact.js';
import { SVID_LIMITS } from './limits.js';
import { checkHint, quote } from './options.js';

/** The JWS algorithms a JWT-SVID may use (JWT-SVID §2.1). */
export type JwtSvidAlgorithm =
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'PS256'
  | 'PS384'
  | 'PS512';

interface AlgSpec {
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly family: 'rsa' | 'pss' | 'ec';
  /** EC: node's curve name. */
  readonly curve?: string;
  /** EC: IEEE P1363 signature length (r || s). */
  readonly ecSigBytes?: number;
  /** PSS: salt length in bytes (= hash length, RFC 7518 §3.5). */
  readonly saltLength?: number;
}

const ALGORITHMS: Readonly<Record<JwtSvidAlgorithm, AlgSpec>> = {
  RS256: { hash: 'sha256', family: 'rsa' },
  RS384: { hash: 'sha384', family: 'rsa' },
  RS512: { hash: 'sha512', family: 'rsa' },
  PS256: { hash: 'sha256', family: 'pss', saltLength: 32 },
  PS384: { hash: 'sha384', family: 'pss', saltLength: 48 },
  PS512: { hash: 'sha512', family: 'pss', saltLength: 64 },
  ES256: { hash: 'sha256', family: 'ec', curve: 'prime256v1', ecSigBytes: 64 },
  ES384: { hash: 'sha384', family: 'ec', curve: 'secp384r1', ecSigBytes: 96 },
  ES512: { hash: 'sha512', family: 'ec', curve: 'secp521r1', ecSigBytes: 132 },
};

/** The algorithms accepted by {@link validateJwtSvid}, in no particular order. */
export const JWT_SVID_ALGORITHMS: readonly JwtSvidAlgorithm[] = Object.freeze(
  Object.keys(ALGORITHMS) as JwtSvidAlgorithm[],
);

/** Options of {@link validateJwtSvid}. */
export interface ValidateJwtSvidOptions {
  /** The clock; defaults to the current time. */
  now?: Date | undefined;
  /** Leeway for `exp`, `nbf` and `iat`, in seconds: 0 to 60, default 5. */
  clockToleranceSec?: number | undefined;
  /** When set, `iat` is required and the token may be at most this many seconds old. */
  maxTokenAgeSec?: number | undefined;
  /**
   * When true, the token's `aud` must hold exactly one value (JWT-SVID §7.2 recommends single
   * audiences: a token for `[a, b]` can be replayed by `a` to `b`).
   */
  requireSingleAudience?: boolean | undefined;
}

/** Options of {@link parseJwtSvidInsecure}. */
export interface ParseJwtSvidOptions {
  /** Operator-chosen label from the Workload API (at most 1024 bytes). */
  hint?: string | undefined;
}

interface JwtSvidFields {
  spiffeId: SpiffeId;
  audience: readonly string[];
  expiresAt: Date;
  claims: Readonly<Record<string, unknown>>;
  token: string;
  hint: string | undefined;
}

let makeJwtSvid: (fields: JwtSvidFields) => JwtSvid;

/**
 * A JWT-SVID: a JWS-signed token whose `sub` is a SPIFFE ID.
 *
 * Instances come from {@link validateJwtSvid} (signature and claims checked) or from
 * {@link parseJwtSvidInsecure} (structure checked, signature not). The token is a bearer
 * credential: do not log {@link JwtSvid.token}.
 */
export class JwtSvid {
  /** The SPIFFE ID in `sub`. */
  readonly spiffeId: SpiffeId;
  /** The `aud` values (a string `aud` becomes a one-element list). */
  readonly audience: readonly string[];
  /** `exp` as a Date. */
  readonly expiresAt: Date;
  /** Every claim of the payload, deeply frozen. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The compact token, as received. Secret: a bearer credential. */
  readonly token: string;
  /** The Workload API hint, if any. */
  readonly hint?: string;

  /** @internal Use {@link validateJwtSvid} or {@link parseJwtSvidInsecure}. */
  private constructor(fields: JwtSvidFields) {
    this.spiffeId = fields.spiffeId;
    this.audience = fields.audience;
    this.expiresAt = fields.expiresAt;
    this.claims = fields.claims;
    this.token = fields.token;
    if (fields.hint !== undefined) this.hint = fields.hint;
    Object.freeze(this);
  }

  static {
    makeJwtSvid = (fields) => new JwtSvid(fields);
  }

  /** Returns the compact token (the same string as {@link JwtSvid.token}). */
  marshal(): string {
    return this.token;
  }
}

function fail(
  code: string,
  detail: string,
  details?: Record<string, unknown>,
  cause?: unknown,
): IdentityError {
  return new IdentityError(code, detail, { details, cause });
}

interface Decoded {
  alg: JwtSvidAlgorithm;
  kid: string;
  payload: Record<string, unknown>;
  spiffeId: SpiffeId;
  /** Index of the second dot: the signing input is `token.slice(0, signingEnd)`. */
  signingEnd: number;
  signature: string;
}

/** Structure, header and `sub` checks shared by validation and insecure parsing. */
function decodeToken(token: unknown): Decoded {
  if (typeof token !== 'string') throw fail('jwtsvid-malformed', 'the token must be a string');
  if (token.length > SVID_LIMITS.jwtMaxTokenChars) {
    throw fail(
      'jwtsvid-token-too-large',
      `a JWT-SVID is at most ${SVID_LIMITS.jwtMaxTokenChars} characters`,
      {
        length: token.length,
      },
    );
  }
  const first = token.indexOf('.');
  const second = first === -1 ? -1 : token.indexOf('.', first + 1);
  if (second === -1 || token.indexOf('.', second + 1) !== -1) {
    throw fail(
      'jwtsvid-malformed',
      'a JWT-SVID is a JWS in compact serialization: exactly three dot-separated parts',
    );
  }
  if (first === 0 || second === first + 1)
    throw fail('jwtsvid-malformed', 'the header and payload must not be empty');
  if (first > SVID_LIMITS.jwtMaxHeaderChars) {
    throw fail(
      'jwtsvid-token-too-large',
      `the JOSE header is at most ${SVID_LIMITS.jwtMaxHeaderChars} characters`,
    );
  }

  const header = decodeJsonObject(token.slice(0, first), 'header', 2);
  for (const name of Object.keys(header)) {
    if (name !== 'alg' && name !== 'kid' && name !== 'typ') {
      const shown = name.slice(0, 32);
      throw fail(
        'jwtsvid-disallowed-header',
        `header member ${quote(name, 32)} is not allowed (only alg, kid, typ)`,
        {
          member: shown,
        },
      );
    }
  }
  const alg = header['alg'];
  if (typeof alg !== 'string' || !Object.hasOwn(ALGORITHMS, alg)) {
    const shown = typeof alg === 'string' ? alg.slice(0, 32) : typeof alg;
    throw fail(
      'jwtsvid-unsupported-alg',
      `alg ${typeof alg === 'string' ? quote(alg, 32) : shown} is not a JWT-SVID algorithm (RS/PS/ES 256/384/512)`,
      {
        alg: shown,
      },
    );
  }
  const typ = header['typ'];
  if (typ !== undefined && typ !== 'JWT' && typ !== 'JOSE') {
    throw fail('jwtsvid-invalid-typ', 'typ must be absent, "JWT" or "JOSE"');
  }
  const kid = header['kid'];
  if (kid === undefined) throw fail('jwtsvid-missing-kid', 'the header has no kid');
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > SVID_LIMITS.jwtMaxKidChars) {
    throw fail(
      'jwtsvid-invalid-kid',
      `kid must be a string of 1 to ${SVID_LIMITS.jwtMaxKidChars} characters`,
    );
  }

  const payload = decodeJsonObject(token.slice(first + 1, second), 'payload', SVID_LIMITS.jwtMaxJsonDepth);
  const sub = payload['sub'];
  if (sub === undefined) throw fail('jwtsvid-missing-subject', 'the payload has no sub claim');
  if (typeof sub !== 'string') throw fail('jwtsvid-invalid-subject', 'sub must be a string');
  let spiffeId: SpiffeId;
  try {
    spiffeId = SpiffeId.parse(sub);
  } catch (err) {
    throw fail('jwtsvid-invalid-subject', 'sub is not a valid SPIFFE ID', undefined, err);
  }
  if (spiffeId.isRoot()) {
    throw fail(
      'jwtsvid-invalid-subject',
      'sub is a trust domain ID; a JWT-SVID names a workload (non-root path)',
    );
  }
  return {
    alg: alg as JwtSvidAlgorithm,
    kid,
    payload,
    spiffeId,
    signingEnd: second,
    signature: token.slice(second + 1),
  };
}

interface RegisteredClaims {
  exp: number;
  nbf: number | undefined;
  iat: number | undefined;
  audience: string[];
}

function numericDate(payload: Record<string, unknown>, name: 'exp' | 'nbf' | 'iat'): number | undefined {
  const value = payload[name];
  if (value === undefined) return undefined;
  // 8.64e12 s is the largest time a Date can hold; anything beyond cannot be a real date.
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > 8.64e12) {
    throw fail('jwtsvid-invalid-claim', `${name} must be a NumericDate (a finite number of seconds)`, {
      claim: name,
    });
  }
  return value;
}

/** Presence and type checks of exp, nbf, iat and aud (no clock). */
function readClaims(payload: Record<string, unknown>): RegisteredClaims {
  const exp = numericDate(payload, 'exp');
  if (exp === undefined) throw fail('jwtsvid-missing-expiry', 'the payload has no exp claim');
  const nbf = numericDate(payload, 'nbf');
  const iat = numericDate(payload, 'iat');
  const aud = payload['aud'];
  let audience: string[];
  if (aud === undefined) throw fail('jwtsvid-missing-audience', 'the payload has no aud claim');
  if (typeof aud === 'string') {
    audience = [aud];
  } else if (Array.isArray(aud)) {
    if (aud.length === 0) throw fail('jwtsvid-missing-audience', 'aud is an empty list');
    if (aud.length > SVID_LIMITS.jwtMaxAudiences) {
      throw fail('jwtsvid-too-many-audiences', `aud holds at most ${SVID_LIMITS.jwtMaxAudiences} values`, {
        count: aud.length,
      });
    }
    if (!aud.every((a) => typeof a === 'string')) {
      throw fail('jwtsvid-invalid-claim', 'aud must be a string or a list of strings', { claim: 'aud' });
    }
    audience = aud as string[];
  } else {
    throw fail('jwtsvid-invalid-claim', 'aud must be a string or a list of strings', { claim: 'aud' });
  }
  return { exp, nbf, iat, audience };
}

interface KeyFacts {
  type: string | undefined;
  bits: number;
  curve: string | undefined;
}

const keyFacts = new WeakMap<KeyObject, KeyFacts>();

function factsOf(key: KeyObject): KeyFacts {
  let facts = keyFacts.get(key);
  if (facts === undefined) {
    const details = key.asymmetricKeyDetails ?? {};
    facts = { type: key.asymmetricKeyType, bits: details.modulusLength ?? 0, curve: details.namedCurve };
    keyFacts.set(key, facts);
  }
  return facts;
}

function checkKeyForAlg(key: KeyObject, alg: JwtSvidAlgorithm, spec: AlgSpec, kid: string): KeyFacts {
  if (key.type !== 'public' && key.type !== 'private') {
    throw fail('jwtsvid-alg-key-mismatch', `key ${quote(kid)} is not an asymmetric key`, { alg });
  }
  const facts = factsOf(key);
  if (spec.family === 'ec') {
    if (facts.type !== 'ec' || facts.curve !== spec.curve) {
      throw fail(
        'jwtsvid-alg-key-mismatch',
        `alg ${alg} needs an EC ${spec.curve} key; key ${quote(kid)} is not`,
        {
          alg,
        },
      );
    }
    return facts;
  }
  if (facts.type !== 'rsa') {
    throw fail(
      'jwtsvid-alg-key-mismatch',
      `alg ${alg} needs an RSA key; key ${quote(kid)} is ${facts.type}`,
      {
        alg,
      },
    );
  }
  if (facts.bits < 2048) {
    throw fail(
      'jwtsvid-weak-key',
      `key ${quote(kid)} is RSA ${facts.bits}; at least 2048 bits are required`,
      {
        bits: facts.bits,
      },
    );
  }
  return facts;
}

function selectBundle(bundles: BundleSet | JwtBundle, td: TrustDomain): JwtBundle {
  const source = bundles as Partial<BundleSet> & Partial<JwtBundle>;
  let bundle: JwtBundle | undefined;
  if (typeof source.getJwtBundle === 'function') {
    bundle = source.getJwtBundle(td);
  } else if (
    source.trustDomain !== undefined &&
    typeof source.getPublicKey === 'function' &&
    typeof source.findAuthority === 'function'
  ) {
    bundle = source.trustDomain.equals(td) ? (bundles as JwtBundle) : undefined;
  } else {
    throw fail('jwtsvid-invalid-option', 'bundles must be a BundleSet or a JwtBundle');
  }
  if (bundle === undefined) {
    throw fail('jwtsvid-no-bundle', `no JWT bundle for trust domain ${td.name} (the sub's trust domain)`, {
      trustDomain: td.name,
    });
  }
  return bundle;
}

function normalizeAudience(audience: unknown): string[] {
  const list = typeof audience === 'string' ? [audience] : audience;
  if (!Array.isArray(list)) {
    throw fail('jwtsvid-invalid-option', 'the expected audience must be a string or a list of strings');
  }
  if (list.length === 0) {
    throw fail(
      'jwtsvid-empty-expected-audience',
      'the expected audience list is empty; it must name who you are',
    );
  }
  for (const a of list) {
    if (typeof a !== 'string')
      throw fail('jwtsvid-invalid-option', 'expected audience values must be strings');
    if (a.length === 0) throw fail('jwtsvid-empty-expected-audience', 'an expected audience value is empty');
  }
  return list as string[];
}

interface ClockOptions {
  nowSec: number;
  tolerance: number;
  maxAge: number | undefined;
  single: boolean;
}

function readOptions(opts: ValidateJwtSvidOptions | undefined): ClockOptions {
  const now = opts?.now;
  if (now !== undefined && (!(now instanceof Date) || Number.isNaN(now.getTime()))) {
    throw fail('jwtsvid-invalid-option', 'opts.now must be a valid Date');
  }
  const tolerance = opts?.clockToleranceSec ?? SVID_LIMITS.jwtDefaultClockToleranceSec;
  if (
    typeof tolerance !== 'number' ||
    !Number.isFinite(tolerance) ||
    tolerance < 0 ||
    tolerance > SVID_LIMITS.jwtMaxClockToleranceSec
  ) {
    throw fail(
      'jwtsvid-invalid-option',
      `clockToleranceSec must be 0 to ${SVID_LIMITS.jwtMaxClockToleranceSec}`,
    );
  }
  const maxAge = opts?.maxTokenAgeSec;
  if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge <= 0)) {
    throw fail('jwtsvid-invalid-option', 'maxTokenAgeSec must be a positive number');
  }
  const single = opts?.requireSingleAudience ?? false;
  if (typeof single !== 'boolean')
    throw fail('jwtsvid-invalid-option', 'requireSingleAudience must be a boolean');
  return { nowSec: (now?.getTime() ?? Date.now()) / 1000, tolerance, maxAge, single };
}

function checkTimes(claims: RegisteredClaims, clock: ClockOptions): void {
  const { nowSec, tolerance } = clock;
  // RFC 7519 §4.1.4: the current time MUST be before exp.
  if (nowSec - tolerance >= claims.exp) {
    throw fail('jwtsvid-expired', `the token expired at ${new Date(claims.exp * 1000).toISOString()}`, {
      exp: claims.exp,
    });
  }
  if (claims.nbf !== undefined && nowSec + tolerance < claims.nbf) {
    throw fail(
      'jwtsvid-not-yet-valid',
      `the token is not valid before ${new Date(claims.nbf * 1000).toISOString()}`,
      {
        nbf: claims.nbf,
      },
    );
  }
  if (claims.iat !== undefined && claims.iat > nowSec + tolerance) {
    throw fail('jwtsvid-issued-in-future', 'the token claims to be issued in the future (iat)', {
      iat: claims.iat,
    });
  }
  if (clock.maxAge !== undefined) {
    if (claims.iat === undefined)
      throw fail('jwtsvid-missing-iat', 'maxTokenAgeSec is set but the token has no iat');
    if (nowSec - claims.iat > clock.maxAge + tolerance) {
      throw fail('jwtsvid-too-old', `the token is older than ${clock.maxAge} s`, { iat: claims.iat });
    }
  }
}

type VerifyKey = Parameters<typeof verify>[2];

/** Checks the signature length and returns the arguments for `crypto.verify`. */
function signatureCheck(
  token: string,
  decoded: Decoded,
  spec: AlgSpec,
  key: KeyObject,
  facts: KeyFacts,
): [string, Buffer, VerifyKey, Buffer] {
  const expectedLength = spec.ecSigBytes ?? Math.ceil(facts.bits / 8);
  const signature = decodeBase64url(decoded.signature, 'signature');
  if (signature.length !== expectedLength) {
    throw fail(
      'jwtsvid-invalid-signature',
      `signature is ${signature.length} bytes; ${expectedLength} expected`,
    );
  }
  const data = Buffer.from(token.slice(0, decoded.signingEnd), 'latin1');
  const keyOptions: VerifyKey =
    spec.family === 'ec'
      ? { key, dsaEncoding: 'ieee-p1363' }
      : spec.family === 'pss'
        ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: spec.saltLength! }
        : { key, padding: constants.RSA_PKCS1_PADDING };
  return [spec.hash, data, keyOptions, signature];
}

function verifyError(err: unknown): IdentityError {
  return fail('jwtsvid-invalid-signature', 'the signature could not be checked', undefined, err);
}

function verifySync(args: [string, Buffer, VerifyKey, Buffer]): boolean {
  try {
    return verify(...args);
  } catch (err) {
    throw verifyError(err);
  }
}

/** `crypto.verify` on the libuv thread pool. */
function verifyOffThread(args: [string, Buffer, VerifyKey, Buffer]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    try {
      verify(...args, (err, ok) => (err ? reject(verifyError(err)) : resolve(ok)));
    } catch (err) {
      reject(verifyError(err));
    }
  });
}

/**
 * Validates a JWT-SVID as a relying party: the token's signature, header and claims.
 *
 * Checked: compact JWS of at most 16 KiB; strict base64url and UTF-8; no repeated JSON member
 * names; header members only `alg`, `kid`, `typ`; `alg` one of RS/PS/ES 256/384/512 (never
 * `none`, HMAC or EdDSA); `typ` absent, `JWT` or `JOSE`; `kid` present; `sub` a SPIFFE ID with a
 * path; the key looked up by `kid` in the JWT bundle of **`sub`'s trust domain** only, of the
 * type and curve `alg` demands (RSA ≥ 2048 bits); the signature (exact length, PSS salt = hash
 * length); `exp` present and in the future, `nbf`/`iat` not in the future (with
 * `clockToleranceSec` leeway); `aud` present (string or 1–32 strings) and containing one of
 * `audience`.
 *
 * @param token - the compact JWT-SVID.
 * @param bundles - a {@link BundleSet} (`sub`'s trust domain selects the JWT bundle) or one
 *   JwtBundle, which must belong to `sub`'s trust domain.
 * @param audience - who you are: one value or a non-empty list; the token must name one of them.
 *   An empty string or list is an error, never "accept any".
 * @param opts - clock, tolerance, maximum age, single-audience mode.
 * @returns the validated SVID.
 * @throws IdentityError with a `jwtsvid-` code naming the rule that failed (the promise rejects).
 *
 * @example
 * ```ts
 * const svid = await validateJwtSvid(bearer, bundleSet, 'spiffe://example.org/api');
 * console.log(svid.spiffeId.toString(), svid.expiresAt);
 * ```
 */
export async function validateJwtSvid(
  token: string,
  bundles: BundleSet | JwtBundle,
  audience: string | string[],
  opts?: ValidateJwtSvidOptions,
): Promise<JwtSvid> {
  const expected = normalizeAudience(audience);
  const clock = readOptions(opts);
  const decoded = decodeToken(token);
  const spec = ALGORITHMS[decoded.alg];
  const bundle = selectBundle(bundles, decoded.spiffeId.trustDomain);
  const key = bundle.getPublicKey(decoded.kid);
  if (key === undefined) {
    throw fail(
      'jwtsvid-unknown-kid',
      `kid ${quote(decoded.kid)} is not in the JWT bundle of ${decoded.spiffeId.trustDomain.name}`,
      { kid: decoded.kid.slice(0, 64), trustDomain: decoded.spiffeId.trustDomain.name },
    );
  }
  const facts = checkKeyForAlg(key, decoded.alg, spec, decoded.kid);
  // A JWK that names its algorithm (RFC 7517 §4.4) may only verify that algorithm.
  const keyAlg = bundle.findAuthority(decoded.kid)?.['alg'];
  if (keyAlg !== undefined && keyAlg !== decoded.alg) {
    throw fail(
      'jwtsvid-alg-key-mismatch',
      `key ${quote(decoded.kid)} is for ${quote(String(keyAlg), 16)}; the token uses ${decoded.alg}`,
      {
        alg: decoded.alg,
      },
    );
  }
  const args = signatureCheck(token, decoded, spec, key, facts);
  // ECDSA verification (~80 µs) runs on the libuv pool, freeing the event loop and using spare
  // cores; RSA verification (~25 µs) costs about what the hop to the pool costs, so it runs inline.
  const valid = spec.family === 'ec' ? await verifyOffThread(args) : verifySync(args);
  if (!valid) {
    throw fail(
      'jwtsvid-invalid-signature',
      `the ${decoded.alg} signature does not verify with key ${quote(decoded.kid)}`,
    );
  }
  const claims = readClaims(decoded.payload);
  checkTimes(claims, clock);
  if (clock.single && claims.audience.length !== 1) {
    throw fail(
      'jwtsvid-audience-mismatch',
      `aud holds ${claims.audience.length} values; exactly one is required`,
    );
  }
  if (!claims.audience.some((a) => expected.includes(a))) {
    throw fail('jwtsvid-audience-mismatch', 'aud does not contain the expected audience');
  }
  return makeJwtSvid({
    spiffeId: decoded.spiffeId,
    audience: Object.freeze(claims.audience.slice()),
    expiresAt: new Date(claims.exp * 1000),
    claims: deepFreeze(decoded.payload),
    token,
    hint: undefined,
  });
}

/**
 * Parses a JWT-SVID **without checking its signature or its dates**: for a workload's own tokens
 * received from the Workload API (which is trusted), never for tokens from a peer.
 *
 * Structure, header (`alg` allow-list, `kid`, `typ`, no other members) and claims (`sub` a SPIFFE
 * ID, `aud` and `exp` present and well-typed) are checked as in {@link validateJwtSvid}.
 *
 * @param token - the compact JWT-SVID.
 * @param opts - `hint`: the Workload API hint (at most 1024 bytes).
 * @returns the SVID.
 * @throws IdentityError with a `jwtsvid-` code.
 */
export function parseJwtSvidInsecure(token: string, opts?: ParseJwtSvidOptions): JwtSvid {
  const hint = checkHint(opts?.hint, 'jwtsvid-invalid-option');
  const decoded = decodeToken(token);
  decodeBase64url(decoded.signature, 'signature');
  if (decoded.signature.length === 0) throw fail('jwtsvid-invalid-signature', 'the signature part is empty');
  const claims = readClaims(decoded.payload);
  return makeJwtSvid({
    spiffeId: decoded.spiffeId,
    audience: Object.freeze(claims.audience.slice()),
    expiresAt: new Date(claims.exp * 1000),
    claims: deepFreeze(decoded.payload),
    token,
    hint,
  });
}
