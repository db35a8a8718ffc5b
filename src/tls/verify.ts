import type { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import type { BundleSet } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import type { SpiffeId } from '../spiffeid/index.js';
import { SVID_LIMITS, verifyX509Svid } from '../svid/index.js';
import { type Authorizer, authorizePeer } from './authorizer.js';

/** Verified peer IDs of sockets that passed our checks. Only this module writes to it. */
const peerIds = new WeakMap<object, SpiffeId>();

/**
 * The SPIFFE ID of the peer of a socket that one of the SDK's mTLS helpers verified and
 * authorized, or `undefined` for any other socket (plain TLS, not yet verified, refused).
 *
 * For https, pass `req.socket`.
 *
 * @param socket - a TLS socket (server or client side).
 *
 * @example
 * ```ts
 * createMtlsServer(source, authorizeMemberOf('example.org'), (req, res) => {
 *   res.end(`hello ${getPeerSpiffeId(req.socket)}`);
 * });
 * ```
 */
export function getPeerSpiffeId(socket: object | null | undefined): SpiffeId | undefined {
  if (typeof socket !== 'object' || socket === null) return undefined;
  return peerIds.get(socket);
}

/** Records a verified peer. @internal */
export function recordPeer(socket: TLSSocket, id: SpiffeId): void {
  peerIds.set(socket, id);
}

/**
 * The DER chain Node reports for a peer: leaf first, following `issuerCertificate` links (the
 * peer's intermediates, then whatever root OpenSSL chained to). Bounded by the chain limit plus
 * one, so a hostile chain cannot make the walk long.
 */
export function peerChainDer(cert: PeerCertificate | DetailedPeerCertificate | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<object>();
  let c = cert as DetailedPeerCertificate | undefined;
  while (c !== undefined && c !== null && c.raw !== undefined && !seen.has(c)) {
    if (out.length > SVID_LIMITS.x509MaxChainLength) break;
    seen.add(c);
    const next = c.issuerCertificate as DetailedPeerCertificate | undefined;
    // A self-signed certificate at the end (the root OpenSSL chained to) is never needed as an
    // intermediate: the path must end in an authority of the bundle anyway. Keep a self-signed
    // leaf, so that it is refused for what it is.
    if (next === c && out.length > 0) break;
    out.push(c.raw);
    if (next === c) break;
    c = next;
  }
  return out;
}

/** Most cached verification results per bundle set. */
const MAX_CACHED_VERIFICATIONS = 1024;
/** Chains larger than this (DER bytes in total) are verified every time, never cached. */
const MAX_CACHED_CHAIN_BYTES = 16 * 1024;

interface CachedVerification {
  readonly spiffeId: SpiffeId;
  readonly chain: X509Certificate[];
  /** The chain is valid from this time (ms) ... */
  readonly from: number;
  /** ... until this time (ms). */
  readonly until: number;
}

/**
 * Verification results by bundle set (a bundle update makes a new set, so entries never outlive
 * the bundles they were checked against) and by the exact chain bytes. A hit is used only inside
 * the validity window of every certificate of the verified path; the authorizer runs every time.
 */
const verificationCache = new WeakMap<BundleSet, Map<string, CachedVerification>>();

function chainKey(chainDer: readonly Uint8Array[]): string {
  let key = '';
  for (const d of chainDer) key += `${Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64')}.`;
  return key;
}

function verifyCached(
  chainDer: readonly Uint8Array[],
  bundles: BundleSet,
): { spiffeId: SpiffeId; chain: X509Certificate[] } {
  let perSet = verificationCache.get(bundles);
  const key = chainKey(chainDer);
  const now = Date.now();
  const hit = perSet?.get(key);
  if (hit !== undefined && now >= hit.from && now <= hit.until) return hit;
  const result = verifyX509Svid(chainDer, bundles, { now: new Date(now) });
  // Shared by every later hit and handed to authorizers: frozen, so none can alter what others see.
  const verified = { spiffeId: result.spiffeId, chain: Object.freeze(result.chain) as X509Certificate[] };
  let from = Number.NEGATIVE_INFINITY;
  let until = Number.POSITIVE_INFINITY;
  for (const c of verified.chain) {
    from = Math.max(from, Date.parse(c.validFrom));
    until = Math.min(until, Date.parse(c.validTo));
  }
  const size = chainDer.reduce((n, d) => n + d.byteLength, 0);
  if (Number.isFinite(from) && Number.isFinite(until) && size <= MAX_CACHED_CHAIN_BYTES) {
    if (perSet === undefined) {
      perSet = new Map();
      verificationCache.set(bundles, perSet);
    }
    if (perSet.size >= MAX_CACHED_VERIFICATIONS) perSet.clear();
    perSet.set(key, { spiffeId: verified.spiffeId, chain: verified.chain, from, until });
  }
  return verified;
}

/** The result of a successful peer check. */
export interface VerifiedPeer {
  /** The peer's SPIFFE ID. */
  readonly spiffeId: SpiffeId;
  /** The verified chain, leaf first, ending at the bundle authority. */
  readonly chain: readonly X509Certificate[];
}

/**
 * Verifies a peer chain against the bundle of the leaf's own trust domain (every X509-SVID rule,
 * via `verifyX509Svid`) and runs the authorizer.
 *
 * @throws IdentityError `tls-peer-no-certificate`, `tls-peer-untrusted` (the SVID rule that
 *   failed in the message, its code in `details.reason`) or `tls-peer-unauthorized`.
 * @internal
 */
export function verifyPeerChain(
  chainDer: readonly Uint8Array[],
  bundles: BundleSet,
  authorizer: Authorizer,
  role: 'client' | 'server',
): VerifiedPeer {
  if (chainDer.length === 0) {
    throw new IdentityError('tls-peer-no-certificate', `the ${role} presented no certificate`);
  }
  let verified: { spiffeId: SpiffeId; chain: X509Certificate[] };
  try {
    verified = verifyCached(chainDer, bundles);
  } catch (err) {
    const code = err instanceof IdentityError ? err.code : 'unknown';
    throw new IdentityError(
      'tls-peer-untrusted',
      `${role} X509-SVID refused: ${(err as Error)?.message ?? String(err)}`,
      {
        cause: err,
        details: { reason: code, role },
      },
    );
  }
  authorizePeer(authorizer, verified.spiffeId, verified.chain);
  return { spiffeId: verified.spiffeId, chain: verified.chain };
}

/** Any thrown value as an IdentityError (unknown failures fail closed under `fallbackCode`). @internal */
export function asIdentityError(err: unknown, fallbackCode: string): IdentityError {
  if (err instanceof IdentityError) return err;
  return new IdentityError(fallbackCode, (err as Error)?.message ?? String(err), { cause: err });
}

/**
 * Checks a freshly handshaken socket in manual mode (`rejectUnauthorized: false`): OpenSSL's
 * verdict against the pooled roots must be positive **and** our per-trust-domain verification
 * and the authorizer must pass. Returns the verified peer or throws the reason.
 *
 * @internal
 */
export function checkHandshakenSocket(
  socket: TLSSocket,
  bundles: BundleSet,
  authorizer: Authorizer,
  role: 'client' | 'server',
): VerifiedPeer {
  const chain = peerChainDer(socket.getPeerCertificate(true));
  const peer = verifyPeerChain(chain, bundles, authorizer, role);
  if (socket.authorized !== true) {
    // Our verifier accepted what OpenSSL refused: fail closed, naming OpenSSL's reason.
    const why = String(socket.authorizationError ?? 'unknown');
    throw new IdentityError('tls-peer-chain-invalid', `OpenSSL refused the ${role} chain: ${why}`, {
      details: { opensslError: why, role },
    });
  }
  return peer;
}
