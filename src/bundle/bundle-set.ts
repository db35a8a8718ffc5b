import { IdentityError } from '../errors/index.js';
import type { TrustDomain } from '../spiffeid/index.js';
import { toTrustDomain, typeName } from './common.js';
import { JwtBundle } from './jwt-bundle.js';
import { SpiffeBundle } from './spiffe-bundle.js';
import { X509Bundle } from './x509-bundle.js';

/**
 * The bundles of several trust domains, looked up by trust domain: at most one X.509 bundle and
 * one JWT bundle per trust domain. Verifiers pick the bundle of the SVID's **own** trust domain
 * from it, never a union of all authorities.
 *
 * A {@link SpiffeBundle} contributes both its X.509 and its JWT bundle. Immutable.
 *
 * @example
 * ```ts
 * const set = new BundleSet(localSpiffeBundle, X509Bundle.parse('partner.org', partnerPem));
 * set.getX509Bundle('partner.org')?.authorities;
 * set.getJwtBundle('partner.org'); // undefined: no JWT bundle given for partner.org
 * ```
 */
export class BundleSet {
  /** The X.509 bundles, in the order given (frozen). */
  readonly x509Bundles: readonly X509Bundle[];
  /** The JWT bundles, in the order given (frozen). */
  readonly jwtBundles: readonly JwtBundle[];
  readonly #x509 = new Map<string, X509Bundle>();
  readonly #jwt = new Map<string, JwtBundle>();
  readonly #trustDomains = new Map<string, TrustDomain>();

  /**
   * @param bundles - X.509, JWT and SPIFFE bundles; no trust domain may have two bundles of the
   *   same kind.
   * @throws IdentityError `bundle-set-duplicate-trust-domain` for a second bundle of one kind
   *   for a trust domain, `bundle-invalid-argument` for anything that is not a bundle.
   */
  constructor(...bundles: Array<X509Bundle | JwtBundle | SpiffeBundle>) {
    bundles.forEach((b: unknown, i) => {
      if (b instanceof SpiffeBundle) {
        this.#add(this.#x509, b.x509Bundle(), 'X.509');
        this.#add(this.#jwt, b.jwtBundle(), 'JWT');
      } else if (b instanceof X509Bundle) {
        this.#add(this.#x509, b, 'X.509');
      } else if (b instanceof JwtBundle) {
        this.#add(this.#jwt, b, 'JWT');
      } else {
        throw new IdentityError(
          'bundle-invalid-argument',
          `BundleSet argument ${i} must be an X509Bundle, JwtBundle or SpiffeBundle, got ${typeName(b)}`,
        );
      }
    });
    this.x509Bundles = Object.freeze([...this.#x509.values()]);
    this.jwtBundles = Object.freeze([...this.#jwt.values()]);
    Object.freeze(this);
  }

  #add<B extends X509Bundle | JwtBundle>(into: Map<string, B>, bundle: B, kind: string): void {
    const name = bundle.trustDomain.name;
    if (into.has(name)) {
      throw new IdentityError(
        'bundle-set-duplicate-trust-domain',
        `BundleSet: two ${kind} bundles for trust domain ${name}; give one bundle per trust domain and kind`,
      );
    }
    into.set(name, bundle);
    if (!this.#trustDomains.has(name)) this.#trustDomains.set(name, bundle.trustDomain);
  }

  /**
   * Returns the X.509 bundle of `td`, or `undefined`.
   *
   * @param td - a trust domain, or a string that `TrustDomain.parse` accepts.
   * @throws IdentityError when `td` is a string that is not a valid trust domain.
   */
  getX509Bundle(td: TrustDomain | string): X509Bundle | undefined {
    return this.#x509.get(toTrustDomain(td).name);
  }

  /**
   * Returns the JWT bundle of `td`, or `undefined`.
   *
   * @param td - a trust domain, or a string that `TrustDomain.parse` accepts.
   * @throws IdentityError when `td` is a string that is not a valid trust domain.
   */
  getJwtBundle(td: TrustDomain | string): JwtBundle | undefined {
    return this.#jwt.get(toTrustDomain(td).name);
  }

  /** Returns every trust domain with at least one bundle, in order of first appearance. */
  trustDomains(): TrustDomain[] {
    return [...this.#trustDomains.values()];
  }
}
