/**
 * `@tachikoma/identity`: SPIFFE workload identity for TypeScript.
 *
 * The root entry point re-exports the identity core. Heavier parts (the Workload API client,
 * mTLS helpers, the policy engine) live on their own subpaths so that a program which only
 * validates tokens never loads gRPC or WebAssembly:
 *
 * - `@tachikoma/identity/spiffeid`: SPIFFE IDs, trust domains, matchers
 * - `@tachikoma/identity/bundle`: X.509, JWT and SPIFFE bundles
 * - `@tachikoma/identity/svid`: X509-SVID and JWT-SVID parsing and verification
 * - `@tachikoma/identity/workload`: the Workload API client and sources
 * - `@tachikoma/identity/tls`: SPIFFE mTLS for node:tls, https and fetch
 * - `@tachikoma/identity/policy`: in-process Rego (OPA wasm)
 *
 * @packageDocumentation
 */

export * from './bundle/index.js';
export type { IdentityErrorOptions } from './errors/index.js';
export { IdentityError, isIdentityError } from './errors/index.js';
export * from './spiffeid/index.js';
export * from './svid/index.js';
