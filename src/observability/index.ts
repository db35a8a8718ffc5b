/**
 * Observability for `@tachikoma/identity`: the logger interface the SDK writes to, audit events
 * (`auth_attempt`, `auth_result`) on `node:diagnostics_channel`, and metrics through an
 * OpenTelemetry meter. Nothing here is global and everything is silent by default.
 *
 * @packageDocumentation
 */
export type { AuditOptions, AuthAttemptEvent, AuthMechanism, AuthResultEvent } from './audit.js';
export { Auditor } from './audit.js';
export { channelNames, publish } from './channels.js';
export type { LogFields, Logger, LogMethod } from './logger.js';
export { createDebugLogger, silentLogger } from './logger.js';
export type {
  AuthOutcome,
  ExpiringSvid,
  PolicyEvaluationSample,
  RotatingSvidSource,
  RotationSample,
  WatchX509SourceOptions,
} from './metrics.js';
export { IdentityMetrics, workloadTypeOf } from './metrics.js';
