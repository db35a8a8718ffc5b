/**
 * Turning raw Workload API messages into SDK objects, with the checks of the Workload API
 * standard (§4.5 mandatory fields, §5.2.1 hints) and bounds on untrusted counts. Any failure
 * throws `workload-malformed-response` with the underlying error in `cause`: the caller discards
 * the whole message and keeps the last good state.
 *
 * @internal
 */
import { createHash, type Hash } from 'node:crypto';
import { BundleSet, JwtBundle, X509Bundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import {
  overLimitField,
  type RawJwtBundlesResponse,
  type RawJwtSvid,
  type RawX509BundlesResponse,
  type RawX509SvidResponse,
} from '../internal/grpc-workload.js';
import { TrustDomain } from '../spiffeid/index.js';
import { type JwtSvid, parseJwtSvidInsecure, X509Svid } from '../svid/index.js';
import type { X509Context } from './types.js';

/** Bounds on what one message may carry. */
export interface WorkloadLimits {
  /** Most SVIDs in one message; default 1000. */
  readonly maxSvids: number;
  /** Most bundles (trust domains) in one message; default 1000. */
  readonly maxBundles: number;
  /** Most CRLs in one message; default 1000. */
  readonly maxCrls: number;
}

/** The default {@link WorkloadLimits}. */
export const defaultWorkloadLimits: WorkloadLimits = Object.freeze({
  maxSvids: 1000,
  maxBundles: 1000,
  maxCrls: 1000,
});

const MAX_HINT_BYTES = 1024;

/** The RPCs whose answers carry repeated fields or maps the limits bound. */
export type BoundedRpc = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles' | 'FetchJWTSVID';

/** Top-level repeated fields (and maps) of each answer: field number, name, limit. */
const REPEATED_FIELDS: Readonly<Record<BoundedRpc, readonly [number, string, keyof WorkloadLimits][]>> = {
  FetchX509SVID: [
    [1, 'svids', 'maxSvids'],
    [2, 'crl', 'maxCrls'],
    [3, 'federated_bundles', 'maxBundles'],
  ],
  FetchX509Bundles: [
    [1, 'crl', 'maxCrls'],
    [2, 'bundles', 'maxBundles'],
  ],
  FetchJWTBundles: [[1, 'bundles', 'maxBundles']],
  FetchJWTSVID: [[1, 'svids', 'maxSvids']],
};

/**
 * Wraps a response decoder so that the count limits are checked on the wire bytes first: a
 * message of millions of empty entries would otherwise be expanded into gigabytes of objects
 * before any count could be checked (about 130 bytes of heap per 2 bytes received).
 *
 * @throws IdentityError `workload-malformed-response` (from the returned function).
 */
export function boundedDeserializer<T>(
  rpc: BoundedRpc,
  limits: WorkloadLimits,
  decode: (bytes: Buffer) => T,
): (bytes: Buffer) => T {
  const spec = REPEATED_FIELDS[rpc];
  const bounds = new Map(spec.map(([field, , limit]) => [field, limits[limit]] as const));
  return (bytes) => {
    let over: { field: number; max: number } | undefined;
    try {
      over = overLimitField(bytes, bounds);
    } catch (err) {
      throw malformed(rpc, (err as Error).message, err);
    }
    if (over !== undefined) {
      const name = spec.find(([field]) => field === over.field)?.[1] ?? `field ${over.field}`;
      throw malformed(rpc, `more than ${over.max} ${name} entries in one message (refused before decoding)`);
    }
    return decode(bytes);
  };
}

/**
 * Remembers parsed objects by a SHA-256 digest of their exact input bytes, so that SVIDs and
 * bundles a message repeats (every re-delivery, every fetch of an unchanged state, the bundle of a
 * rotation) are not parsed again: parsing is pure and the objects are immutable. Only the entries
 * used by the last committed message are kept, so the cache never outgrows one message.
 */
export class ParseCache<V> {
  #current = new Map<string, V>();
  #next = new Map<string, V>();

  /** The cached value for `parts`, or `make()`'s result (remembered until the next commit). */
  get(parts: readonly (Uint8Array | string)[], make: () => V): V {
    const h = createHash('sha256');
    for (const p of parts) {
      const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(b.length);
      h.update(len);
      h.update(b);
    }
    const key = h.digest('base64');
    let v = this.#next.get(key) ?? this.#current.get(key);
    if (v === undefined) v = make();
    this.#next.set(key, v);
    return v;
  }

  /** Keeps exactly the entries used since the last commit (call after a message parsed). */
  commit(): void {
    this.#current = this.#next;
    this.#next = new Map();
  }

  /** Forgets the entries of a message that failed to parse. */
  abort(): void {
    this.#next = new Map();
  }
}

/** Caches used by the parse functions (one set per stream or per call kind). */
export interface ParseCaches {
  readonly svids: ParseCache<X509Svid>;
  readonly x509Bundles: ParseCache<X509Bundle>;
  readonly jwtBundles: ParseCache<JwtBundle>;
}

/** A fresh set of caches. */
export function newParseCaches(): ParseCaches {
  return { svids: new ParseCache(), x509Bundles: new ParseCache(), jwtBundles: new ParseCache() };
}

/** Runs a parse with the caches committed on success and rolled back on failure. */
function withCaches<T>(caches: ParseCaches | undefined, parse: (c: ParseCaches | undefined) => T): T {
  try {
    const out = parse(caches);
    if (caches) for (const c of [caches.svids, caches.x509Bundles, caches.jwtBundles]) c.commit();
    return out;
  } catch (err) {
    if (caches) for (const c of [caches.svids, caches.x509Bundles, caches.jwtBundles]) c.abort();
    throw err;
  }
}

function malformed(rpc: string, detail: string, cause?: unknown): IdentityError {
  return new IdentityError(
    'workload-malformed-response',
    `${rpc}: ${detail}`,
    cause === undefined ? undefined : { cause },
  );
}

function asBytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(0);
}

/** Parses a bundle map key: a trust domain SPIFFE ID (`spiffe://td`) or a bare name. */
function trustDomainOfKey(rpc: string, key: string): TrustDomain {
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(key);
  } catch (err) {
    throw malformed(rpc, `bundle key ${JSON.stringify(key.slice(0, 300))} is not a trust domain`, err);
  }
  if (key !== td.idString() && key !== td.name) {
    throw malformed(
      rpc,
      `bundle key ${JSON.stringify(key.slice(0, 300))} must be a trust domain ID without a path`,
    );
  }
  return td;
}

function x509BundleOf(
  rpc: string,
  td: TrustDomain,
  der: Uint8Array,
  caches: ParseCaches | undefined,
): X509Bundle {
  try {
    // An empty value is a trust domain with no authorities (Workload API §4.4: defaults replace).
    const make = (): X509Bundle =>
      der.length === 0 ? X509Bundle.fromAuthorities(td, []) : X509Bundle.parse(td, der);
    return caches ? caches.x509Bundles.get([td.name, der], make) : make();
  } catch (err) {
    throw malformed(rpc, `the X.509 bundle of ${td.name} is invalid: ${(err as Error).message}`, err);
  }
}

function checkCount(rpc: string, what: string, n: number, max: number): void {
  if (n > max) throw malformed(rpc, `${n} ${what} in one message, more than the limit of ${max}`);
}

function entriesOf(map: Record<string, Uint8Array> | undefined | null): [string, Uint8Array][] {
  return Object.entries(map ?? {}).map(([k, v]) => [k, asBytes(v)]);
}

/**
 * Parses a FetchX509SVID response into an {@link X509Context}. Every SVID must parse (else the
 * whole message is discarded, as the standard's mandatory-field rule asks); later SVIDs with a
 * hint already seen are dropped (the first wins).
 */
export function parseX509Context(
  raw: RawX509SvidResponse,
  limits: WorkloadLimits = defaultWorkloadLimits,
  caches?: ParseCaches | undefined,
): X509Context {
  return withCaches(caches, (c) => parseX509ContextWith(raw, limits, c));
}

function parseX509ContextWith(
  raw: RawX509SvidResponse,
  limits: WorkloadLimits,
  caches: ParseCaches | undefined,
): X509Context {
  const rpc = 'FetchX509SVID';
  const rawSvids = raw.svids ?? [];
  if (rawSvids.length === 0) throw malformed(rpc, 'the response holds no SVID (at least one is required)');
  checkCount(rpc, 'SVIDs', rawSvids.length, limits.maxSvids);
  const federated = entriesOf(raw.federated_bundles);
  checkCount(rpc, 'federated bundles', federated.length, limits.maxBundles);
  const crls = (raw.crl ?? []).map(asBytes);
  checkCount(rpc, 'CRLs', crls.length, limits.maxCrls);

  const svids: X509Svid[] = [];
  const hintsSeen = new Set<string>();
  const own = new Map<string, X509Bundle>();
  rawSvids.forEach((s, i) => {
    const hint = typeof s.hint === 'string' ? s.hint : '';
    if (Buffer.byteLength(hint) > MAX_HINT_BYTES)
      throw malformed(rpc, `SVID ${i}: hint longer than ${MAX_HINT_BYTES} bytes`);
    if (typeof s.spiffe_id !== 'string' || s.spiffe_id === '')
      throw malformed(rpc, `SVID ${i}: spiffe_id is empty`);
    const chain = asBytes(s.x509_svid);
    const key = asBytes(s.x509_svid_key);
    const bundle = asBytes(s.bundle);
    if (chain.length === 0) throw malformed(rpc, `SVID ${i} (${s.spiffe_id}): x509_svid is empty`);
    if (key.length === 0) throw malformed(rpc, `SVID ${i} (${s.spiffe_id}): x509_svid_key is empty`);
    if (bundle.length === 0) throw malformed(rpc, `SVID ${i} (${s.spiffe_id}): bundle is empty`);
    let svid: X509Svid;
    try {
      const make = (): X509Svid => X509Svid.parse(chain, key, hint === '' ? undefined : { hint });
      svid = caches ? caches.svids.get([chain, key, hint], make) : make();
    } catch (err) {
      throw malformed(
        rpc,
        `SVID ${i} (${s.spiffe_id.slice(0, 300)}) is invalid: ${(err as Error).message}`,
        err,
      );
    }
    if (svid.spiffeId.toString() !== s.spiffe_id) {
      throw malformed(
        rpc,
        `SVID ${i}: spiffe_id ${s.spiffe_id.slice(0, 300)} differs from the certificate's ${svid.spiffeId}`,
      );
    }
    const td = svid.spiffeId.trustDomain;
    if (!own.has(td.name)) own.set(td.name, x509BundleOf(rpc, td, bundle, caches));
    if (hint !== '') {
      if (hintsSeen.has(hint)) return; // Workload API §5.2.1: the first SVID with a hint wins
      hintsSeen.add(hint);
    }
    svids.push(svid);
  });

  const bundles: X509Bundle[] = [...own.values()];
  for (const [key, der] of federated) {
    const td = trustDomainOfKey(rpc, key);
    // The bundle of an SVID's own trust domain comes from its `bundle` field, never from here.
    if (own.has(td.name)) continue;
    if (bundles.some((b) => b.trustDomain.name === td.name))
      throw malformed(rpc, `two bundles for ${td.name}`);
    bundles.push(x509BundleOf(rpc, td, der, caches));
  }
  return Object.freeze({
    svids: Object.freeze(svids),
    bundles: new BundleSet(...bundles),
    crls: Object.freeze(crls),
  });
}

/** Parses a FetchX509Bundles response. */
export function parseX509Bundles(
  raw: RawX509BundlesResponse,
  limits: WorkloadLimits = defaultWorkloadLimits,
  caches?: ParseCaches | undefined,
): BundleSet {
  return withCaches(caches, (c) => parseX509BundlesWith(raw, limits, c));
}

function parseX509BundlesWith(
  raw: RawX509BundlesResponse,
  limits: WorkloadLimits,
  caches: ParseCaches | undefined,
): BundleSet {
  const rpc = 'FetchX509Bundles';
  const entries = entriesOf(raw.bundles);
  checkCount(rpc, 'bundles', entries.length, limits.maxBundles);
  checkCount(rpc, 'CRLs', (raw.crl ?? []).length, limits.maxCrls);
  const seen = new Set<string>();
  const bundles = entries.map(([key, der]) => {
    const td = trustDomainOfKey(rpc, key);
    if (seen.has(td.name)) throw malformed(rpc, `two bundles for ${td.name}`);
    seen.add(td.name);
    return x509BundleOf(rpc, td, der, caches);
  });
  return new BundleSet(...bundles);
}

/** Parses a FetchJWTBundles response. */
export function parseJwtBundles(
  raw: RawJwtBundlesResponse,
  limits: WorkloadLimits = defaultWorkloadLimits,
  caches?: ParseCaches | undefined,
): BundleSet {
  return withCaches(caches, (c) => parseJwtBundlesWith(raw, limits, c));
}

function parseJwtBundlesWith(
  raw: RawJwtBundlesResponse,
  limits: WorkloadLimits,
  caches: ParseCaches | undefined,
): BundleSet {
  const rpc = 'FetchJWTBundles';
  const entries = entriesOf(raw.bundles);
  checkCount(rpc, 'bundles', entries.length, limits.maxBundles);
  const seen = new Set<string>();
  const bundles = entries.map(([key, jwks]) => {
    const td = trustDomainOfKey(rpc, key);
    if (seen.has(td.name)) throw malformed(rpc, `two bundles for ${td.name}`);
    seen.add(td.name);
    try {
      const make = (): JwtBundle => JwtBundle.parse(td, jwks);
      return caches ? caches.jwtBundles.get([td.name, jwks], make) : make();
    } catch (err) {
      throw malformed(rpc, `the JWT bundle of ${td.name} is invalid: ${(err as Error).message}`, err);
    }
  });
  return new BundleSet(...bundles);
}

/** Parses the SVIDs of a FetchJWTSVID response; `subject`, when given, must match every one. */
export function parseJwtSvids(
  raw: readonly RawJwtSvid[],
  subject: string | undefined,
  limits: WorkloadLimits = defaultWorkloadLimits,
): JwtSvid[] {
  const rpc = 'FetchJWTSVID';
  if (raw.length === 0) throw malformed(rpc, 'the response holds no JWT-SVID');
  checkCount(rpc, 'JWT-SVIDs', raw.length, limits.maxSvids);
  const hintsSeen = new Set<string>();
  const out: JwtSvid[] = [];
  raw.forEach((s, i) => {
    const hint = typeof s.hint === 'string' ? s.hint : '';
    if (typeof s.svid !== 'string' || s.svid === '') throw malformed(rpc, `JWT-SVID ${i}: svid is empty`);
    let svid: JwtSvid;
    try {
      svid = parseJwtSvidInsecure(s.svid, hint === '' ? undefined : { hint });
    } catch (err) {
      throw malformed(rpc, `JWT-SVID ${i} is invalid: ${(err as Error).message}`, err);
    }
    if (svid.spiffeId.toString() !== s.spiffe_id) {
      throw malformed(rpc, `JWT-SVID ${i}: spiffe_id differs from the token's sub ${svid.spiffeId}`);
    }
    if (subject !== undefined && s.spiffe_id !== subject) {
      throw malformed(rpc, `JWT-SVID ${i} is for ${svid.spiffeId}, but ${subject} was requested`);
    }
    if (hint !== '') {
      if (hintsSeen.has(hint)) return;
      hintsSeen.add(hint);
    }
    out.push(svid);
  });
  return out;
}

function updateBytes(h: Hash, b: Uint8Array | undefined): void {
  const bytes = asBytes(b);
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(bytes.length);
  h.update(len);
  h.update(bytes);
}

function updateString(h: Hash, s: string | undefined): void {
  updateBytes(h, Buffer.from(typeof s === 'string' ? s : '', 'utf8'));
}

function updateMap(h: Hash, map: Record<string, Uint8Array> | undefined | null): void {
  const keys = Object.keys(map ?? {}).sort();
  updateBytes(h, Buffer.from(String(keys.length)));
  for (const k of keys) {
    updateString(h, k);
    updateBytes(h, map?.[k]);
  }
}

/** A digest of everything a FetchX509SVID message carries (key material included, never exposed). */
export function fingerprintX509(raw: RawX509SvidResponse): string {
  const h = createHash('sha256');
  h.update('x509svid');
  const svids = raw.svids ?? [];
  updateBytes(h, Buffer.from(String(svids.length)));
  for (const s of svids) {
    updateString(h, s.spiffe_id);
    updateBytes(h, s.x509_svid);
    updateBytes(h, s.x509_svid_key);
    updateBytes(h, s.bundle);
    updateString(h, s.hint);
  }
  const crls = raw.crl ?? [];
  updateBytes(h, Buffer.from(String(crls.length)));
  for (const c of crls) updateBytes(h, c);
  updateMap(h, raw.federated_bundles);
  return h.digest('hex');
}

/** A digest of a FetchX509Bundles message. */
export function fingerprintX509Bundles(raw: RawX509BundlesResponse): string {
  const h = createHash('sha256');
  h.update('x509bundles');
  const crls = raw.crl ?? [];
  updateBytes(h, Buffer.from(String(crls.length)));
  for (const c of crls) updateBytes(h, c);
  updateMap(h, raw.bundles);
  return h.digest('hex');
}

/** A digest of a FetchJWTBundles message. */
export function fingerprintJwtBundles(raw: RawJwtBundlesResponse): string {
  const h = createHash('sha256');
  h.update('jwtbundles');
  updateMap(h, raw.bundles);
  return h.digest('hex');
}

/** The identity key of an SVID for diffs: SPIFFE ID plus hint. */
export function svidKey(s: { spiffeId: { toString(): string }; hint?: string | undefined }): string {
  return `${s.spiffeId.toString()}\u0000${s.hint ?? ''}`;
}

/** Trust domain names of the X.509 and JWT bundles in a set. */
export function bundleDomains(set: BundleSet): { x509: Set<string>; jwt: Set<string> } {
  return {
    x509: new Set(set.x509Bundles.map((b) => b.trustDomain.name)),
    jwt: new Set(set.jwtBundles.map((b) => b.trustDomain.name)),
  };
}
