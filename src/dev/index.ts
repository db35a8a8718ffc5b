/**
 * `@tachikoma/identity/dev`: a SPIFFE Workload API server in your process, for development and
 * tests. **Not for production**: it attests nobody. See `docs/dev-server.md`.
 *
 * @packageDocumentation
 */

export type {
  DevAuthorityInfo,
  DevFault,
  DevFaultScope,
  DevFederatedBundle,
  DevIdentity,
  DevMalformedFault,
  DevPermissionDeniedFault,
  DevRpc,
  DevServerOptions,
  DevSlowFault,
  DevStatusFault,
  DevStreamEnd,
  DevUnavailableFault,
} from './server.js';
export { DevWorkloadServer } from './server.js';
