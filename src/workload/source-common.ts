/**
 * What the three sources share: options, the initial sync with a finite timeout, the internal
 * error listener, and owning (or borrowing) a client.
 *
 * @internal
 */
import { channel } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import { EventEmitter } from 'eventemitter3';
import { IdentityError } from '../errors/index.js';
import { WorkloadAPIClient, type WorkloadAPIClientOptions } from './client.js';
import type { Watch } from './watch.js';

const log = debuglog('tachikoma');

/** Options every source accepts (plus the client options, used when it makes its own client). */
export interface SourceOptions extends WorkloadAPIClientOptions {
  /**
   * Use this client instead of making one. The source then never closes it; otherwise the source
   * owns the client it made and closes it on `close()`.
   */
  client?: WorkloadAPIClient | undefined;
  /**
   * How long `create()` waits for the first update before it rejects with
   * `workload-initial-sync-timeout` (naming the address and the last gRPC status); default 30 000 ms.
   */
  initialSyncTimeoutMs?: number | undefined;
  /** Aborts `create()` (it rejects with `workload-aborted`). */
  signal?: AbortSignal | undefined;
}

/** Default of {@link SourceOptions.initialSyncTimeoutMs}. */
export const DEFAULT_INITIAL_SYNC_TIMEOUT_MS = 30_000;

/** Resolves the client of a source and whether the source owns it. */
export function clientFor(options: SourceOptions): { client: WorkloadAPIClient; owned: boolean } {
  if (options.client !== undefined) {
    if (!(options.client instanceof WorkloadAPIClient)) {
      throw new IdentityError('workload-invalid-option', 'client must be a WorkloadAPIClient');
    }
    if (options.client.closed)
      throw new IdentityError('workload-closed', 'the given WorkloadAPIClient is closed');
    return { client: options.client, owned: false };
  }
  return { client: new WorkloadAPIClient(options), owned: true };
}

/** Checks `initialSyncTimeoutMs`. */
export function initialSyncTimeout(options: SourceOptions): number {
  const v = options.initialSyncTimeoutMs ?? DEFAULT_INITIAL_SYNC_TIMEOUT_MS;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 24 * 3_600_000) {
    throw new IdentityError(
      'workload-invalid-option',
      'initialSyncTimeoutMs must be a finite number of ms in (0, 24 h]',
    );
  }
  return v;
}

/**
 * Waits until every watch has a state, with a finite timeout and the caller's abort signal. A
 * watch that fails for good (InvalidArgument, Unimplemented) rejects at once.
 */
export function waitInitialSync(
  watches: readonly Watch<unknown>[],
  what: string,
  address: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  lastStatus: () => string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const cleanups: (() => void)[] = [];
    const finish = (err?: IdentityError): void => {
      if (done) return;
      done = true;
      for (const c of cleanups) c();
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      const failed = watches.find((w) => w.failure !== undefined);
      if (failed?.failure) {
        finish(failed.failure);
        return;
      }
      if (watches.every((w) => w.current !== undefined)) finish();
    };
    for (const w of watches) {
      const onUpdate = (): void => check();
      const onClosed = (): void => {
        if (w.failure) finish(w.failure);
        else finish(new IdentityError('workload-closed', `${what}: closed before the first update`));
      };
      w.on('update', onUpdate);
      w.on('closed', onClosed);
      cleanups.push(() => {
        w.off('update', onUpdate);
        w.off('closed', onClosed);
      });
    }
    const timer = setTimeout(() => {
      finish(
        new IdentityError(
          'workload-initial-sync-timeout',
          `no ${what} from the Workload API at ${address} within ${timeoutMs} ms; last status: ${lastStatus()}`,
          { details: { address, timeoutMs, lastStatus: lastStatus() } },
        ),
      );
    }, timeoutMs);
    cleanups.push(() => clearTimeout(timer));
    if (signal) {
      const onAbort = (): void =>
        finish(
          new IdentityError('workload-aborted', `${what}: create() was aborted`, { cause: signal.reason }),
        );
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    check();
  });
}

/**
 * Adds the internal `error` listener every source has: an error nobody listens to is logged with
 * `NODE_DEBUG=tachikoma` and never crashes the process.
 */
export function installInternalErrorListener(
  emitter: { on(event: 'error', fn: (err: IdentityError) => void): unknown },
  what: string,
): void {
  emitter.on('error', (err) => {
    log('%s: %s', what, err.message);
    publishDiagnostic(workloadChannels.error, { source: what, code: err.code, message: err.message });
  });
}

/** Calls `emit`, turning a throwing listener into an `error` event instead of a crash. */
export function safeEmit(emit: () => void, reportError: (err: IdentityError) => void, event: string): void {
  try {
    emit();
  } catch (err) {
    if (event === 'error') {
      log('an error listener threw: %o', err);
      return;
    }
    reportError(
      new IdentityError(
        'workload-listener-threw',
        `a "${event}" listener threw: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
        },
      ),
    );
  }
}

/**
 * `node:diagnostics_channel` channels the sources publish on (plain objects, never key material):
 * the SVID rotation channel is shared with `@tachikoma/identity/observability`.
 */
export const workloadChannels: {
  /** An X509Source identity rotated: SPIFFE ID, hint, old/new serial and expiry. */
  readonly svidRotated: 'tachikoma:identity:svid:rotated';
  /** A source's stream ended and will be retried: address, attempt, delay, gRPC code. */
  readonly reconnect: 'tachikoma:identity:workload:reconnect';
  /** A source reported an error: source, code, message. */
  readonly error: 'tachikoma:identity:workload:error';
} = {
  svidRotated: 'tachikoma:identity:svid:rotated',
  reconnect: 'tachikoma:identity:workload:reconnect',
  error: 'tachikoma:identity:workload:error',
};

/** Publishes on a channel when someone subscribes. */
export function publishDiagnostic(
  name: (typeof workloadChannels)[keyof typeof workloadChannels],
  message: object,
): void {
  const ch = channel(name);
  if (ch.hasSubscribers) ch.publish(message);
}

/**
 * The event plumbing the three sources share: typed events whose listeners can never crash the
 * source (a throwing listener becomes an `error` event), and an internal `error` listener so
 * that an unheard error is logged instead of lost.
 */
export abstract class SourceEmitter<Events extends { error: [IdentityError] }> extends EventEmitter<Events> {
  /** @param what - the source's name, for the internal error log. */
  protected constructor(what: string) {
    super();
    installInternalErrorListener(this as unknown as Parameters<typeof installInternalErrorListener>[0], what);
  }

  /** Emits `error`; an error listener that throws is logged, never rethrown. */
  protected reportError(err: IdentityError): void {
    safeEmit(
      () => (this.emit as unknown as (e: 'error', err: IdentityError) => boolean)('error', err),
      () => {},
      'error',
    );
  }

  /** Emits `event`; a listener that throws is reported as an `error` event. */
  protected emitSafely<K extends keyof Events & string>(event: K, ...args: Events[K] & unknown[]): void {
    safeEmit(
      () => (this.emit as unknown as (e: K, ...a: unknown[]) => boolean)(event, ...args),
      (e) => this.reportError(e),
      event,
    );
  }
}
