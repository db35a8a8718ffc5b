/**
 * `@tachikoma/identity/bundle`: the trusted authorities of trust domains.
 *
 * - {@link X509Bundle}: CA certificates (PEM or the Workload API's concatenated DER);
 * - {@link JwtBundle}: JWT signing keys (JWK Set), imported once per bundle;
 * - {@link SpiffeBundle}: the SPIFFE federation format holding both, with sequence number and
 *   refresh hint;
 * - {@link BundleSet}: bundles of several trust domains, looked up by trust domain.
 *
 * See `docs/bundles.md`.
 *
 * @packageDocumentation
 */

export { BundleSet } from './bundle-set.js';
export type { SkippedBundleKey } from './common.js';
export {
  MAX_BUNDLE_CERTIFICATES,
  MAX_BUNDLE_JSON_BYTES,
  MAX_BUNDLE_KEYS,
  MAX_CERTIFICATE_BYTES,
  MAX_X509_BUNDLE_BYTES,
} from './common.js';
export { MAX_RSA_BITS, MIN_RSA_BITS } from './jwk.js';
export type { JwkSet } from './jwt-bundle.js';
export { JwtBundle } from './jwt-bundle.js';
export type { SpiffeBundleParts } from './spiffe-bundle.js';
export { SpiffeBundle } from './spiffe-bundle.js';
export { X509Bundle } from './x509-bundle.js';
