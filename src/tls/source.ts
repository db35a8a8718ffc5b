import { BundleSet, X509Bundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import { X509Svid } from '../svid/index.js';

/**
 * What the TLS helpers need from an identity source: the X509-SVID to present, the bundles to
 * verify peers with (own trust domain and federated ones), and optionally change events.
 *
 * `X509Source` from `@tachikoma/identity/workload` fits this shape; so does
 * {@link staticX509Source} for an SVID and bundles loaded from files.
 */
export interface X509SvidSource {
  /** The SVID to present now. May throw while the source has none. */
  getX509Svid(): X509Svid;
  /** Every trusted X.509 bundle now: own trust domain and federated ones. */
  getX509BundleSet(): BundleSet;
  /**
   * Subscribes to changes. The helpers listen to `update`, `rotated` and `bundleUpdated` and
   * coalesce them: one rebuild per change, whichever of them the source emits.
   */
  on?(event: 'update' | 'rotated' | 'bundleUpdated', listener: (...args: unknown[]) => void): unknown;
  /** Removes a listener added with `on`. */
  off?(event: 'update' | 'rotated' | 'bundleUpdated', listener: (...args: unknown[]) => void): unknown;
}

/** The events the helpers subscribe to on a source. @internal */
export const SOURCE_EVENTS: readonly ('update' | 'rotated' | 'bundleUpdated')[] = [
  'update',
  'rotated',
  'bundleUpdated',
];

/**
 * A source that never changes: one SVID and fixed bundles (for SVIDs read from disk, tests and
 * tools). Its `update()` swaps both and notifies the helpers built on it, which rotate as they
 * would for a Workload API source.
 */
export interface StaticX509Source extends X509SvidSource {
  /**
   * Replaces the SVID and/or the bundles and notifies subscribers.
   *
   * @param next - the new SVID and/or bundles; omitted parts stay.
   */
  update(next: {
    svid?: X509Svid | undefined;
    bundles?: BundleSet | X509Bundle | readonly X509Bundle[] | undefined;
  }): void;
}

function toBundleSet(bundles: BundleSet | X509Bundle | readonly X509Bundle[]): BundleSet {
  if (bundles instanceof BundleSet) return bundles;
  if (bundles instanceof X509Bundle) return new BundleSet(bundles);
  if (Array.isArray(bundles) && bundles.every((b) => b instanceof X509Bundle)) {
    return new BundleSet(...(bundles as readonly X509Bundle[]));
  }
  throw new IdentityError(
    'tls-invalid-argument',
    'bundles must be a BundleSet, an X509Bundle or an array of X509Bundles',
  );
}

/**
 * Wraps a fixed SVID and bundles as an {@link X509SvidSource}.
 *
 * @param svid - the SVID to present.
 * @param bundles - the trusted bundles (a BundleSet, one X509Bundle, or several).
 * @throws IdentityError `tls-invalid-argument` for anything else.
 *
 * @example
 * ```ts
 * const svid = X509Svid.parse(readFileSync('svid.pem'), readFileSync('svid.key'));
 * const bundle = X509Bundle.parse('example.org', readFileSync('bundle.pem'));
 * const source = staticX509Source(svid, bundle);
 * ```
 */
export function staticX509Source(
  svid: X509Svid,
  bundles: BundleSet | X509Bundle | readonly X509Bundle[],
): StaticX509Source {
  if (!(svid instanceof X509Svid))
    throw new IdentityError('tls-invalid-argument', 'svid must be an X509Svid');
  let currentSvid = svid;
  let currentBundles = toBundleSet(bundles);
  const listeners = new Set<(...args: unknown[]) => void>();
  return {
    getX509Svid: () => currentSvid,
    getX509BundleSet: () => currentBundles,
    on(event, listener) {
      if (event === 'update') listeners.add(listener);
    },
    off(event, listener) {
      if (event === 'update') listeners.delete(listener);
    },
    update(next) {
      if (next.svid !== undefined) {
        if (!(next.svid instanceof X509Svid))
          throw new IdentityError('tls-invalid-argument', 'svid must be an X509Svid');
        currentSvid = next.svid;
      }
      if (next.bundles !== undefined) currentBundles = toBundleSet(next.bundles);
      for (const l of [...listeners]) l();
    },
  };
}

/** Checks that `value` has the {@link X509SvidSource} shape. @internal */
export function checkSource(value: unknown): X509SvidSource {
  const s = value as Partial<X509SvidSource> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.getX509Svid !== 'function' ||
    typeof s.getX509BundleSet !== 'function'
  ) {
    throw new IdentityError(
      'tls-invalid-argument',
      'source must provide getX509Svid() and getX509BundleSet() (an X509Source or staticX509Source())',
    );
  }
  return s as X509SvidSource;
}
