/**
 * `@tachikoma/identity/http`: SPIFFE mTLS for https servers and clients, undici/`fetch`,
 * Express and Fastify.
 *
 * - {@link createMtlsServer}: an https server that verifies and authorizes every client and
 *   rotates with the source; {@link getRequestSpiffeId} gives the caller's ID.
 * - {@link MtlsAgent}: an `https.Agent` for SPIFFE mTLS clients (one per authorizer).
 * - {@link undiciConnector}: `new undici.Agent({ connect: undiciConnector(source, authorizer) })`.
 * - {@link spiffeIdMiddleware} (Express 5) and {@link fastifySpiffeId} (Fastify 5) put the
 *   caller's ID on the request.
 *
 * See `docs/mtls.md`.
 *
 * @packageDocumentation
 */

export type { MtlsAgentOptions } from './agent.js';
export { MtlsAgent } from './agent.js';
export type {
  ExpressLikeRequest,
  FastifyLikeInstance,
  FastifySpiffeIdOptions,
  FastifySpiffeIdPlugin,
  SpiffeIdMiddlewareOptions,
} from './frameworks.js';
export { fastifySpiffeId, spiffeIdMiddleware } from './frameworks.js';
export type {
  BundleSetSource,
  FastifyJwtInstance,
  FastifyJwtReply,
  FastifyJwtRequest,
  FastifyJwtSvidPlugin,
  JwtBundleProvider,
  JwtBundleSetSource,
  JwtSvidAcceptance,
  JwtSvidAuth,
  JwtSvidAuthResult,
  JwtSvidCaller,
  JwtSvidRefusal,
  RequestHeadersLike,
  RequireJwtSvidOptions,
} from './jwt-svid-auth.js';
export { getJwtSvidCaller, requireJwtSvid } from './jwt-svid-auth.js';
export type { CreateMtlsServerOptions } from './server.js';
export { createMtlsServer, getRequestSpiffeId } from './server.js';
export type {
  JwtSvidFetcher,
  TokenBridgeFailure,
  TokenBridgeHandlerOptions,
  TokenBridgeOptions,
  TokenResponse,
} from './token-bridge.js';
export { TokenBridge, tokenBridgeFailure } from './token-bridge.js';
export type {
  UndiciConnectCallback,
  UndiciConnector,
  UndiciConnectorOptions,
  UndiciConnectParams,
} from './undici.js';
export { undiciConnector } from './undici.js';
