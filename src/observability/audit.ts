import { channelNames, publish } from './channels.js';
import { type Logger, silentLogger } from './logger.js';
import type { IdentityMetrics } from './metrics.js';

/** How a caller authenticated. */
export type AuthMechanism = 'mtls' | 'jwt-svid' | 'policy';

/** `auth_attempt`: a request arrived and authentication starts. */
export interface AuthAttemptEvent {
  /** Always `auth_attempt`. */
  readonly event: 'auth_attempt';
  /** How the caller authenticates (or, for `policy`, is authorized). */
  readonly mechanism: AuthMechanism;
  /** The service doing the check (the metrics' `service` label). */
  readonly service: string;
  /** HTTP method, when the check is about a request. */
  readonly method?: string | undefined;
  /** Request path without the query string, when the check is about a request. */
  readonly path?: string | undefined;
  /** The claimed or presented SPIFFE ID, when known before verification. */
  readonly spiffeId?: string | undefined;
}

/** `auth_result`: the outcome of one authentication or authorization. */
export interface AuthResultEvent {
  /** Always `auth_result`. */
  readonly event: 'auth_result';
  /** How the caller authenticated (or, for `policy`, was authorized). */
  readonly mechanism: AuthMechanism;
  /** The service doing the check (the metrics' `service` label). */
  readonly service: string;
  /** `success` or `failure`. */
  readonly result: 'success' | 'failure';
  /** The HTTP status sent (or that would be sent). */
  readonly status: number;
  /** The caller's SPIFFE ID, when it is known (verified for `success`). */
  readonly spiffeId?: string | undefined;
  /** HTTP method, when the check is about a request. */
  readonly method?: string | undefined;
  /** Request path without the query string, when the check is about a request. */
  readonly path?: string | undefined;
  /** How long the check took, in milliseconds. */
  readonly durationMs: number;
  /** Why: an error code or the policy's reason. */
  readonly reason?: string | undefined;
}

/** Where audit events go: a logger, the diagnostics channels and metrics. */
export interface AuditOptions {
  /** pino-compatible logger; silent by default. */
  logger?: Logger | undefined;
  /** Metrics to count attempts in. */
  metrics?: IdentityMetrics | undefined;
}

/**
 * Emits structured audit events: each one is logged (info for success, warn for failure) and
 * published on `node:diagnostics_channel`; authentication results (`mtls`, `jwt-svid`) are also
 * counted in `identity_auth_attempts_total`. Policy decisions are not authentication attempts:
 * they are counted by `identity_policy_evaluation_duration_seconds` (see
 * {@link IdentityMetrics.policyHook}).
 */
export class Auditor {
  private readonly logger: Logger;
  private readonly metrics: IdentityMetrics | undefined;

  /** @param options - logger and metrics. */
  constructor(options: AuditOptions = {}) {
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.metrics;
  }

  /** Reports an `auth_attempt`. */
  attempt(event: Omit<AuthAttemptEvent, 'event'>): void {
    const e: AuthAttemptEvent = { event: 'auth_attempt', ...event };
    this.logger.debug(e, 'auth_attempt');
    publish(channelNames.authAttempt, e);
  }

  /** Reports an `auth_result`; counts it when it is an authentication (not a policy decision). */
  result(event: Omit<AuthResultEvent, 'event'>): void {
    const e: AuthResultEvent = { event: 'auth_result', ...event };
    if (e.result === 'success') this.logger.info(e, 'auth_result');
    else this.logger.warn(e, 'auth_result');
    publish(channelNames.authResult, e);
    if (e.mechanism !== 'policy') this.metrics?.recordAuthAttempt(e.service, e.result);
  }
}
