import type { Attributes, Counter, Histogram, Meter, ObservableGauge } from '@opentelemetry/api';

/** Result label of an authentication attempt. */
export type AuthOutcome = 'success' | 'failure';

/** One policy evaluation as a policy engine's `metrics` hook reports it (`PolicyEngine` fits). */
export interface PolicyEvaluationSample {
  /** The policy's name. */
  readonly policy: string;
  /** Outcome label: `allow`, `deny`, `undefined`, `value` or `error`. */
  readonly decision: string;
  /** Evaluation time in seconds. */
  readonly durationSeconds: number;
}

/** An SVID as the metrics see it: its SPIFFE ID and expiry. */
export interface ExpiringSvid {
  /** The SVID's SPIFFE ID (a `SpiffeId` or its string). */
  readonly spiffeId: {
    /** The SPIFFE ID as a string. */
    toString(): string;
  };
  /** When it expires. */
  readonly expiresAt: Date;
}

/** A rotation as an X.509 source reports it (`X509SvidRotation` fits). */
export interface RotationSample {
  /** The rotated identity's SPIFFE ID. */
  readonly spiffeId: string;
  /** When the new SVID expires. */
  readonly newExpiresAt: Date;
}

/**
 * What {@link IdentityMetrics.watchX509Source} needs from a source: `rotated` and `update` events
 * and the current SVIDs. `X509Source` from `@tachikoma/identity/workload` fits.
 */
export interface RotatingSvidSource {
  /** Every current SVID (empty after a redaction). */
  getX509Svids(): readonly ExpiringSvid[];
  /** Subscribes to `rotated`: one event per replaced SVID. */
  on(event: 'rotated', listener: (rotation: RotationSample) => void): unknown;
  /** Subscribes to `update`: any change of the source's state. */
  on(event: 'update', listener: () => void): unknown;
  /** Removes a `rotated` listener. */
  off(event: 'rotated', listener: (rotation: RotationSample) => void): unknown;
  /** Removes an `update` listener. */
  off(event: 'update', listener: () => void): unknown;
}

/** Options of {@link IdentityMetrics.watchX509Source}. */
export interface WatchX509SourceOptions {
  /**
   * The `workload_type` label of rotations: a fixed value, or a function of the rotated SPIFFE ID.
   * Default: the first path segment when it is `agent`, `pod` or `service` (the Tachikoma naming
   * scheme), else `other`.
   */
  workloadType?: string | ((spiffeId: string) => string) | undefined;
}

/**
 * The `workload_type` of a SPIFFE ID string under the Tachikoma naming scheme: `agent`, `pod`,
 * `service`, or `other`.
 *
 * @param spiffeId - a SPIFFE ID string (`spiffe://td/agent/a1`).
 */
export function workloadTypeOf(spiffeId: string): string {
  const m = /^spiffe:\/\/[^/]+\/([^/]+)/.exec(String(spiffeId));
  const first = m?.[1];
  return first === 'agent' || first === 'pod' || first === 'service' ? first : 'other';
}

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

  /**
   * A `metrics` hook for a policy engine: every evaluation lands in
   * `identity_policy_evaluation_duration_seconds{policy,decision}`.
   *
   * @example
   * ```ts
   * const engine = await PolicyEngine.fromBundleFile('authz.tar.gz', { name: 'authz', metrics: metrics.policyHook() });
   * ```
   */
  policyHook(): (sample: PolicyEvaluationSample) => void {
    return (sample) => this.recordPolicyEvaluation(sample.policy, sample.decision, sample.durationSeconds);
  }

  /**
   * Follows an X.509 source: each `rotated` event counts one rotation in
   * `identity_svid_rotations_total{workload_type}`, and `identity_svid_expiry_seconds` reports
   * every SVID the source holds (an SVID withdrawn by the agent disappears from the gauge).
   *
   * @param source - the source (an `X509Source`).
   * @param opts - how to label `workload_type`.
   * @returns a function that stops following the source and clears its SVIDs from the gauge.
   */
  watchX509Source(source: RotatingSvidSource, opts: WatchX509SourceOptions = {}): () => void {
    const label = opts.workloadType ?? workloadTypeOf;
    const typeOf = typeof label === 'function' ? label : (): string => label;
    let shown = new Set<string>();
    const refresh = (): void => {
      let svids: readonly ExpiringSvid[];
      try {
        svids = source.getX509Svids();
      } catch {
        svids = []; // a closed source holds nothing
      }
      const next = new Set<string>();
      for (const s of svids) {
        const id = String(s.spiffeId);
        next.add(id);
        this.setSvidExpiry(id, s.expiresAt);
      }
      for (const id of shown) if (!next.has(id)) this.setSvidExpiry(id, undefined);
      shown = next;
    };
    const onRotated = (r: RotationSample): void => {
      this.recordRotation(typeOf(r.spiffeId));
    };
    const onUpdate = (): void => refresh();
    source.on('rotated', onRotated);
    source.on('update', onUpdate);
    refresh();
    return () => {
      source.off('rotated', onRotated);
      source.off('update', onUpdate);
      for (const id of shown) this.setSvidExpiry(id, undefined);
      shown = new Set();
    };
  }
}
