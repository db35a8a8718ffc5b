/**
 * `JwtSource`: JWT bundles kept up to date from the Workload API, and JWT-SVIDs fetched on demand
 * through a half-life cache with single-flight requests.
 */
import type { BundleSet, JwtBundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import type { TrustDomain } from '../spiffeid/index.js';
import { type JwtSvid, type ValidateJwtSvidOptions, validateJwtSvid } from '../svid/index.js';
import {
  type FetchJwtSvidParams,
  type FetchJwtSvidsParams,
  normalizeAudience,
  type WorkloadAPIClient,
} from './client.js';
import {
  clientFor,
  initialSyncTimeout,
  SourceEmitter,
  type SourceOptions,
  waitInitialSync,
} from './source-common.js';
import { type JwtSvidSelector, selectSvid } from './types.js';
import type { ReconnectInfo, Redaction, Watch } from './watch.js';
import type { BundleChange } from './x509-source.js';

/** Options of {@link JwtSource.create}. */
export interface JwtSourceOptions extends SourceOptions {
  /** Most cached (subject, audience set) entries; the oldest is evicted beyond it. Default 1024. */
  maxCacheEntries?: number | undefined;
}

/** Events of {@link JwtSource}. */
export interface JwtSourceEvents {
  /** New JWT bundles. */
  update: [bundles: BundleSet];
  /** A trust domain's JWT bundle was added, changed or removed. */
  bundleUpdated: [change: BundleChange];
  /** Bundles were withdrawn (cached JWT-SVIDs are dropped on `permission-denied`). */
  redacted: [redaction: Redaction];
  /** The stream ended and will be retried. */
  reconnecting: [info: ReconnectInfo];
  /** A discarded message or a fatal stream error. Always has an internal listener. */
  error: [error: IdentityError];
}

interface CacheEntry {
  readonly svids: readonly JwtSvid[];
  /** When the entry must be refreshed (half of the shortest lifetime). */
  readonly refreshAt: number;
  /** When the first token expires. */
  readonly expiresAt: number;
}

/** Half of each token's lifetime, from `iat` (or from the fetch when `iat` is absent or in the future). */
function refreshTimeOf(
  svids: readonly JwtSvid[],
  fetchedAt: number,
): { refreshAt: number; expiresAt: number } {
  let refreshAt = Number.POSITIVE_INFINITY;
  let expiresAt = Number.POSITIVE_INFINITY;
  for (const s of svids) {
    const exp = s.expiresAt.getTime();
    const iatClaim = s.claims['iat'];
    const iat = typeof iatClaim === 'number' && Number.isFinite(iatClaim) ? iatClaim * 1000 : fetchedAt;
    const start = Math.min(iat, fetchedAt);
    refreshAt = Math.min(refreshAt, start + (exp - start) / 2);
    expiresAt = Math.min(expiresAt, exp);
  }
  return { refreshAt, expiresAt };
}

/**
 * JWT bundles of this workload's trust domain and federated ones, always up to date, plus a
 * cache of JWT-SVIDs.
 *
 * {@link JwtSource.fetchJwtSvid} caches per (subject, sorted audience set): a cached token is
 * reused until half its lifetime has passed, then fetched again; concurrent identical requests
 * share one call. A `PermissionDenied` stream end empties the cache (spec-strict redaction).
 *
 * @example
 * ```ts
 * await using jwt = await JwtSource.create();
 * const token = (await jwt.fetchJwtSvid({ audience: 'spiffe://example.org/api' })).token;
 * const peer = await jwt.validateJwtSvid(incoming, 'spiffe://example.org/me');
 * ```
 */
export class JwtSource extends SourceEmitter<JwtSourceEvents> implements AsyncDisposable {
  readonly #client: WorkloadAPIClient;
  readonly #owned: boolean;
  readonly #watch: Watch<BundleSet>;
  readonly #maxEntries: number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Promise<readonly JwtSvid[]>>();
  #bundles: BundleSet | undefined;
  #lastUpdate: Date | undefined;
  #closed = false;
  /** Bumped when the cache is invalidated, so an in-flight result fetched before is not stored. */
  #epoch = 0;

  private constructor(
    client: WorkloadAPIClient,
    owned: boolean,
    watch: Watch<BundleSet>,
    maxEntries: number,
  ) {
    super('JwtSource');
    this.#client = client;
    this.#owned = owned;
    this.#watch = watch;
    this.#maxEntries = maxEntries;
  }

  /**
   * Connects and resolves once the first JWT bundles arrived.
   *
   * @param options - address or client, cache size, initial sync timeout, retry policy.
   * @throws IdentityError `workload-initial-sync-timeout` (naming the address and last status),
   *   `workload-invalid-argument`, `workload-aborted`, or an address/option error.
   */
  static async create(options: JwtSourceOptions = {}): Promise<JwtSource> {
    const timeoutMs = initialSyncTimeout(options);
    const maxEntries = options.maxCacheEntries ?? 1024;
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 1_000_000) {
      throw new IdentityError(
        'workload-invalid-option',
        'maxCacheEntries must be an integer in [1, 1000000]',
      );
    }
    const { client, owned } = clientFor(options);
    let source: JwtSource | undefined;
    try {
      const watch = client.watchJwtBundles();
      source = new JwtSource(client, owned, watch, maxEntries);
      source.#wire();
      await waitInitialSync(
        [watch as Watch<unknown>],
        'JWT bundles',
        client.address,
        timeoutMs,
        options.signal,
        () => watch.lastStatus,
      );
      source.#bundles = watch.current!;
      source.#lastUpdate = new Date();
      return source;
    } catch (err) {
      if (source) await source.close();
      else if (owned) await client.close();
      throw err;
    }
  }

  #wire(): void {
    const w = this.#watch;
    w.on('update', (next) => this.#onUpdate(next));
    w.on('redacted', (r) => {
      if (r.reason === 'permission-denied') this.#invalidate();
      this.emitSafely('redacted', r);
    });
    w.on('reconnecting', (i) => this.emitSafely('reconnecting', i));
    w.on('error', (e) => this.reportError(e));
  }

  #invalidate(): void {
    this.#epoch++;
    this.#cache.clear();
  }

  #onUpdate(next: BundleSet): void {
    const previous = this.#bundles;
    if (previous === undefined) return;
    this.#bundles = next;
    this.#lastUpdate = new Date();
    const oldB = new Map(previous.jwtBundles.map((b) => [b.trustDomain.name, b] as const));
    const newB = new Map(next.jwtBundles.map((b) => [b.trustDomain.name, b] as const));
    for (const [name, b] of newB) {
      const old = oldB.get(name);
      if (old === undefined || !old.equals(b))
        this.emitSafely('bundleUpdated', { trustDomain: b.trustDomain, kind: 'jwt', bundle: b });
    }
    for (const [name, b] of oldB) {
      if (!newB.has(name))
        this.emitSafely('bundleUpdated', { trustDomain: b.trustDomain, kind: 'jwt', bundle: undefined });
    }
    this.emitSafely('update', next);
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new IdentityError('workload-closed', `${what}: the JwtSource is closed`);
  }

  /** Cached fetch of every SVID for (subject, audience set). */
  async #svidsFor(params: FetchJwtSvidsParams): Promise<readonly JwtSvid[]> {
    this.#checkOpen('fetchJwtSvid');
    const audience = normalizeAudience(params?.audience);
    const subject = params.subject;
    const key = JSON.stringify([subject ?? '', [...audience].sort()]);
    const now = Date.now();
    const hit = this.#cache.get(key);
    if (hit !== undefined && now < hit.refreshAt && now < hit.expiresAt) return hit.svids;
    let shared = this.#inflight.get(key);
    if (shared === undefined) {
      const epoch = this.#epoch;
      // The shared call has no caller's signal: one caller giving up must not fail the others.
      const call = this.#client
        .fetchJwtSvids(
          params.timeoutMs === undefined
            ? { audience, subject }
            : { audience, subject, timeoutMs: params.timeoutMs },
        )
        .then((svids) => {
          if (epoch === this.#epoch && !this.#closed) {
            const fetchedAt = Date.now();
            this.#cache.delete(key);
            this.#cache.set(key, { svids, ...refreshTimeOf(svids, fetchedAt) });
            while (this.#cache.size > this.#maxEntries) {
              const oldest = this.#cache.keys().next().value;
              if (oldest === undefined) break;
              this.#cache.delete(oldest);
            }
          }
          return svids;
        })
        .finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, call);
      shared = call;
    }
    return abortable(shared, params.signal);
  }

  /**
   * A JWT-SVID for `audience`, from the cache while less than half its lifetime has passed.
   *
   * @param params - audience (mandatory), subject, hint or selector, abort signal and deadline.
   * @throws IdentityError `workload-invalid-audience`, `workload-svid-not-found`,
   *   `workload-no-identity`, `workload-closed`, `workload-aborted`, …
   */
  async fetchJwtSvid(params: FetchJwtSvidParams): Promise<JwtSvid> {
    const svids = await this.#svidsFor(params);
    const selector: JwtSvidSelector | undefined =
      params.hint !== undefined
        ? { hint: params.hint }
        : params.select !== undefined
          ? params.select
          : undefined;
    return selectSvid(svids, selector);
  }

  /**
   * Every JWT-SVID for `audience` (one per identity), cached like {@link JwtSource.fetchJwtSvid}.
   *
   * @param params - audience (mandatory), subject, abort signal and deadline.
   */
  async fetchJwtSvids(params: FetchJwtSvidsParams): Promise<readonly JwtSvid[]> {
    return this.#svidsFor(params);
  }

  /**
   * Validates a peer's JWT-SVID locally with the current bundles (the bundle of the token's own
   * trust domain).
   *
   * @param token - the compact JWT-SVID.
   * @param audience - the audience you expect in it.
   * @param opts - clock and tolerance options of `validateJwtSvid`.
   * @throws IdentityError a `jwtsvid-` code naming the rule that failed.
   */
  async validateJwtSvid(
    token: string,
    audience: string | string[],
    opts?: ValidateJwtSvidOptions,
  ): Promise<JwtSvid> {
    return validateJwtSvid(token, this.getJwtBundleSet(), audience, opts);
  }

  /**
   * The current JWT bundles.
   *
   * @throws IdentityError `workload-closed`.
   */
  getJwtBundleSet(): BundleSet {
    this.#checkOpen('getJwtBundleSet');
    return this.#bundles!;
  }

  /**
   * The JWT bundle of one trust domain.
   *
   * @param td - a trust domain or its name.
   * @throws IdentityError `workload-bundle-not-found` when the source has none for it.
   */
  getJwtBundleForTrustDomain(td: TrustDomain | string): JwtBundle {
    const b = this.getJwtBundleSet().getJwtBundle(td);
    if (!b)
      throw new IdentityError('workload-bundle-not-found', `no JWT bundle for trust domain ${String(td)}`);
    return b;
  }

  /** When the bundles were last updated. */
  get lastUpdate(): Date | undefined {
    return this.#lastUpdate;
  }

  /** Number of cached (subject, audience set) entries. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** True when open, the stream has not failed for good, and at least one JWT bundle is held. */
  isHealthy(): boolean {
    return !this.#closed && !this.#watch.closed && (this.#bundles?.jwtBundles.length ?? 0) > 0;
  }

  /** Whether the source is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching, drops the cache; closes the client if the source made it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#invalidate();
    await this.#watch.close();
    if (this.#owned) await this.#client.close();
  }

  /** Same as {@link JwtSource.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** `p`, but rejecting with `workload-aborted` as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(
      new IdentityError('workload-aborted', 'fetchJwtSvid was aborted', { cause: signal.reason }),
    );
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void =>
      reject(new IdentityError('workload-aborted', 'fetchJwtSvid was aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
