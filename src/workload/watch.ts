/**
 * Streams of the Workload API (FetchX509SVID, FetchX509Bundles, FetchJWTBundles) kept open with
 * the retry table, and the {@link Watch} handles users iterate or listen to.
 *
 * One {@link StreamHub} per stream kind and client: every watch of that kind shares the stream
 * (reference counted), so an X509Source and a TLS helper on the same client open one stream.
 */
import { debuglog } from 'node:util';
import type * as grpc from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { EventEmitter } from 'eventemitter3';
import { IdentityError } from '../errors/index.js';
import { type Backoff, type BackoffFactory, safeNextDelay } from './backoff.js';
import {
  describeStatus,
  errorFromStatus,
  type GrpcErrorLike,
  grpcStatusNames,
  retryActionFor,
} from './retry.js';

const log = debuglog('tachikoma');

/** Why identities or bundles were withdrawn. */
export type RedactionReason = 'removed' | 'permission-denied';

/** What a redaction withdrew. */
export interface Redaction {
  /** `removed`: a later message no longer carried them; `permission-denied`: the agent said no identity. */
  readonly reason: RedactionReason;
  /** SPIFFE IDs (as strings) of withdrawn SVIDs. */
  readonly spiffeIds: readonly string[];
  /** Trust domain names whose bundles were withdrawn. */
  readonly trustDomains: readonly string[];
}

/** A retry about to happen. */
export interface ReconnectInfo {
  /** 1 for the first retry after a good stream, counting up until a message arrives. */
  readonly attempt: number;
  /** How long the watch waits before the next attempt. */
  readonly delayMs: number;
  /** The status that ended the stream, as an IdentityError (gRPC status in `cause`). */
  readonly error: IdentityError;
  /** The gRPC status code that ended the stream. */
  readonly grpcCode: number;
}

/** Events of a {@link Watch}. */
export interface WatchEvents<T> {
  /** A new state (never fired for an unchanged re-delivery). */
  update: [value: T, previous: T | undefined];
  /** Identities or bundles were withdrawn (the `update` with the reduced state follows). */
  redacted: [redaction: Redaction];
  /** The stream ended and will be retried. */
  reconnecting: [info: ReconnectInfo];
  /** A message was discarded, or the watch stopped for good (then `closed` follows). */
  error: [error: IdentityError];
  /** The watch ended (by `close()`, an abort, the client closing, or a fatal status). */
  closed: [];
}

/** How a hub opens and interprets one stream kind. */
export interface HubSpec<Raw, T> {
  /** RPC name for messages, e.g. `FetchX509SVID`. */
  readonly rpc: string;
  /** What the stream carries, for messages, e.g. `X.509 context`. */
  readonly what: string;
  /** Opens the stream with the given metadata. */
  open(metadata: grpc.Metadata): grpc.ClientReadableStream<Raw>;
  /** A digest of the raw message: equal digests mean equal content. */
  fingerprint(raw: Raw): string;
  /** Parses and validates; throws IdentityError to discard the message. */
  parse(raw: Raw): T;
  /** The state after a redaction (no identities, no bundles). */
  empty(): T;
  /** What disappeared between two states (undefined when nothing did). */
  removed(previous: T, next: T): { spiffeIds: string[]; trustDomains: string[] } | undefined;
}

/** Options of a hub. */
export interface HubOptions {
  address: string;
  metadata: () => grpc.Metadata;
  backoff: BackoffFactory;
  noIdentityBackoff: BackoffFactory;
  redactOnPermissionDenied: boolean;
}

/** A subscriber of a hub (a Watch). */
interface HubListener<T> {
  onUpdate(value: T, previous: T | undefined): void;
  onRedacted(r: Redaction): void;
  onReconnecting(info: ReconnectInfo): void;
  onError(err: IdentityError): void;
  onFatal(err: IdentityError): void;
}

/** Keeps one stream open while it has listeners. @internal */
export class StreamHub<Raw, T> {
  readonly #spec: HubSpec<Raw, T>;
  readonly #opts: HubOptions;
  readonly #listeners = new Set<HubListener<T>>();
  #state: T | undefined;
  #fingerprint: string | undefined;
  #call: grpc.ClientReadableStream<Raw> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #backoff: Backoff;
  #noIdentityBackoff: Backoff;
  #attempt = 0;
  #running = false;
  #lastStatus: GrpcErrorLike | undefined;
  #lastError: IdentityError | undefined;

  constructor(spec: HubSpec<Raw, T>, opts: HubOptions) {
    this.#spec = spec;
    this.#opts = opts;
    this.#backoff = opts.backoff();
    this.#noIdentityBackoff = opts.noIdentityBackoff();
  }

  /** The last accepted state (undefined before the first message). */
  get state(): T | undefined {
    return this.#state;
  }

  /** The last status that ended a stream, for error messages. */
  get lastStatus(): string {
    return describeStatus(this.#lastStatus);
  }

  /** The last error reported (status or discarded message). */
  get lastError(): IdentityError | undefined {
    return this.#lastError;
  }

  subscribe(listener: HubListener<T>): () => void {
    this.#listeners.add(listener);
    if (!this.#running) {
      this.#running = true;
      this.#open();
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.stop();
    };
  }

  /** Stops the stream and forgets the state. */
  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const call = this.#call;
    this.#call = undefined;
    if (call) call.cancel();
    this.#state = undefined;
    this.#fingerprint = undefined;
    this.#attempt = 0;
    this.#backoff.reset();
    this.#noIdentityBackoff.reset();
  }

  #each(fn: (l: HubListener<T>) => void): void {
    for (const l of [...this.#listeners]) fn(l);
  }

  #open(): void {
    if (!this.#running) return;
    let call: grpc.ClientReadableStream<Raw>;
    try {
      call = this.#spec.open(this.#opts.metadata());
    } catch (err) {
      // grpc-js throws synchronously only for a closed channel.
      this.#end(undefined, { code: grpcStatus.UNAVAILABLE, details: (err as Error).message }, false);
      return;
    }
    this.#call = call;
    let delivered = false;
    let finished = false;
    call.on('data', (raw: Raw) => {
      if (this.#call !== call || finished) return;
      delivered = true;
      this.#onMessage(raw);
    });
    // A stream without an 'error' listener would throw; the status handler below decides.
    call.on('error', () => {});
    call.on('status', (st: grpc.StatusObject) => {
      if (finished) return;
      finished = true;
      // Let any message still queued in the stream be delivered before acting on the status.
      setImmediate(() => this.#end(call, st, delivered));
    });
  }

  #onMessage(raw: Raw): void {
    let fp: string;
    try {
      fp = this.#spec.fingerprint(raw);
    } catch (err) {
      this.#reportDiscarded(err);
      return;
    }
    if (fp === this.#fingerprint) {
      // An unchanged re-delivery (e.g. after a reconnect): a good message, nothing to report.
      this.#goodMessage();
      return;
    }
    let next: T;
    try {
      next = this.#spec.parse(raw);
    } catch (err) {
      this.#reportDiscarded(err);
      return;
    }
    const previous = this.#state;
    this.#state = next;
    this.#fingerprint = fp;
    this.#goodMessage();
    if (previous !== undefined) {
      const gone = this.#spec.removed(previous, next);
      if (gone && (gone.spiffeIds.length > 0 || gone.trustDomains.length > 0)) {
        const r: Redaction = { reason: 'removed', ...gone };
        this.#each((l) => l.onRedacted(r));
      }
    }
    this.#each((l) => l.onUpdate(next, previous));
  }

  #goodMessage(): void {
    this.#attempt = 0;
    this.#backoff.reset();
    this.#noIdentityBackoff.reset();
  }

  #reportDiscarded(err: unknown): void {
    const e =
      err instanceof IdentityError && err.code === 'workload-malformed-response'
        ? err
        : new IdentityError(
            'workload-malformed-response',
            `${this.#spec.rpc}: discarded a message that failed validation (${err instanceof Error ? err.message : String(err)}); keeping the last good state`,
            { cause: err },
          );
    this.#lastError = e;
    this.#each((l) => l.onError(e));
  }

  #end(call: grpc.ClientReadableStream<Raw> | undefined, st: GrpcErrorLike, delivered: boolean): void {
    if (call !== undefined && this.#call !== call) return; // cancelled by us, or superseded
    this.#call = undefined;
    if (!this.#running) return;
    this.#lastStatus = st;
    const code = st.code ?? grpcStatus.UNKNOWN;
    const err = errorFromStatus(st, this.#spec.rpc, this.#opts.address);
    this.#lastError = err;
    const action = retryActionFor(code);
    if (action === 'fail') {
      this.#running = false;
      this.#each((l) => l.onFatal(err));
      this.stop();
      return;
    }
    let delay: number;
    if (action === 'no-identity') {
      // Redact only a state that came from a good message (it has a fingerprint); a state that
      // is already the redacted empty one stays as it is, so repeated denials emit nothing more.
      if (
        this.#opts.redactOnPermissionDenied &&
        this.#state !== undefined &&
        this.#fingerprint !== undefined
      ) {
        const previous = this.#state;
        const next = this.#spec.empty();
        const gone = this.#spec.removed(previous, next) ?? { spiffeIds: [], trustDomains: [] };
        this.#state = next;
        this.#fingerprint = undefined;
        const r: Redaction = { reason: 'permission-denied', ...gone };
        this.#each((l) => l.onRedacted(r));
        this.#each((l) => l.onUpdate(next, previous));
      }
      delay = safeNextDelay(this.#noIdentityBackoff, 5000);
    } else if (action === 'reconnect' && delivered) {
      delay = 0;
    } else {
      delay = safeNextDelay(this.#backoff, 1000);
    }
    this.#attempt++;
    const info: ReconnectInfo = { attempt: this.#attempt, delayMs: delay, error: err, grpcCode: code };
    log(
      '%s at %s ended with %s; retry %d in %d ms',
      this.#spec.rpc,
      this.#opts.address,
      grpcStatusNames[code],
      this.#attempt,
      delay,
    );
    this.#each((l) => l.onReconnecting(info));
    if (!this.#running) return; // a listener closed the watch
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#open();
    }, delay);
  }
}

/** Options of a watch. */
export interface WatchOptions {
  /** Ends the watch when aborted. */
  signal?: AbortSignal | undefined;
}

/**
 * A live view of one Workload API stream: an async iterable of states that also emits typed
 * events. Each state is the complete current set; states equal to the previous one are never
 * delivered twice.
 *
 * Iteration yields the newest state not yet seen (a slow consumer skips intermediate states, never
 * the latest); leaving a `for await` loop early (`break`, `return`, a throw) closes the watch. It
 * throws if the watch fails for good (`workload-invalid-argument`,
 * `workload-unimplemented`). A redaction yields an empty state. Transient failures do not end the
 * iteration: they are retried per the retry table and reported as `reconnecting` events.
 *
 * @typeParam T - the state type (for example {@link X509Context}).
 */
export class Watch<T> extends EventEmitter<WatchEvents<T>> implements AsyncIterable<T>, AsyncDisposable {
  #unsubscribe: (() => void) | undefined;
  #current: T | undefined;
  #version = 0;
  #closed = false;
  #fatal: IdentityError | undefined;
  #waiters: Array<() => void> = [];
  #onAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;
  readonly #hub: StreamHub<unknown, T>;

  /** @internal */
  constructor(hub: StreamHub<unknown, T>, opts: WatchOptions = {}) {
    super();
    this.#hub = hub;
    this.#signal = opts.signal;
    if (opts.signal?.aborted) {
      this.#closed = true;
      return;
    }
    if (opts.signal) {
      this.#onAbort = () => {
        void this.close();
      };
      opts.signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    const initial = hub.state;
    if (initial !== undefined) {
      this.#current = initial;
      this.#version = 1;
    }
    this.#unsubscribe = hub.subscribe({
      onUpdate: (value, previous) => {
        this.#current = value;
        this.#version++;
        this.#wake();
        this.#safeEmit('update', value, previous);
      },
      onRedacted: (r) => this.#safeEmit('redacted', r),
      onReconnecting: (info) => this.#safeEmit('reconnecting', info),
      onError: (err) => this.#safeEmit('error', err),
      onFatal: (err) => {
        this.#fatal = err;
        this.#safeEmit('error', err);
        void this.close();
      },
    });
  }

  /** The newest state, or undefined before the first message. */
  get current(): T | undefined {
    return this.#current;
  }

  /** Whether the watch has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The last gRPC status that ended this watch's stream, as `CODE (details)`, or `none` (for
   * diagnostics: a watch that cannot connect shows why here).
   */
  get lastStatus(): string {
    return this.#hub.lastStatus;
  }

  /** The error that ended the watch, if one did. */
  get failure(): IdentityError | undefined {
    return this.#fatal;
  }

  #safeEmit<K extends keyof WatchEvents<T>>(event: K, ...args: WatchEvents<T>[K]): void {
    try {
      (this.emit as (e: K, ...a: WatchEvents<T>[K]) => boolean)(event, ...args);
    } catch (err) {
      if (event === 'error') {
        log('an error listener threw: %o', err);
        return;
      }
      this.#safeEmit(
        'error',
        new IdentityError(
          'workload-listener-threw',
          `a "${String(event)}" listener threw: ${(err as Error)?.message ?? String(err)}`,
          {
            cause: err,
          },
        ),
      );
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Waits for the next state newer than `afterVersion`.
   *
   * @internal
   */
  async nextState(afterVersion: number): Promise<{ value: T; version: number } | undefined> {
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      if (this.#closed) return undefined;
      if (this.#version > afterVersion && this.#current !== undefined) {
        return { value: this.#current, version: this.#version };
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Iterates over states, newest first seen; see the class description. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    let seen = 0;
    return {
      next: async (): Promise<IteratorResult<T>> => {
        const r = await this.nextState(seen);
        if (!r) return { done: true, value: undefined };
        seen = r.version;
        return { done: false, value: r.value };
      },
      return: async (): Promise<IteratorResult<T>> => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** Ends the watch (idempotent). Iterations finish; the shared stream closes with its last watch. */
  async close(): Promise<void> {
    if (this.#closed && this.#unsubscribe === undefined) return;
    this.#closed = true;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (this.#onAbort) this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = undefined;
    unsubscribe?.();
    this.#wake();
    this.#safeEmit('closed');
  }

  /** Same as {@link Watch.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
