/**
 * `@tachikoma/identity/grpc`: SPIFFE mTLS for @grpc/grpc-js.
 *
 * - {@link createGrpcChannelCredentials}: client credentials; servers are verified per trust
 *   domain and authorized by SPIFFE ID.
 * - {@link createGrpcServerCredentials}: server credentials; each call's client is verified and
 *   authorized by an interceptor, the handler reads it with {@link getGrpcPeerSpiffeId}.
 *
 * Both rotate with the source through grpc-js's experimental CertificateProvider API (grpc-js
 * 1.14.x, pinned). See `docs/mtls.md`.
 *
 * @packageDocumentation
 */

export type {
  GrpcServerCredentialsOptions,
  SpiffeChannelCredentials,
  SpiffeServerCredentials,
} from './credentials.js';
export {
  createGrpcChannelCredentials,
  createGrpcServerCredentials,
  getGrpcPeerSpiffeId,
} from './credentials.js';
