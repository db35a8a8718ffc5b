import { channelNames, publish } from './channels.js';
import { type Logger, silentLogger } from './logger.js';
import type { IdentityMetrics } from './metrics.js';

/** How a caller authenticated. */
export type AuthMechanism = 'mtls' | 'jwt-svid' | 'policy';

/** `auth_attempt`: a request arrived and authentication starts. */
export interface AuthAttemptEvent {
  readonly event: 'auth_attempt';
  readonly mechanism: AuthMechanism;
  readonly service: string;
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  /** The claimed or presented SPIFFE ID, when known before verification. */
  readonly spiffeId?: string | undefined;
}

/** `auth_result`: the outcome of one authentication or authorization. */
export interface AuthResultEvent {
  readonly event: 'auth_result';
  readonly mechanism: AuthMechanism;
  readonly service: string;
  readonly result: 'success' | 'failure';
  /** The HTTP status sent (or that would be sent). */
  readonly status: number;
  readonly spiffeId?: string | undefined;
  readonly method?: string | undefined;
  readonly path?: string | undefined;
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
 * Emits structured audit events: each one is logged (info for success, warn for failure),
 * published on `node:diagnostics_channel` and counted in `identity_auth_attempts_total`.
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

  /** Reports an `auth_result` and counts it. */
  result(event: Omit<AuthResultEvent, 'event'>): void {
    const e: AuthResultEvent = { event: 'auth_result', ...event };
    if (e.result === 'success') this.logger.info(e, 'auth_result');
    else this.logger.warn(e, 'auth_result');
    publish(channelNames.authResult, e);
    this.metrics?.recordAuthAttempt(e.service, e.result);
  }
}
