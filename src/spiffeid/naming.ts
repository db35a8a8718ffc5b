import { IdentityError } from '../errors/index.js';
import { SpiffeId, type TrustDomain } from './id.js';

/** Longest e-mail address {@link emailToSegment} accepts (RFC 5321 §4.5.3.1.3 path limit). */
export const MAX_EMAIL_LENGTH = 254;

/** Longest local part (before `@`) {@link emailToSegment} accepts (RFC 5321 §4.5.3.1.1). */
export const MAX_EMAIL_LOCAL_PART_LENGTH = 64;

/** Longest segment {@link emailToSegment} can produce: every character a `.` turned into `_dot_`. */
const MAX_EMAIL_SEGMENT_LENGTH = MAX_EMAIL_LENGTH * 5;

/**
 * What {@link describeTachikomaId} recognises in a SPIFFE ID path, following the Tachikoma naming
 * scheme: `/agent/<id>`, `/pod/<namespace>/<pod>` or `/service/<name>`.
 */
export type TachikomaIdDescription = AgentIdDescription | PodIdDescription | ServiceIdDescription;

/** An agent ID: `/agent/<agentId>`. */
export interface AgentIdDescription {
  /** Always `'agent'`. */
  readonly kind: 'agent';
  /** The agent id segment (an encoded e-mail for {@link agentIdFromEmail} IDs). */
  readonly agentId: string;
}

/** A pod ID: `/pod/<namespace>/<pod>`. */
export interface PodIdDescription {
  /** Always `'pod'`. */
  readonly kind: 'pod';
  /** The Kubernetes namespace. */
  readonly namespace: string;
  /** The pod name. */
  readonly pod: string;
}

/** A service ID: `/service/<name>`. */
export interface ServiceIdDescription {
  /** Always `'service'`. */
  readonly kind: 'service';
  /** The service name. */
  readonly name: string;
}

/**
 * Builds the SPIFFE ID of an agent: `spiffe://<td>/agent/<id>`.
 *
 * @param td - the trust domain.
 * @param id - the agent id: one path segment (`A-Z a-z 0-9 . - _`, not `.` or `..`). For an
 *   e-mail address use {@link agentIdFromEmail}.
 * @throws IdentityError when `id` is not a valid path segment.
 */
export function agentId(td: TrustDomain | string, id: string): SpiffeId {
  return SpiffeId.fromSegments(td, 'agent', id);
}

/**
 * Builds the SPIFFE ID of an agent identified by e-mail:
 * `spiffe://<td>/agent/<emailToSegment(email)>`.
 *
 * @param td - the trust domain.
 * @param email - the agent's e-mail address, as accepted by {@link emailToSegment}.
 * @throws IdentityError when the address cannot be mapped (see {@link emailToSegment}).
 */
export function agentIdFromEmail(td: TrustDomain | string, email: string): SpiffeId {
  return agentId(td, emailToSegment(email));
}

/**
 * Builds the SPIFFE ID of a Kubernetes pod: `spiffe://<td>/pod/<namespace>/<pod>`.
 *
 * @param td - the trust domain.
 * @param namespace - the namespace: one path segment.
 * @param pod - the pod name: one path segment.
 * @throws IdentityError when a name is not a valid path segment.
 */
export function podId(td: TrustDomain | string, namespace: string, pod: string): SpiffeId {
  return SpiffeId.fromSegments(td, 'pod', namespace, pod);
}

/**
 * Builds the SPIFFE ID of a service: `spiffe://<td>/service/<name>`.
 *
 * @param td - the trust domain.
 * @param name - the service name: one path segment.
 * @throws IdentityError when `name` is not a valid path segment.
 */
export function serviceId(td: TrustDomain | string, name: string): SpiffeId {
  return SpiffeId.fromSegments(td, 'service', name);
}

/**
 * Recognises an ID built by {@link agentId}, {@link podId} or {@link serviceId}. The trust domain
 * is not checked: compare `id.trustDomain` yourself.
 *
 * @param id - any SPIFFE ID.
 * @returns what the path names, or `undefined` when it follows none of the three shapes exactly
 *   (for example `/agent` alone or `/service/a/b`).
 */
export function describeTachikomaId(id: SpiffeId): TachikomaIdDescription | undefined {
  if (!(id instanceof SpiffeId)) return undefined;
  const s = id.segments();
  if (s.length === 2 && s[0] === 'agent') return { kind: 'agent', agentId: s[1]! };
  if (s.length === 3 && s[0] === 'pod') return { kind: 'pod', namespace: s[1]!, pod: s[2]! };
  if (s.length === 2 && s[0] === 'service') return { kind: 'service', name: s[1]! };
  return undefined;
}

function encodeEmail(email: string): string {
  let out = '';
  for (const ch of email) out += ch === '@' ? '_at_' : ch === '.' ? '_dot_' : ch;
  return out;
}

/** Greedy left-to-right decoding: `_at_` → `@`, `_dot_` → `.`, anything else kept. */
function decodeSegment(segment: string): string {
  let out = '';
  let i = 0;
  while (i < segment.length) {
    if (segment.startsWith('_at_', i)) {
      out += '@';
      i += 4;
    } else if (segment.startsWith('_dot_', i)) {
      out += '.';
      i += 5;
    } else {
      out += segment[i];
      i += 1;
    }
  }
  return out;
}

function invalidEmail(rule: string): never {
  throw new IdentityError('spiffeid-email-invalid', `cannot map e-mail address to a path segment: ${rule}`);
}

/** Checks one dot-separated part (local part or domain) of an address. */
function checkDotAtoms(part: string, which: string, offset: number): void {
  if (part.length === 0) invalidEmail(`the ${which} must not be empty`);
  if (part.startsWith('.') || part.endsWith('.') || part.includes('..')) {
    invalidEmail(`the ${which} must not start or end with '.' or contain '..'`);
  }
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
    if (!ok) {
      const shown =
        c > 0x20 && c < 0x7f ? `'${part[i]}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
      const hint = c >= 0x41 && c <= 0x5a ? ' (addresses must be lowercase)' : '';
      invalidEmail(`character ${shown} at position ${offset + i} is outside a-z 0-9 . - _${hint}`);
    }
  }
}

/**
 * Maps an agent's e-mail address to one SPIFFE ID path segment: `@` becomes `_at_`, `.` becomes
 * `_dot_`, everything else stays (`alice@example.com` → `alice_at_example_dot_com`).
 *
 * The mapping is reversible ({@link segmentToEmail}) and collision-free on the addresses it
 * accepts. An address is accepted when:
 *
 * - it is at most 254 characters, with exactly one `@`, a local part of 1 to 64 characters and a
 *   non-empty domain;
 * - it uses only lowercase `a-z`, `0-9`, `.`, `-`, `_` besides the `@` (no normalisation: lowercase
 *   the address yourself if your directory is case-insensitive);
 * - neither part starts or ends with `.` or contains `..`;
 * - decoding its segment gives the address back. In practice this rejects an address in which
 *   `_at` or `_dot` is directly followed by `_`, `.` or `@` (`a_at_b@x.io`, `x_dot.y@x.io`,
 *   `team_at@x.io`), because its segment would decode to a different address.
 *
 * @param email - the address.
 * @returns the path segment.
 * @throws IdentityError `spiffeid-email-invalid` when a syntax rule fails,
 *   `spiffeid-email-ambiguous` when the segment would not decode back to the address.
 */
export function emailToSegment(email: string): string {
  if (typeof email !== 'string') invalidEmail('the address must be a string');
  if (email.length === 0) invalidEmail('the address must not be empty');
  if (email.length > MAX_EMAIL_LENGTH)
    invalidEmail(`the address is longer than ${MAX_EMAIL_LENGTH} characters`);
  const at = email.indexOf('@');
  if (at === -1 || email.indexOf('@', at + 1) !== -1)
    invalidEmail("the address must contain exactly one '@'");
  if (at > MAX_EMAIL_LOCAL_PART_LENGTH) {
    invalidEmail(`the local part is longer than ${MAX_EMAIL_LOCAL_PART_LENGTH} characters`);
  }
  checkDotAtoms(email.slice(0, at), 'local part', 0);
  checkDotAtoms(email.slice(at + 1), 'domain', at + 1);
  const segment = encodeEmail(email);
  if (decodeSegment(segment) !== email) {
    throw new IdentityError(
      'spiffeid-email-ambiguous',
      "cannot map e-mail address to a path segment: it contains '_at' or '_dot' followed by '_', '.' or '@', " +
        'so its segment would decode to a different address',
    );
  }
  return segment;
}

/**
 * The exact inverse of {@link emailToSegment}: `alice_at_example_dot_com` → `alice@example.com`.
 *
 * Only segments that {@link emailToSegment} can produce are accepted, so
 * `emailToSegment(segmentToEmail(s)) === s` whenever it returns.
 *
 * @param segment - a path segment.
 * @returns the e-mail address.
 * @throws IdentityError `spiffeid-email-segment-invalid` when no accepted address maps to `segment`.
 */
export function segmentToEmail(segment: string): string {
  const bad = (rule: string): never => {
    throw new IdentityError(
      'spiffeid-email-segment-invalid',
      `path segment is not an encoded e-mail address: ${rule}`,
    );
  };
  if (typeof segment !== 'string') return bad('the segment must be a string');
  if (segment.length === 0 || segment.length > MAX_EMAIL_SEGMENT_LENGTH) {
    return bad(`the segment must be 1 to ${MAX_EMAIL_SEGMENT_LENGTH} characters`);
  }
  if (!/^[a-z0-9_-]+$/.test(segment)) return bad('only a-z 0-9 - _ can appear in an encoded address');
  const email = decodeSegment(segment);
  let again: string;
  try {
    again = emailToSegment(email);
  } catch (err) {
    return bad(`it decodes to an address that is not accepted (${(err as IdentityError).code})`);
  }
  if (again !== segment) return bad('it does not re-encode to the same segment');
  return email;
}
