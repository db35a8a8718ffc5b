/**
 * `@tachikoma/identity/spiffeid`: SPIFFE IDs, trust domains, ID matchers and the Tachikoma
 * naming scheme.
 *
 * Everything here is pure string handling: no I/O, no certificates, no dependencies besides
 * `IdentityError`. See `docs/spiffe-ids.md`.
 *
 * @packageDocumentation
 */

export { MAX_SPIFFE_ID_LENGTH, MAX_TRUST_DOMAIN_LENGTH, SpiffeId, TrustDomain } from './id.js';
export type { SpiffeIdMatcher } from './match.js';
export { matchAny, matchId, matchMemberOf, matchOneOf, matchPathPrefix } from './match.js';
export type {
  AgentIdDescription,
  PodIdDescription,
  ServiceIdDescription,
  TachikomaIdDescription,
} from './naming.js';
export {
  agentId,
  agentIdFromEmail,
  describeTachikomaId,
  emailToSegment,
  MAX_EMAIL_LENGTH,
  MAX_EMAIL_LOCAL_PART_LENGTH,
  podId,
  segmentToEmail,
  serviceId,
} from './naming.js';
