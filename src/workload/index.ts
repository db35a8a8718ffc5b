/**
 * `@tachikoma/identity/workload`: the SPIFFE Workload API.
 *
 * - {@link WorkloadAPIClient}: one-shot fetches and live watches of X.509 and JWT SVIDs and
 *   bundles, agent-side JWT validation, peer verification;
 * - {@link X509Source}, {@link JwtSource}, {@link BundleSource}: always-current views that
 *   rotate by themselves and emit typed events;
 * - addresses ({@link parseWorkloadAddress}), retry delays ({@link exponentialBackoff}) and the
 *   published retry table ({@link workloadRetryTable}).
 *
 * See `docs/workload-api.md`.
 *
 * @packageDocumentation
 */

export type { WorkloadAddress } from './address.js';
export { parseWorkloadAddress, resolveWorkloadAddress, SPIFFE_ENDPOINT_SOCKET } from './address.js';
export type { Backoff, BackoffFactory, ExponentialBackoffOptions } from './backoff.js';
export {
  constantBackoff,
  defaultBackoff,
  defaultNoIdentityBackoff,
  exponentialBackoff,
} from './backoff.js';
export type { BundleSourceEvents, BundleSourceOptions } from './bundle-source.js';
export { BundleSource } from './bundle-source.js';
export type {
  FetchJwtSvidParams,
  FetchJwtSvidsParams,
  ValidatePeerOptions,
  WorkloadAPIClientOptions,
} from './client.js';
export { WorkloadAPIClient } from './client.js';
export type { JwtSourceEvents, JwtSourceOptions } from './jwt-source.js';
export { JwtSource } from './jwt-source.js';
export type { WorkloadLimits } from './parse.js';
export { defaultWorkloadLimits } from './parse.js';
export type { RetryAction } from './retry.js';
export { retryActionFor, workloadRetryTable } from './retry.js';
export type { SourceOptions } from './source-common.js';
export { DEFAULT_INITIAL_SYNC_TIMEOUT_MS, workloadChannels } from './source-common.js';
export type {
  CallOptions,
  HintSelector,
  JwtSvidSelector,
  SelectableSvid,
  SpiffeIdSelector,
  SvidPicker,
  SvidSelector,
  X509Context,
  X509SvidSelector,
} from './types.js';
export { selectSvid } from './types.js';
export type { ReconnectInfo, Redaction, RedactionReason, WatchEvents, WatchOptions } from './watch.js';
export { Watch } from './watch.js';
export type {
  BundleChange,
  WorkloadIdentity,
  X509SourceEvents,
  X509SourceOptions,
  X509SvidRotation,
} from './x509-source.js';
export { X509Source } from './x509-source.js';
