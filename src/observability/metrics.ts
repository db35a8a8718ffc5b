import type { Attributes, Counter, Histogram, Meter, ObservableGauge } from '@opentelemetry/api';

/** Result label of an authentication attempt. */
export type AuthOutcome = 'success' | 'failure';

/**
 * The SDK's metrics, recorded through an OpenTelemetry `Meter` the application provides
 * (`@opentelemetry/api` is an optional peer dependency; without a meter every call is a no-op).
 *
 * | instrument | kind | labels |
 * |---|---|---|
 * | `identity_auth_attempts_total` | counter | `service`, `result` |
 * | `identity_svid_rotations_total` | counter | `workload_type` |
 * | `identity_policy_evaluation_duration_seconds` | histogram | `policy`, `decision` |
 * | `identity_svid_expiry_seconds` | gauge: seconds until the current SVID expires | `spiffe_id` |
 */
export class IdentityMetrics {
  private readonly authAttempts: Counter | undefined;
  private readonly rotations: Counter | undefined;
  private readonly policyDuration: Histogram | undefined;
  private readonly expiryGauge: ObservableGauge | undefined;
  private readonly expiries = new Map<string, Date>();

  /** @param meter - an OpenTelemetry meter; omit for no-op metrics. */
  constructor(meter?: Meter | undefined) {
    if (!meter) return;
    this.authAttempts = meter.createCounter('identity_auth_attempts_total', {
      description: 'Authentication attempts (mTLS peers, JWT-SVIDs) by service and result',
    });
    this.rotations = meter.createCounter('identity_svid_rotations_total', {
      description: 'SVID rotations observed by this process',
    });
    this.policyDuration = meter.createHistogram('identity_policy_evaluation_duration_seconds', {
      description: 'In-process Rego evaluation time',
      unit: 's',
      advice: {
        explicitBucketBoundaries: [
          0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
        ],
      },
    });
    this.expiryGauge = meter.createObservableGauge('identity_svid_expiry_seconds', {
      description: 'Seconds until the current SVID expires',
      unit: 's',
    });
    this.expiryGauge.addCallback((result) => {
      const now = Date.now();
      for (const [id, at] of this.expiries) result.observe((at.getTime() - now) / 1000, { spiffe_id: id });
    });
  }

  /** Counts one authentication attempt. */
  recordAuthAttempt(service: string, result: AuthOutcome): void {
    this.authAttempts?.add(1, { service, result });
  }

  /** Counts one SVID rotation. */
  recordRotation(workloadType: string, attributes?: Attributes | undefined): void {
    this.rotations?.add(1, { ...attributes, workload_type: workloadType });
  }

  /** Records one policy evaluation. */
  recordPolicyEvaluation(policy: string, decision: string, seconds: number): void {
    this.policyDuration?.record(seconds, { policy, decision });
  }

  /** Sets (or with `undefined` clears) the expiry reported for `spiffeId`. */
  setSvidExpiry(spiffeId: string, expiresAt: Date | undefined): void {
    if (expiresAt) this.expiries.set(spiffeId, expiresAt);
    else this.expiries.delete(spiffeId);
  }
}
