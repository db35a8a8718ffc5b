import { IdentityError } from '../errors/index.js';
import { SpiffeId, TrustDomain } from './id.js';

/**
 * Decides whether a peer's SPIFFE ID is acceptable. Matchers are pure functions and never throw
 * while matching; anything that is not a {@link SpiffeId} does not match.
 */
export type SpiffeIdMatcher = (id: SpiffeId) => boolean;

function toId(id: SpiffeId | string): SpiffeId {
  return id instanceof SpiffeId ? id : SpiffeId.parse(id);
}

function toTd(td: TrustDomain | string): TrustDomain {
  return td instanceof TrustDomain ? td : TrustDomain.parse(td);
}

/**
 * Matches every SPIFFE ID. Use it only where any authenticated peer of any trusted domain is
 * acceptable.
 */
export function matchAny(): SpiffeIdMatcher {
  return (id) => id instanceof SpiffeId;
}

/**
 * Matches exactly one SPIFFE ID (byte-exact).
 *
 * @param id - the expected ID, or a string that {@link SpiffeId.parse} accepts.
 * @throws IdentityError when `id` is a string that is not a valid SPIFFE ID.
 */
export function matchId(id: SpiffeId | string): SpiffeIdMatcher {
  const expected = toId(id).toString();
  return (actual) => actual instanceof SpiffeId && actual.toString() === expected;
}

/**
 * Matches any of the given SPIFFE IDs. With no IDs it matches nothing (deny all).
 *
 * @param ids - the allowed IDs, as {@link SpiffeId}s or strings that {@link SpiffeId.parse} accepts.
 * @throws IdentityError when one of the strings is not a valid SPIFFE ID.
 */
export function matchOneOf(...ids: Array<SpiffeId | string>): SpiffeIdMatcher {
  const allowed = new Set(ids.map((id) => toId(id).toString()));
  return (actual) => actual instanceof SpiffeId && allowed.has(actual.toString());
}

/**
 * Matches every SPIFFE ID of one trust domain, including its root ID.
 *
 * @param td - the trust domain, or a string that {@link TrustDomain.parse} accepts.
 * @throws IdentityError when `td` is a string that is not a valid trust domain.
 */
export function matchMemberOf(td: TrustDomain | string): SpiffeIdMatcher {
  const name = toTd(td).name;
  return (actual) => actual instanceof SpiffeId && actual.trustDomain.name === name;
}

/**
 * Matches the IDs of one trust domain whose path starts with `prefix` on a segment boundary:
 * `matchPathPrefix(td, '/agent')` matches `/agent` and `/agent/x/y`, never `/agents` or
 * `/agent-x`.
 *
 * @param td - the trust domain, or a string that {@link TrustDomain.parse} accepts.
 * @param prefix - a non-empty path that obeys the SPIFFE path rules (`/a` or `/a/b`, no trailing `/`).
 * @throws IdentityError `spiffeid-empty-prefix` for an empty prefix (use {@link matchMemberOf}),
 *   or any path code of {@link SpiffeId.fromPath}.
 */
export function matchPathPrefix(td: TrustDomain | string, prefix: string): SpiffeIdMatcher {
  const trustDomain = toTd(td);
  if (prefix === '') {
    throw new IdentityError(
      'spiffeid-empty-prefix',
      'a path prefix must not be empty; use matchMemberOf() to match a whole trust domain',
    );
  }
  // Validates the prefix with the same rules as a path.
  const path = SpiffeId.fromPath(trustDomain, prefix).path;
  const withSlash = `${path}/`;
  return (actual) =>
    actual instanceof SpiffeId &&
    actual.trustDomain.name === trustDomain.name &&
    (actual.path === path || actual.path.startsWith(withSlash));
}
