import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { safeNextDelay } from '../../../src/workload/backoff.js';
import {
  constantBackoff,
  defaultBackoff,
  defaultNoIdentityBackoff,
  exponentialBackoff,
  retryActionFor,
  workloadRetryTable,
} from '../../../src/workload/index.js';
import { errorFromStatus } from '../../../src/workload/retry.js';

describe('exponentialBackoff', () => {
  it('doubles from initialMs up to maxMs without jitter', () => {
    const b = exponentialBackoff({ initialMs: 100, maxMs: 1000, jitter: 0 })();
    expect(Array.from({ length: 7 }, () => b.next())).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it('starts over after reset()', () => {
    const b = exponentialBackoff({ initialMs: 10, maxMs: 1000, jitter: 0 })();
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(10);
  });

  it('shortens each delay by at most the jitter share', () => {
    const low = exponentialBackoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => 0.999999 })();
    const high = exponentialBackoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => 0 })();
    expect(low.next()).toBe(800);
    expect(high.next()).toBe(1000);
    const real = exponentialBackoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 })();
    for (let i = 0; i < 200; i++) {
      const d = real.next();
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(1000);
    }
  });

  it('gives every stream its own sequence', () => {
    const factory = exponentialBackoff({ initialMs: 10, jitter: 0 });
    const a = factory();
    const b = factory();
    a.next();
    a.next();
    expect(b.next()).toBe(10);
  });

  it('has the documented defaults: 200 ms → 30 s, and a slower 1 s lane for PermissionDenied', () => {
    const fast = defaultBackoff();
    const first = fast.next();
    expect(first).toBeGreaterThanOrEqual(160);
    expect(first).toBeLessThanOrEqual(200);
    for (let i = 0; i < 30; i++) fast.next();
    expect(fast.next()).toBeLessThanOrEqual(30_000);
    expect(fast.next()).toBeGreaterThanOrEqual(24_000);
    const slow = defaultNoIdentityBackoff();
    expect(slow.next()).toBeGreaterThanOrEqual(800);
  });

  it.each([
    [{ initialMs: -1 }],
    [{ initialMs: Number.NaN }],
    [{ initialMs: 100, maxMs: 50 }],
    [{ multiplier: 0.5 }],
    [{ jitter: 1.5 }],
  ])('rejects bad options %j', (opts) => {
    expect(() => exponentialBackoff(opts)).toThrow(/workload-invalid-option/);
  });

  it('constantBackoff returns the same delay', () => {
    const b = constantBackoff(7)();
    expect([b.next(), b.next()]).toEqual([7, 7]);
    expect(() => constantBackoff(-1)).toThrow(/workload-invalid-option/);
  });

  it('a user backoff that throws or returns garbage falls back to a finite delay', () => {
    expect(safeNextDelay({ next: () => Number.NaN, reset() {} }, 123)).toBe(123);
    expect(
      safeNextDelay(
        {
          next: () => {
            throw new Error('x');
          },
          reset() {},
        },
        5,
      ),
    ).toBe(5);
    expect(safeNextDelay({ next: () => 1e12, reset() {} }, 5)).toBe(600_000);
  });
});

describe('the retry table', () => {
  it('fails at once on InvalidArgument and Unimplemented', () => {
    expect(retryActionFor(status.INVALID_ARGUMENT)).toBe('fail');
    expect(retryActionFor(status.UNIMPLEMENTED)).toBe('fail');
  });

  it('takes the no-identity lane on PermissionDenied', () => {
    expect(retryActionFor(status.PERMISSION_DENIED)).toBe('no-identity');
  });

  it('reconnects after a clean end and backs off on everything else', () => {
    expect(retryActionFor(status.OK)).toBe('reconnect');
    for (const code of [1, 2, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 99])
      expect(retryActionFor(code)).toBe('backoff');
  });

  it('covers every gRPC code', () => {
    expect(
      Object.keys(workloadRetryTable)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 17 }, (_, i) => i));
  });

  it('maps statuses to stable codes and keeps the gRPC error as cause', () => {
    const cases: [number, string][] = [
      [status.INVALID_ARGUMENT, 'workload-invalid-argument'],
      [status.UNIMPLEMENTED, 'workload-unimplemented'],
      [status.PERMISSION_DENIED, 'workload-no-identity'],
      [status.UNAVAILABLE, 'workload-unavailable'],
      [status.DEADLINE_EXCEEDED, 'workload-timeout'],
      [status.INTERNAL, 'workload-rpc-failed'],
    ];
    for (const [code, expected] of cases) {
      const grpcErr = { code, details: 'why' };
      const e = errorFromStatus(grpcErr, 'FetchX509SVID', 'unix:///x.sock');
      expect(isIdentityError(e, expected)).toBe(true);
      expect(e.cause).toBe(grpcErr);
      expect(e.message).toContain('unix:///x.sock');
      expect(e.message).toContain('why');
      expect(e.details?.['grpcCode']).toBe(code);
    }
  });
});
