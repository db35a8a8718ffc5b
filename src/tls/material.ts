import { constants } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { BundleSet } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import type { X509Svid } from '../svid/index.js';
import { SOURCE_EVENTS, type X509SvidSource } from './source.js';
import { asIdentityError } from './verify.js';

/** TLS protocol versions the helpers accept as a minimum. */
export type MinTlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** Options shared by every mTLS helper. */
export interface MtlsOptions {
  /**
   * Lowest TLS version to negotiate. Default `'TLSv1.3'`; `'TLSv1.2'` only for peers that cannot
   * do 1.3. Older versions are never accepted.
   */
  minTlsVersion?: MinTlsVersion | undefined;
}

/** One snapshot of the TLS material built from a source. @internal */
export interface TlsMaterial {
  readonly svid: X509Svid;
  readonly bundles: BundleSet;
  /** Bumped on each rebuild. */
  readonly epoch: number;
  /** The full context options: identity, pooled roots for OpenSSL, protocol versions. */
  readonly contextOptions: SecureContextOptions;
  /** The client SecureContext, built on first use and shared by every connection of the epoch. */
  clientContext(): SecureContext;
}

/** Checks and normalises the `minTlsVersion` option. @internal */
export function readMinVersion(v: unknown): MinTlsVersion {
  if (v === undefined) return 'TLSv1.3';
  if (v === 'TLSv1.2' || v === 'TLSv1.3') return v;
  throw new IdentityError(
    'tls-invalid-argument',
    `minTlsVersion must be 'TLSv1.3' or 'TLSv1.2', got ${JSON.stringify(v) ?? String(v)} (TLS 1.0 and 1.1 are never allowed)`,
  );
}

/** `SSL_OP_NO_RENEGOTIATION` (TLS 1.2 only; TLS 1.3 has no renegotiation). */
const NO_RENEGOTIATION: number =
  (constants as unknown as Record<string, number>)['SSL_OP_NO_RENEGOTIATION'] ?? 0;

/** `secureOptions` for servers: no renegotiation, and no session tickets unless resumption is wanted. @internal */
export function serverSecureOptions(sessionResumption: boolean): number {
  return NO_RENEGOTIATION | (sessionResumption ? 0 : constants.SSL_OP_NO_TICKET);
}

const pemCache = new WeakMap<X509Svid, { cert: string; key: string }>();

function svidPem(svid: X509Svid): { cert: string; key: string } {
  let pem = pemCache.get(svid);
  if (pem === undefined) {
    const m = svid.marshal();
    pem = { cert: m.certificatesPem, key: m.privateKeyPem };
    pemCache.set(svid, pem);
  }
  return pem;
}

const caCache = new WeakMap<BundleSet, string[]>();

/** Every X.509 authority of every trust domain, as PEM: OpenSSL's first (pooled) check only. */
function pooledRoots(bundles: BundleSet): string[] {
  let ca = caCache.get(bundles);
  if (ca === undefined) {
    ca = [];
    for (const b of bundles.x509Bundles) for (const a of b.authorities) ca.push(a.toString());
    caCache.set(bundles, ca);
  }
  return ca;
}

/**
 * Follows a source and turns its SVID and bundles into TLS material, once per change: the
 * source's `update`/`rotated`/`bundleUpdated` events (coalesced in a microtask) mark it stale,
 * and it rebuilds the material and notifies its listeners. A failed rebuild keeps the previous
 * material and reports the error.
 *
 * @internal
 */
export class TlsMaterialTracker {
  readonly #source: X509SvidSource;
  readonly #minVersion: MinTlsVersion;
  readonly #changeListeners = new Set<(m: TlsMaterial) => void>();
  readonly #errorListeners = new Set<(e: IdentityError) => void>();
  readonly #onSourceEvent: () => void;
  #current: TlsMaterial | undefined;
  #epoch = 0;
  #notifiedEpoch = 0;
  #scheduled = false;
  #closed = false;

  constructor(source: X509SvidSource, minVersion: MinTlsVersion) {
    this.#source = source;
    this.#minVersion = minVersion;
    this.#onSourceEvent = () => {
      if (this.#scheduled || this.#closed) return;
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.refresh();
      });
    };
    if (typeof source.on === 'function') {
      for (const e of SOURCE_EVENTS) source.on(e, this.#onSourceEvent);
    }
  }

  /** The minimum protocol version this tracker builds for. */
  get minVersion(): MinTlsVersion {
    return this.#minVersion;
  }

  /**
   * The current material, built now if needed.
   *
   * @throws IdentityError `tls-no-svid` when the source has no SVID yet, `tls-closed` after close.
   */
  current(): TlsMaterial {
    if (this.#closed) throw new IdentityError('tls-closed', 'this mTLS helper was closed');
    const svid = this.#readSvid();
    const bundles = this.#readBundles();
    const cur = this.#current;
    if (cur !== undefined && cur.svid === svid && cur.bundles === bundles) return cur;
    this.#current = this.#build(svid, bundles);
    return this.#current;
  }

  /** Re-reads the source; notifies listeners when the SVID or the bundles changed. */
  refresh(): void {
    if (this.#closed) return;
    let next: TlsMaterial;
    try {
      next = this.current();
    } catch (err) {
      this.#emitError(asIdentityError(err, 'tls-rotation-failed'));
      return;
    }
    if (next.epoch === this.#notifiedEpoch) return;
    this.#notifiedEpoch = next.epoch;
    for (const l of [...this.#changeListeners]) {
      try {
        l(next);
      } catch (err) {
        this.#emitError(asIdentityError(err, 'tls-rotation-failed'));
      }
    }
  }

  /** Adds a change listener; returns a function that removes it. */
  onChange(listener: (m: TlsMaterial) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** Adds an error listener; returns a function that removes it. */
  onError(listener: (e: IdentityError) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /** Stops following the source. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (typeof this.#source.off === 'function') {
      for (const e of SOURCE_EVENTS) this.#source.off(e, this.#onSourceEvent);
    }
    this.#changeListeners.clear();
    this.#errorListeners.clear();
  }

  #emitError(e: IdentityError): void {
    for (const l of [...this.#errorListeners]) {
      try {
        l(e);
      } catch {
        // a listener's own failure must not break rotation
      }
    }
  }

  #readSvid(): X509Svid {
    try {
      const svid = this.#source.getX509Svid();
      if (svid === undefined || svid === null) throw new Error('the source returned no SVID');
      return svid;
    } catch (err) {
      throw new IdentityError(
        'tls-no-svid',
        `the source has no X509-SVID: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
        },
      );
    }
  }

  #readBundles(): BundleSet {
    try {
      const b = this.#source.getX509BundleSet();
      if (b === undefined || b === null || !Array.isArray(b.x509Bundles))
        throw new Error('the source returned no bundle set');
      return b;
    } catch (err) {
      throw new IdentityError(
        'tls-no-bundle',
        `the source has no X.509 bundles: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
        },
      );
    }
  }

  #build(svid: X509Svid, bundles: BundleSet): TlsMaterial {
    const pem = svidPem(svid);
    const contextOptions: SecureContextOptions = Object.freeze({
      key: pem.key,
      cert: pem.cert,
      ca: pooledRoots(bundles),
      minVersion: this.#minVersion,
      maxVersion: 'TLSv1.3',
      // Clients too: a TLS 1.2 server must not renegotiate into a certificate we never checked.
      secureOptions: NO_RENEGOTIATION,
    });
    let ctx: SecureContext | undefined;
    const epoch = ++this.#epoch;
    return Object.freeze({
      svid,
      bundles,
      epoch,
      contextOptions,
      clientContext(): SecureContext {
        if (ctx === undefined) {
          try {
            ctx = createSecureContext(contextOptions);
          } catch (err) {
            throw new IdentityError(
              'tls-context-failed',
              `cannot build a TLS context from the SVID: ${(err as Error).message}`,
              {
                cause: err,
              },
            );
          }
        }
        return ctx;
      },
    });
  }
}
