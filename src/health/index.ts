/**
 * `@tachikoma/identity/health`: identity health for probes and dashboards.
 *
 * {@link identityHealth} checks that the SPIRE agent answers, the X509-SVID is valid, the policy
 * engines evaluate and the bundles are the agent's current ones, and serves the report at
 * `/health/identity` (200 healthy, 503 degraded). It imports nothing at run time beyond the
 * error type: sources, clients and engines are passed in. See `docs/health.md`.
 *
 * @packageDocumentation
 */

export type {
  AgentProbe,
  HealthJwtSource,
  HealthSvid,
  HealthX509Source,
  IdentityHealth,
  IdentityHealthCheck,
  IdentityHealthCheckName,
  IdentityHealthOptions,
  IdentityHealthReport,
  PolicyProbe,
  ProbedEngine,
} from './health.js';
export { identityHealth } from './health.js';
