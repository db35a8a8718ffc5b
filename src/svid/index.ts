/**
 * `@tachikoma/identity/svid`: X509-SVID and JWT-SVID parsing and verification.
 *
 * - {@link X509Svid.parse} reads your own X509-SVID (chain + key); {@link verifyX509Svid}
 *   verifies a peer's chain against the bundle of the peer's own trust domain;
 *   {@link parseX509SvidLeaf} applies the leaf rules to one certificate.
 * - {@link validateJwtSvid} validates a JWT-SVID received from a peer;
 *   {@link parseJwtSvidInsecure} reads your own token from the Workload API.
 *
 * Every rule of the SPIFFE X509-SVID and JWT-SVID specifications is checked; failures are
 * `IdentityError`s with `x509svid-` and `jwtsvid-` codes (see `docs/svids.md`).
 *
 * @packageDocumentation
 */

export type { JwtSvidAlgorithm, ParseJwtSvidOptions, ValidateJwtSvidOptions } from './jwt-svid.js';
export { JWT_SVID_ALGORITHMS, JwtSvid, parseJwtSvidInsecure, validateJwtSvid } from './jwt-svid.js';
export { SVID_LIMITS } from './limits.js';
export type {
  CertificateChainInput,
  VerifyX509SvidOptions,
  X509SvidDer,
  X509SvidParseOptions,
  X509SvidPem,
  X509SvidVerification,
} from './x509-svid.js';
export { parseX509SvidLeaf, verifyX509Svid, X509Svid } from './x509-svid.js';
