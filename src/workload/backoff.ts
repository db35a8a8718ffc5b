/**
 * Pluggable retry delays for Workload API streams.
 *
 * A {@link BackoffFactory} makes one {@link Backoff} per stream, so two watches never share or
 * disturb each other's delays. The client calls `next()` before each retry and `reset()` only after
 * a message was received and accepted, so a server that accepts the connection and then fails at
 * once does not reset the delay.
 */
import { IdentityError } from '../errors/index.js';

/** The delay sequence of one stream. */
export interface Backoff {
  /** The delay before the next attempt, in milliseconds (finite, ≥ 0). */
  next(): number;
  /** Starts over from the first delay (called after a good message). */
  reset(): void;
}

/** Makes a fresh {@link Backoff} for each stream. */
export type BackoffFactory = () => Backoff;

/** Options of {@link exponentialBackoff}. */
export interface ExponentialBackoffOptions {
  /** First delay in ms; default 200. */
  initialMs?: number | undefined;
  /** Largest delay in ms; default 30 000. */
  maxMs?: number | undefined;
  /** Growth factor per attempt; default 2. */
  multiplier?: number | undefined;
  /**
   * Share of each delay that is randomised, 0..1; default 0.2. A delay `d` becomes a uniform
   * value in `[d × (1 − jitter), d]`, so the ceiling stays `maxMs`.
   */
  jitter?: number | undefined;
  /** Random source in [0, 1); default `Math.random` (tests pass a fixed one). */
  random?: (() => number) | undefined;
}

function checkNumber(name: string, value: number, min: number, max = Number.POSITIVE_INFINITY): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new IdentityError(
      'workload-invalid-option',
      `backoff option ${name} must be a finite number in [${min}, ${max}], got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Exponential backoff with jitter: `initialMs`, then × `multiplier` per attempt up to `maxMs`,
 * each delay shortened by a random share of at most `jitter`.
 *
 * @param options - the delay curve.
 * @returns a factory that makes one independent sequence per stream.
 */
export function exponentialBackoff(options: ExponentialBackoffOptions = {}): BackoffFactory {
  const initialMs = checkNumber('initialMs', options.initialMs ?? 200, 0);
  const maxMs = checkNumber('maxMs', options.maxMs ?? 30_000, initialMs);
  const multiplier = checkNumber('multiplier', options.multiplier ?? 2, 1);
  const jitter = checkNumber('jitter', options.jitter ?? 0.2, 0, 1);
  const random = options.random ?? Math.random;
  return () => {
    let attempt = 0;
    return {
      next(): number {
        const base = Math.min(maxMs, initialMs * multiplier ** attempt);
        if (base < maxMs) attempt++;
        const r = random();
        const share = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
        return Math.max(0, Math.round(base * (1 - jitter * share)));
      },
      reset(): void {
        attempt = 0;
      },
    };
  };
}

/**
 * The same delay every time (useful in tests and for fixed polling).
 *
 * @param ms - the delay in milliseconds.
 */
export function constantBackoff(ms: number): BackoffFactory {
  const delay = checkNumber('ms', ms, 0);
  return () => ({
    next: (): number => delay,
    reset: (): void => {},
  });
}

/** The default delays for transient failures (`Unavailable` and the like): 200 ms → 30 s, ×2, 20 % jitter. */
export const defaultBackoff: BackoffFactory = exponentialBackoff();

/**
 * The default delays while the agent says the caller has no identity (`PermissionDenied`):
 * a slower lane, 1 s → 30 s, ×2, 20 % jitter. Registration entries take seconds to reach an agent,
 * so polling faster only adds load.
 */
export const defaultNoIdentityBackoff: BackoffFactory = exponentialBackoff({
  initialMs: 1000,
  maxMs: 30_000,
});

/**
 * Calls the factory's `next()` defensively: a user backoff that throws or returns a bad number
 * yields `fallbackMs` instead of breaking the retry loop.
 *
 * @internal
 */
export function safeNextDelay(backoff: Backoff, fallbackMs: number, maxMs: number = 10 * 60_000): number {
  let d: number;
  try {
    d = backoff.next();
  } catch {
    return fallbackMs;
  }
  if (typeof d !== 'number' || !Number.isFinite(d) || d < 0) return fallbackMs;
  return Math.min(d, maxMs);
}
