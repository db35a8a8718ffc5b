/**
 * `@tachikoma/identity/tls`: SPIFFE mTLS for node:tls and https.
 *
 * - Authorizers decide which verified peers may talk to us: {@link authorizeAny},
 *   {@link authorizeId}, {@link authorizeOneOf}, {@link authorizeMemberOf},
 *   {@link authorizeMatcher}, combined with {@link authorizeAll} / {@link authorizeEither}.
 * - Servers: {@link attachMtls} (any tls/https/HTTP/2 secure server), {@link createMtlsTlsServer},
 *   {@link tlsServerOptions}. Clients: {@link MtlsClient}, {@link connectMtls},
 *   {@link tlsClientOptions}.
 * - {@link getPeerSpiffeId} gives the verified peer ID of a socket.
 * - {@link parseMtlsConfig} reads `{ enabled, allowedSpiffeIds, trustDomains, minTlsVersion }`.
 *
 * Peers are verified against the bundle of their **own** trust domain with every X509-SVID rule,
 * TLS 1.3 by default, no DNS hostname check, no client-side session resumption, and contexts
 * rotate with the source. See `docs/mtls.md`.
 *
 * @packageDocumentation
 */

export type { AuthorizationResult, Authorizer } from './authorizer.js';
export {
  authorizeAll,
  authorizeAny,
  authorizeEither,
  authorizeId,
  authorizeMatcher,
  authorizeMemberOf,
  authorizeOneOf,
  authorizePeer,
} from './authorizer.js';
export type { MtlsClientOptions, MtlsConnectOptions } from './client.js';
export { connectMtls, MtlsClient, tlsClientOptions } from './client.js';
export type { MtlsConfig, MtlsConfigInput } from './config.js';
export { MAX_MTLS_CONFIG_ENTRIES, parseMtlsConfig } from './config.js';
export type { MinTlsVersion, MtlsOptions } from './material.js';
export type { CreateMtlsTlsServerOptions, MtlsServerBinding, MtlsServerOptions } from './server.js';
export { attachMtls, createMtlsTlsServer, getMtlsBinding, tlsServerOptions } from './server.js';
export type { StaticX509Source, X509SvidSource } from './source.js';
export { staticX509Source } from './source.js';
export type { VerifiedPeer } from './verify.js';
export { getPeerSpiffeId } from './verify.js';
