import type { X509Certificate } from 'node:crypto';
import { IdentityError } from '../errors/index.js';
import { SpiffeId, type SpiffeIdMatcher, TrustDomain } from '../spiffeid/index.js';

/**
 * The outcome of an {@link Authorizer}: allowed, or denied with a reason that names the rule
 * (for example `spiffe://td/x not in [spiffe://td/a, spiffe://td/b]`).
 */
export type AuthorizationResult =
  | {
      /** The peer may talk to us. */
      readonly allowed: true;
    }
  | {
      /** The peer is refused. */
      readonly allowed: false;
      /** Why, naming the rule: `spiffe://td/x not in [spiffe://td/a]`. */
      readonly reason: string;
    };

/**
 * Decides whether an authenticated peer may talk to us. It runs after the peer's X509-SVID was
 * verified against the bundle of the peer's own trust domain, so `peer` is a verified SPIFFE ID
 * and `chain` the verified path (leaf first, ending at the bundle authority).
 *
 * Build authorizers with {@link authorizeAny}, {@link authorizeId}, {@link authorizeOneOf},
 * {@link authorizeMemberOf}, {@link authorizeMatcher}, and combine them with
 * {@link authorizeAll} / {@link authorizeEither}. A custom object works too; if its
 * `authorize` throws, the peer is refused (`tls-peer-unauthorized`, naming the throw).
 */
export interface Authorizer {
  /** A short human description, e.g. `one of [spiffe://td/a, spiffe://td/b]`. */
  readonly description: string;
  /**
   * Decides about one peer.
   *
   * @param peer - the verified SPIFFE ID of the peer.
   * @param chain - the verified chain (leaf first).
   */
  authorize(peer: SpiffeId, chain: readonly X509Certificate[]): AuthorizationResult;
}

const ALLOWED: AuthorizationResult = Object.freeze({ allowed: true });

function deny(reason: string): AuthorizationResult {
  return Object.freeze({ allowed: false, reason });
}

function make(
  description: string,
  fn: (peer: SpiffeId, chain: readonly X509Certificate[]) => AuthorizationResult,
): Authorizer {
  return Object.freeze({ description, authorize: fn });
}

function toId(id: SpiffeId | string, what: string): SpiffeId {
  if (id instanceof SpiffeId) return id;
  if (typeof id !== 'string') {
    throw new IdentityError('tls-invalid-argument', `${what} must be a SpiffeId or a SPIFFE ID string`);
  }
  try {
    return SpiffeId.parse(id);
  } catch (err) {
    throw new IdentityError('tls-invalid-argument', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

function toTd(td: TrustDomain | string, what: string): TrustDomain {
  if (td instanceof TrustDomain) return td;
  if (typeof td !== 'string') {
    throw new IdentityError('tls-invalid-argument', `${what} must be a TrustDomain or a trust domain string`);
  }
  try {
    return TrustDomain.parse(td);
  } catch (err) {
    throw new IdentityError('tls-invalid-argument', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Lists at most `max` items, with a count of the rest. */
function list(items: readonly string[], max = 10): string {
  const shown = items.slice(0, max).join(', ');
  return items.length > max ? `[${shown}, … ${items.length - max} more]` : `[${shown}]`;
}

/**
 * Allows every peer whose X509-SVID verified against a trusted bundle (any trusted trust
 * domain, federated ones included). Use it only where any authenticated workload is acceptable.
 */
export function authorizeAny(): Authorizer {
  return make('any authenticated SPIFFE ID', () => ALLOWED);
}

/**
 * Allows exactly one SPIFFE ID (byte-exact comparison).
 *
 * @param id - the allowed ID.
 * @throws IdentityError `tls-invalid-argument` when `id` is not a valid SPIFFE ID.
 */
export function authorizeId(id: SpiffeId | string): Authorizer {
  const expected = toId(id, 'authorizeId').toString();
  return make(expected, (peer) =>
    peer.toString() === expected ? ALLOWED : deny(`${peer} is not ${expected}`),
  );
}

/**
 * Allows any of the given SPIFFE IDs. With no ID it allows nobody.
 *
 * @param ids - the allowed IDs.
 * @throws IdentityError `tls-invalid-argument` when one of them is not a valid SPIFFE ID.
 */
export function authorizeOneOf(...ids: Array<SpiffeId | string>): Authorizer {
  const allowed = ids.map((id, i) => toId(id, `authorizeOneOf: argument ${i}`).toString());
  const set = new Set(allowed);
  const shown = list(allowed);
  return make(`one of ${shown}`, (peer) =>
    set.has(peer.toString()) ? ALLOWED : deny(`${peer} not in ${shown}`),
  );
}

/**
 * Allows every SPIFFE ID of one trust domain.
 *
 * @param td - the trust domain (`example.org` or `spiffe://example.org`).
 * @throws IdentityError `tls-invalid-argument` when `td` is not a valid trust domain.
 */
export function authorizeMemberOf(td: TrustDomain | string): Authorizer {
  const name = toTd(td, 'authorizeMemberOf').name;
  return make(`member of ${name}`, (peer) =>
    peer.trustDomain.name === name ? ALLOWED : deny(`${peer} is not a member of trust domain ${name}`),
  );
}

/**
 * Allows the peers a {@link SpiffeIdMatcher} (or any predicate) accepts. A predicate that
 * throws refuses the peer.
 *
 * @param matcher - e.g. `matchPathPrefix('example.org', '/ns/prod')`.
 * @param description - words for the denial reason; default `a custom matcher`.
 */
export function authorizeMatcher(matcher: SpiffeIdMatcher, description = 'a custom matcher'): Authorizer {
  if (typeof matcher !== 'function') {
    throw new IdentityError('tls-invalid-argument', 'authorizeMatcher needs a function (id) => boolean');
  }
  return make(description, (peer) => {
    let ok: unknown;
    try {
      ok = matcher(peer);
    } catch (err) {
      return deny(`${peer}: ${description} threw: ${(err as Error)?.message ?? String(err)}`);
    }
    return ok === true ? ALLOWED : deny(`${peer} rejected by ${description}`);
  });
}

function checkAuthorizers(authorizers: readonly Authorizer[], what: string): void {
  authorizers.forEach((a, i) => {
    if (typeof a !== 'object' || a === null || typeof a.authorize !== 'function') {
      throw new IdentityError('tls-invalid-argument', `${what}: argument ${i} is not an Authorizer`);
    }
  });
}

/**
 * Allows a peer only when every given authorizer allows it; the reason is the first denial.
 * With no authorizer it allows nobody.
 *
 * @param authorizers - the authorizers, all of which must allow.
 */
export function authorizeAll(...authorizers: Authorizer[]): Authorizer {
  checkAuthorizers(authorizers, 'authorizeAll');
  const parts = [...authorizers];
  return make(`all of (${parts.map((a) => a.description).join('; ')})`, (peer, chain) => {
    if (parts.length === 0) return deny(`${peer}: authorizeAll() of nothing allows nobody`);
    for (const a of parts) {
      const r = runAuthorizer(a, peer, chain);
      if (!r.allowed) return r;
    }
    return ALLOWED;
  });
}

/**
 * Allows a peer when at least one given authorizer allows it; the reason lists every denial.
 * With no authorizer it allows nobody.
 *
 * @param authorizers - the alternatives.
 */
export function authorizeEither(...authorizers: Authorizer[]): Authorizer {
  checkAuthorizers(authorizers, 'authorizeEither');
  const parts = [...authorizers];
  return make(`either of (${parts.map((a) => a.description).join('; ')})`, (peer, chain) => {
    const reasons: string[] = [];
    for (const a of parts) {
      const r = runAuthorizer(a, peer, chain);
      if (r.allowed) return ALLOWED;
      reasons.push(r.reason);
    }
    return deny(
      reasons.length === 0 ? `${peer}: authorizeEither() of nothing allows nobody` : reasons.join('; and '),
    );
  });
}

/** Runs an authorizer and turns a throw or a malformed result into a denial (fail closed). */
function runAuthorizer(
  a: Authorizer,
  peer: SpiffeId,
  chain: readonly X509Certificate[],
): AuthorizationResult {
  let r: unknown;
  try {
    r = a.authorize(peer, chain);
  } catch (err) {
    return deny(`${peer}: authorizer "${a.description}" threw: ${(err as Error)?.message ?? String(err)}`);
  }
  if (typeof r === 'object' && r !== null && (r as { allowed?: unknown }).allowed === true) return ALLOWED;
  const reason = (r as { reason?: unknown } | null)?.reason;
  return deny(typeof reason === 'string' && reason !== '' ? reason : `${peer} refused by "${a.description}"`);
}

/**
 * Runs `authorizer` for a verified peer and throws when it refuses.
 *
 * @param authorizer - the authorizer.
 * @param peer - the verified SPIFFE ID.
 * @param chain - the verified chain.
 * @throws IdentityError `tls-peer-unauthorized` with the authorizer's reason, e.g.
 *   `tls-peer-unauthorized: spiffe://td/x not in [spiffe://td/a, spiffe://td/b]`.
 */
export function authorizePeer(
  authorizer: Authorizer,
  peer: SpiffeId,
  chain: readonly X509Certificate[],
): void {
  const r = runAuthorizer(authorizer, peer, chain);
  if (!r.allowed) {
    throw new IdentityError('tls-peer-unauthorized', r.reason, {
      details: { peer: peer.toString(), authorizer: authorizer.description },
    });
  }
}

/** Tells whether `value` looks like an {@link Authorizer}. @internal */
export function isAuthorizer(value: unknown): value is Authorizer {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { authorize?: unknown }).authorize === 'function'
  );
}
