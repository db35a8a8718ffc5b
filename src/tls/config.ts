import { IdentityError } from '../errors/index.js';
import { SpiffeId, TrustDomain } from '../spiffeid/index.js';
import { type Authorizer, authorizeEither, authorizeMemberOf, authorizeOneOf } from './authorizer.js';
import type { MinTlsVersion } from './material.js';

/**
 * The mTLS configuration as it appears in JSON:
 *
 * ```json
 * { "enabled": true,
 *   "allowedSpiffeIds": ["spiffe://example.org/billing"],
 *   "trustDomains": ["partner.org"],
 *   "minTlsVersion": "1.3" }
 * ```
 *
 * A peer is allowed when its ID is one of `allowedSpiffeIds` **or** it belongs to one of
 * `trustDomains`. At least one of the two must be non-empty when `enabled` is true.
 */
export interface MtlsConfigInput {
  /** Required: whether mTLS is on. */
  enabled: boolean;
  /** Exact SPIFFE IDs allowed as peers. */
  allowedSpiffeIds?: readonly string[] | undefined;
  /** Trust domains whose every member is allowed (`example.org` or `spiffe://example.org`). */
  trustDomains?: readonly string[] | undefined;
  /** `"1.3"` (default) or `"1.2"`; `"TLSv1.3"`/`"TLSv1.2"` are accepted too. */
  minTlsVersion?: string | undefined;
}

/** The parsed configuration: disabled, or an authorizer and the helper options. */
export type MtlsConfig =
  | {
      /** mTLS is off. */
      readonly enabled: false;
    }
  | {
      /** mTLS is on. */
      readonly enabled: true;
      /** Allows `allowedSpiffeIds` and members of `trustDomains`. */
      readonly authorizer: Authorizer;
      /** The allowed IDs, parsed. */
      readonly allowedSpiffeIds: readonly SpiffeId[];
      /** The allowed trust domains, parsed. */
      readonly trustDomains: readonly TrustDomain[];
      /** The protocol minimum for the helpers' `minTlsVersion` option. */
      readonly minTlsVersion: MinTlsVersion;
    };

/** Most entries accepted in `allowedSpiffeIds` or `trustDomains`. */
export const MAX_MTLS_CONFIG_ENTRIES = 10_000;

const KEYS = new Set(['enabled', 'allowedSpiffeIds', 'trustDomains', 'minTlsVersion']);

function bad(detail: string, cause?: unknown): IdentityError {
  return new IdentityError('tls-config-invalid', detail, cause === undefined ? undefined : { cause });
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw bad(`${field} must be an array of strings`);
  if (value.length > MAX_MTLS_CONFIG_ENTRIES)
    throw bad(`${field} has more than ${MAX_MTLS_CONFIG_ENTRIES} entries`);
  value.forEach((v, i) => {
    if (typeof v !== 'string') throw bad(`${field}[${i}] must be a string`);
  });
  return value as string[];
}

function minVersion(value: unknown): MinTlsVersion {
  if (value === undefined) return 'TLSv1.3';
  switch (value) {
    case '1.3':
    case 'TLSv1.3':
      return 'TLSv1.3';
    case '1.2':
    case 'TLSv1.2':
      return 'TLSv1.2';
    default:
      throw bad(
        `minTlsVersion must be "1.3" or "1.2" (or "TLSv1.3"/"TLSv1.2"), got ${JSON.stringify(value) ?? String(value)}; TLS 1.0 and 1.1 are never allowed`,
      );
  }
}

/**
 * Parses the mTLS configuration object strictly: unknown keys, wrong types, invalid IDs or trust
 * domains, duplicates, an unsupported TLS version and an enabled configuration that allows
 * nobody are all errors.
 *
 * @param input - the parsed JSON object.
 * @returns `{ enabled: false }`, or the authorizer and options to pass to the helpers.
 * @throws IdentityError `tls-config-invalid` naming the field and the rule.
 *
 * @example
 * ```ts
 * const cfg = parseMtlsConfig(JSON.parse(readFileSync('mtls.json', 'utf8')));
 * if (cfg.enabled) createMtlsServer(source, cfg.authorizer, handler, { minTlsVersion: cfg.minTlsVersion });
 * ```
 */
export function parseMtlsConfig(input: unknown): MtlsConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw bad('the mTLS configuration must be a JSON object');
  }
  const proto = Object.getPrototypeOf(input) as unknown;
  if (proto !== Object.prototype && proto !== null)
    throw bad('the mTLS configuration must be a plain JSON object');
  const raw = input as Record<string, unknown>;
  // Own properties only: nothing is ever read from a prototype.
  const own = (key: string): unknown => (Object.hasOwn(raw, key) ? raw[key] : undefined);
  const obj = raw;
  for (const key of Object.keys(obj)) {
    if (!KEYS.has(key)) throw bad(`unknown key ${JSON.stringify(key)} (allowed: ${[...KEYS].join(', ')})`);
  }
  const enabled = own('enabled');
  if (typeof enabled !== 'boolean') throw bad('enabled is required and must be true or false');
  const idStrings = stringList(own('allowedSpiffeIds'), 'allowedSpiffeIds');
  const tdStrings = stringList(own('trustDomains'), 'trustDomains');
  const min = minVersion(own('minTlsVersion'));
  const ids = idStrings.map((s, i) => {
    try {
      return SpiffeId.parse(s);
    } catch (err) {
      throw bad(`allowedSpiffeIds[${i}]: ${(err as Error).message}`, err);
    }
  });
  const tds = tdStrings.map((s, i) => {
    try {
      return TrustDomain.parse(s);
    } catch (err) {
      throw bad(`trustDomains[${i}]: ${(err as Error).message}`, err);
    }
  });
  const seenIds = new Set<string>();
  ids.forEach((id, i) => {
    if (seenIds.has(id.toString())) throw bad(`allowedSpiffeIds[${i}]: ${id} is listed twice`);
    seenIds.add(id.toString());
  });
  const seenTds = new Set<string>();
  tds.forEach((td, i) => {
    if (seenTds.has(td.name)) throw bad(`trustDomains[${i}]: ${td.name} is listed twice`);
    seenTds.add(td.name);
  });
  if (!enabled) return Object.freeze({ enabled: false });
  if (ids.length === 0 && tds.length === 0) {
    throw bad(
      'enabled is true but allowedSpiffeIds and trustDomains are both empty: no peer could ever connect',
    );
  }
  const parts: Authorizer[] = [];
  if (ids.length > 0) parts.push(authorizeOneOf(...ids));
  for (const td of tds) parts.push(authorizeMemberOf(td));
  const authorizer = parts.length === 1 ? parts[0]! : authorizeEither(...parts);
  return Object.freeze({
    enabled: true,
    authorizer,
    allowedSpiffeIds: Object.freeze(ids),
    trustDomains: Object.freeze(tds),
    minTlsVersion: min,
  });
}
