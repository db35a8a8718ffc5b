/**
 * `@tachikoma/identity`: SPIFFE workload identity for TypeScript.
 *
 * The root entry point re-exports what an agent needs: the identity core (SPIFFE IDs, bundles,
 * SVIDs), the Workload API client and sources, and the mTLS helpers. Every concept also has its
 * own subpath; a program that only validates tokens imports `@tachikoma/identity/svid` and never
 * loads gRPC or WebAssembly. The policy engine, HTTP/gRPC adapters, observability and the dev
 * server are on subpaths only:
 *
 * - `@tachikoma/identity/spiffeid`: SPIFFE IDs, trust domains, matchers
 * - `@tachikoma/identity/bundle`: X.509, JWT and SPIFFE bundles
 * - `@tachikoma/identity/svid`: X509-SVID and JWT-SVID parsing and verification
 * - `@tachikoma/identity/workload`: the Workload API client and sources
 * - `@tachikoma/identity/tls`: SPIFFE mTLS for node:tls, https and fetch
 * - `@tachikoma/identity/policy`: in-process Rego (OPA wasm)
 * - `@tachikoma/identity/http`, `/grpc`: https, undici, Express, Fastify and gRPC adapters,
 *   JWT-SVID middleware and the token bridge
 * - `@tachikoma/identity/health`, `/observability`: identity health, audit events, metrics
 * - `@tachikoma/identity/dev`: the development Workload API server (not for production)
 *
 * @packageDocumentation
 */

export * from './bundle/index.js';
export type { IdentityErrorOptions } from './errors/index.js';
export { IdentityError, isIdentityError } from './errors/index.js';
export * from './spiffeid/index.js';
export * from './svid/index.js';
export * from './tls/index.js';
export * from './workload/index.js';
