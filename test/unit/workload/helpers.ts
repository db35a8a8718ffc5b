/** Test helpers for the Workload API tests: waiting on events with a timeout, recording backoffs. */
import type { Backoff, BackoffFactory } from '../../../src/workload/index.js';

interface Emitter {
  on(event: string, fn: (...args: unknown[]) => void): unknown;
  off(event: string, fn: (...args: unknown[]) => void): unknown;
}

/**
 * Resolves with the arguments of the next `event` (that satisfies `accept`), or rejects after
 * `timeoutMs` naming the event. Listen before triggering the action.
 */
export function nextEvent<T extends unknown[] = unknown[]>(
  target: object,
  event: string,
  timeoutMs = 5000,
  accept: (...args: T) => boolean = () => true,
): Promise<T> {
  const emitter = target as Emitter;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, fn as never);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    const fn = (...args: T): void => {
      if (!accept(...args)) return;
      clearTimeout(timer);
      emitter.off(event, fn as never);
      resolve(args);
    };
    emitter.on(event, fn as never);
  });
}

/** Polls `probe` until it returns true, or rejects after `timeoutMs` with `what`. */
export async function until(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A backoff that records its calls and returns `delayMs`. */
export function recordingBackoff(delayMs = 1): { factory: BackoffFactory; log: string[] } {
  const log: string[] = [];
  const factory: BackoffFactory = (): Backoff => ({
    next: () => {
      log.push('next');
      return delayMs;
    },
    reset: () => {
      log.push('reset');
    },
  });
  return { factory, log };
}

/** Expects `p` to reject with an IdentityError of `code`; returns it. */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; cause?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}
