/**
 * Identity health: is this workload's identity in working order (agent reachable, SVID valid,
 * policy engine answering, bundles confirmed by the agent)?
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BundleSet } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';

/** The four checks of a report. */
export type IdentityHealthCheckName = 'spire_agent' | 'svid_valid' | 'opa_responsive' | 'bundle_fresh';

/** The outcome of one check: `skipped` when nothing to check was configured (it does not degrade). */
export interface IdentityHealthCheck {
  /** `pass`, `fail`, or `skipped` (not configured). */
  readonly status: 'pass' | 'fail' | 'skipped';
  /** What was seen, in words (failures start with the error code). */
  readonly detail: string;
}

/** What {@link IdentityHealth.check} returns (and the handler sends as JSON). */
export interface IdentityHealthReport {
  /** `healthy` when no check failed, else `degraded`. */
  readonly status: 'healthy' | 'degraded';
  /** Every check, by name. */
  readonly checks: Readonly<Record<IdentityHealthCheckName, IdentityHealthCheck>>;
  /** When the current X509-SVID expires (ISO 8601), or `null`. */
  readonly svid_expiry: string | null;
  /** When the X509-SVID last rotated in this process (ISO 8601), or `null` if it has not yet. */
  readonly last_rotation: string | null;
  /** When this report was made (ISO 8601). */
  readonly checked_at: string;
}

/**
 * The agent probe: a one-shot fetch of the bundles with a deadline. `WorkloadAPIClient` from
 * `@tachikoma/identity/workload` fits.
 */
export interface AgentProbe {
  /** Fetches the current X.509 bundles. */
  fetchX509Bundles(opts?: { timeoutMs?: number | undefined }): Promise<BundleSet>;
  /** Fetches the current JWT bundles. */
  fetchJwtBundles(opts?: { timeoutMs?: number | undefined }): Promise<BundleSet>;
}

/** An X509-SVID as health sees it. */
export interface HealthSvid {
  /** Its SPIFFE ID (a `SpiffeId`). */
  readonly spiffeId: {
    /** The SPIFFE ID as a string. */
    toString(): string;
  };
  /** When it expires. */
  readonly expiresAt: Date;
}

/** What health reads from an X.509 source (`X509Source` fits). */
export interface HealthX509Source {
  /** The SVID in use; throws when there is none (redacted, expired). */
  getX509Svid(): HealthSvid;
  /** The X.509 bundles in use. */
  getX509BundleSet(): BundleSet;
  /** Subscribes to `rotated`. */
  on?(event: 'rotated', listener: () => void): unknown;
  /** Removes a `rotated` listener. */
  off?(event: 'rotated', listener: () => void): unknown;
}

/** What health reads from a JWT source (`JwtSource` fits). */
export interface HealthJwtSource {
  /** The JWT bundles in use. */
  getJwtBundleSet(): BundleSet;
}

/** What a policy probe needs from an engine (`PolicyEngine` fits). */
export interface ProbedEngine {
  /**
   * Evaluates an entrypoint; throws when evaluation fails.
   *
   * @param entrypoint - e.g. `authz/allow`.
   * @param input - the input document.
   */
  evaluate(entrypoint: string, input?: unknown): unknown;
  /** The engine's entrypoints (the first is probed when the probe names none). */
  readonly entrypoints?: readonly string[] | undefined;
  /** The policy's name, for the check's detail. */
  readonly name?: string | undefined;
}

/** A policy engine to probe, with an entrypoint and input that must evaluate without error. */
export interface PolicyProbe {
  /** The engine (a `PolicyEngine`). */
  readonly engine: ProbedEngine;
  /** The entrypoint to evaluate; default the engine's first. */
  readonly entrypoint?: string | undefined;
  /** The input; default `{}`. */
  readonly input?: unknown;
}

/** Options of {@link identityHealth}. */
export interface IdentityHealthOptions {
  /** The Workload API client to probe (`spire_agent`, and the bundle comparison of `bundle_fresh`). */
  agent?: AgentProbe | undefined;
  /** The X.509 source in use (`svid_valid`, `svid_expiry`, `last_rotation`, X.509 bundles). */
  x509Source?: HealthX509Source | undefined;
  /** The JWT source in use (JWT bundles of `bundle_fresh`). */
  jwtSource?: HealthJwtSource | undefined;
  /** Policy engines to probe (`opa_responsive`). */
  policies?: readonly PolicyProbe[] | undefined;
  /** Deadline of the agent probe, in ms. Default 2000. */
  probeTimeoutMs?: number | undefined;
  /**
   * How long bundles count as fresh after the agent last confirmed them (sent the same bundles
   * the sources hold), in ms. Default 300 000 (5 minutes).
   */
  bundleMaxAgeMs?: number | undefined;
  /** `svid_valid` fails when the SVID expires within this many ms. Default 0. */
  minSvidLifetimeMs?: number | undefined;
  /** Reports younger than this are reused (health endpoints get polled), in ms. Default 1000; 0 disables. */
  cacheMs?: number | undefined;
  /** The clock, for tests. */
  now?: (() => Date) | undefined;
}

/** The health checker {@link identityHealth} returns. */
export interface IdentityHealth {
  /** Runs every check (or reuses a report younger than `cacheMs`). Never rejects. */
  check(): Promise<IdentityHealthReport>;
  /**
   * A node:http (and Express) handler for `GET /health/identity`: 200 with the report when
   * healthy, 503 when degraded, 405 for methods other than GET and HEAD.
   */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** When the X509-SVID last rotated in this process, if it has. */
  readonly lastRotation: Date | undefined;
  /** Stops following the source's rotations. Idempotent; `check()` then rejects with `health-closed`. */
  close(): void;
}

function healthError(code: string, detail: string): IdentityError {
  return new IdentityError(code, detail);
}

function invalidOption(detail: string): never {
  throw healthError('health-invalid-option', detail);
}

function positiveMs(name: string, v: unknown, fallback: number, allowZero = false): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0) || v > 86_400_000) {
    invalidOption(`${name} must be a number of ms in ${allowZero ? '[0' : '(0'}, 86400000]`);
  }
  return v;
}

function codeOf(err: unknown): string {
  if (err instanceof IdentityError) return err.message;
  if (typeof err === 'object' && err !== null && 'message' in err) return String((err as Error).message);
  return String(err);
}

function pass(detail: string): IdentityHealthCheck {
  return { status: 'pass', detail };
}

function fail(detail: string): IdentityHealthCheck {
  return { status: 'fail', detail };
}

function skipped(detail: string): IdentityHealthCheck {
  return { status: 'skipped', detail };
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 120) return `${s} s`;
  if (Math.abs(s) < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** Trust domains whose bundle of `kind` differs between what we hold and what the agent sent. */
function differing(held: BundleSet, agent: BundleSet, kind: 'x509' | 'jwt'): string[] {
  const out: string[] = [];
  const list = kind === 'x509' ? agent.x509Bundles : agent.jwtBundles;
  for (const theirs of list) {
    const mine =
      kind === 'x509' ? held.getX509Bundle(theirs.trustDomain) : held.getJwtBundle(theirs.trustDomain);
    if (mine === undefined || !(mine as { equals(o: unknown): boolean }).equals(theirs)) {
      out.push(theirs.trustDomain.name);
    }
  }
  return out;
}

/**
 * Creates an identity health checker. Its `check()` reports:
 *
 * - `spire_agent`: the Workload API answered a one-shot bundle fetch within `probeTimeoutMs`;
 * - `svid_valid`: the X.509 source has an SVID that is not expired (nor expiring within
 *   `minSvidLifetimeMs`);
 * - `opa_responsive`: every policy probe evaluates without an error;
 * - `bundle_fresh`: the sources hold X.509 (and JWT) bundles, and the agent confirmed them (sent
 *   the same bundles) within `bundleMaxAgeMs`; without an agent probe, only their presence.
 *
 * `status` is `healthy` when no check failed (skipped checks do not count), else `degraded`;
 * `svid_expiry` and `last_rotation` come from the X.509 source. Checks never throw and never
 * wait longer than the probe deadline.
 *
 * @param opts - what to check.
 * @throws IdentityError `health-invalid-option`.
 *
 * @example
 * ```ts
 * const health = identityHealth({ agent: client, x509Source, jwtSource, policies: [{ engine }] });
 * ops.on('request', (req, res) => req.url === '/health/identity' && health.handler(req, res));
 * const report = await health.check(); // { status: 'healthy', checks: { spire_agent: { status: 'pass', ... }, ... } }
 * ```
 */
export function identityHealth(opts: IdentityHealthOptions = {}): IdentityHealth {
  if (typeof opts !== 'object' || opts === null) invalidOption('options must be an object');
  const agent = opts.agent;
  if (
    agent !== undefined &&
    (typeof agent.fetchX509Bundles !== 'function' || typeof agent.fetchJwtBundles !== 'function')
  ) {
    invalidOption('agent must have fetchX509Bundles() and fetchJwtBundles() (a WorkloadAPIClient)');
  }
  const x509 = opts.x509Source;
  if (
    x509 !== undefined &&
    (typeof x509.getX509Svid !== 'function' || typeof x509.getX509BundleSet !== 'function')
  ) {
    invalidOption('x509Source must have getX509Svid() and getX509BundleSet() (an X509Source)');
  }
  const jwt = opts.jwtSource;
  if (jwt !== undefined && typeof jwt.getJwtBundleSet !== 'function') {
    invalidOption('jwtSource must have getJwtBundleSet() (a JwtSource)');
  }
  const policies = opts.policies ?? [];
  if (!Array.isArray(policies)) invalidOption('policies must be a list of { engine, entrypoint?, input? }');
  for (const p of policies) {
    if (typeof p?.engine?.evaluate !== 'function')
      invalidOption('every policy probe needs an engine with evaluate()');
    if (p.entrypoint === undefined && !(p.engine.entrypoints && p.engine.entrypoints.length > 0)) {
      invalidOption('a policy probe needs an entrypoint when its engine does not list entrypoints');
    }
  }
  const probeTimeoutMs = positiveMs('probeTimeoutMs', opts.probeTimeoutMs, 2000);
  const bundleMaxAgeMs = positiveMs('bundleMaxAgeMs', opts.bundleMaxAgeMs, 300_000);
  const minLifetime = positiveMs('minSvidLifetimeMs', opts.minSvidLifetimeMs, 0, true);
  const cacheMs = positiveMs('cacheMs', opts.cacheMs, 1000, true);
  if (opts.now !== undefined && typeof opts.now !== 'function') invalidOption('now must be a function');
  const now = opts.now ?? (() => new Date());

  let lastRotation: Date | undefined;
  let lastConfirmed: number | undefined;
  let closed = false;
  let cached: { at: number; report: Promise<IdentityHealthReport> } | undefined;
  const onRotated = (): void => {
    lastRotation = now();
  };
  if (x509?.on !== undefined) x509.on('rotated', onRotated);

  const withDeadline = <T>(p: Promise<T>, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(healthError('health-probe-timeout', `${what} did not answer within ${probeTimeoutMs} ms`)),
        probeTimeoutMs,
      );
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });

  const run = async (): Promise<IdentityHealthReport> => {
    const t0 = now().getTime();

    // spire_agent, and what the agent says the bundles are.
    let spireAgent: IdentityHealthCheck;
    let agentX509: BundleSet | undefined;
    let agentJwt: BundleSet | undefined;
    if (agent === undefined) {
      spireAgent = skipped('no Workload API client to probe');
    } else {
      const started = performance.now();
      try {
        [agentX509, agentJwt] = await withDeadline(
          Promise.all([
            agent.fetchX509Bundles({ timeoutMs: probeTimeoutMs }),
            jwt === undefined
              ? Promise.resolve(undefined)
              : agent.fetchJwtBundles({ timeoutMs: probeTimeoutMs }),
          ]),
          'the Workload API',
        );
        spireAgent = pass(`the Workload API answered in ${Math.round(performance.now() - started)} ms`);
      } catch (err) {
        spireAgent = fail(codeOf(err));
      }
    }

    // svid_valid and svid_expiry.
    let svidValid: IdentityHealthCheck;
    let svidExpiry: string | null = null;
    if (x509 === undefined) {
      svidValid = skipped('no X.509 source');
    } else {
      try {
        const svid = x509.getX509Svid();
        svidExpiry = svid.expiresAt.toISOString();
        const left = svid.expiresAt.getTime() - now().getTime();
        svidValid =
          left > minLifetime
            ? pass(`${svid.spiffeId} expires in ${duration(left)}`)
            : fail(`health-svid-expiring: ${svid.spiffeId} expires in ${duration(left)}`);
      } catch (err) {
        svidValid = fail(codeOf(err));
      }
    }

    // opa_responsive.
    let opa: IdentityHealthCheck;
    if (policies.length === 0) {
      opa = skipped('no policy engine');
    } else {
      const failures: string[] = [];
      for (const p of policies) {
        const entrypoint = p.entrypoint ?? p.engine.entrypoints![0]!;
        try {
          p.engine.evaluate(entrypoint, p.input ?? {});
        } catch (err) {
          failures.push(`${p.engine.name ?? entrypoint}: ${codeOf(err)}`);
        }
      }
      opa =
        failures.length === 0
          ? pass(`${policies.length} polic${policies.length === 1 ? 'y' : 'ies'} evaluated`)
          : fail(failures.join('; '));
    }

    // bundle_fresh.
    let fresh: IdentityHealthCheck;
    if (x509 === undefined && jwt === undefined) {
      fresh = skipped('no source');
    } else {
      try {
        const heldX509 = x509?.getX509BundleSet();
        const heldJwt = jwt?.getJwtBundleSet();
        const missing: string[] = [];
        if (heldX509 !== undefined && heldX509.x509Bundles.length === 0) missing.push('X.509');
        if (heldJwt !== undefined && heldJwt.jwtBundles.length === 0) missing.push('JWT');
        if (missing.length > 0) {
          fresh = fail(`health-no-bundles: no ${missing.join(' or ')} bundle is held`);
        } else if (agent === undefined) {
          fresh = pass('bundles are held (not confirmed: no Workload API client to compare with)');
        } else {
          const stale: string[] = [];
          if (agentX509 !== undefined && heldX509 !== undefined) {
            stale.push(...differing(heldX509, agentX509, 'x509').map((td) => `X.509 ${td}`));
          }
          if (agentJwt !== undefined && heldJwt !== undefined) {
            stale.push(...differing(heldJwt, agentJwt, 'jwt').map((td) => `JWT ${td}`));
          }
          const at = now().getTime();
          if (agentX509 !== undefined && stale.length === 0) lastConfirmed = at;
          const age = lastConfirmed === undefined ? undefined : at - lastConfirmed;
          const why =
            stale.length > 0
              ? `the agent now sends other bundles (${stale.join(', ')})`
              : 'the agent did not answer';
          if (age !== undefined && age <= bundleMaxAgeMs) {
            fresh = pass(
              age === 0
                ? 'bundles match the agent'
                : `bundles last matched the agent ${duration(age)} ago; ${why}`,
            );
          } else {
            fresh = fail(
              `health-bundles-stale: ${
                age === undefined
                  ? 'bundles were never confirmed by the agent'
                  : `bundles last matched the agent ${duration(age)} ago`
              }; ${why}`,
            );
          }
        }
      } catch (err) {
        fresh = fail(codeOf(err));
      }
    }

    const checks = {
      spire_agent: spireAgent,
      svid_valid: svidValid,
      opa_responsive: opa,
      bundle_fresh: fresh,
    };
    const degraded = Object.values(checks).some((c) => c.status === 'fail');
    return {
      status: degraded ? 'degraded' : 'healthy',
      checks,
      svid_expiry: svidExpiry,
      last_rotation: lastRotation === undefined ? null : lastRotation.toISOString(),
      checked_at: new Date(t0).toISOString(),
    };
  };

  const check = (): Promise<IdentityHealthReport> => {
    if (closed) return Promise.reject(healthError('health-closed', 'the health checker is closed'));
    const at = performance.now();
    if (cached !== undefined && at - cached.at < cacheMs) return cached.report;
    const report = run();
    cached = { at, report };
    return report;
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.statusCode = 405;
      res.setHeader('allow', 'GET, HEAD');
      res.setHeader('cache-control', 'no-store');
      res.end();
      return;
    }
    check().then(
      (report) => {
        const body = JSON.stringify(report);
        res.statusCode = report.status === 'healthy' ? 200 : 503;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.setHeader('content-length', Buffer.byteLength(body));
        res.setHeader('cache-control', 'no-store');
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.statusCode = 503;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.setHeader('cache-control', 'no-store');
        res.end(JSON.stringify({ status: 'degraded', error: codeOf(err) }));
      },
    );
  };

  return {
    check,
    handler,
    get lastRotation() {
      return lastRotation;
    },
    close() {
      if (closed) return;
      closed = true;
      cached = undefined;
      if (x509?.off !== undefined) x509.off('rotated', onRotated);
    },
  };
}
