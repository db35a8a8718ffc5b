/**
 * `BundleSource`: X.509 and JWT bundles (own and federated trust domains) kept up to date from
 * the Workload API, for code that verifies peers but has no identity of its own to present.
 */
import { BundleSet, type JwtBundle, type X509Bundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import type { TrustDomain } from '../spiffeid/index.js';
import type { WorkloadAPIClient } from './client.js';
import {
  clientFor,
  initialSyncTimeout,
  SourceEmitter,
  type SourceOptions,
  waitInitialSync,
} from './source-common.js';
import type { ReconnectInfo, Redaction, Watch } from './watch.js';
import type { BundleChange } from './x509-source.js';

/** Options of {@link BundleSource.create}. */
export interface BundleSourceOptions extends SourceOptions {
  /** Which bundles to follow; default both (`['x509', 'jwt']`). */
  kinds?: readonly ('x509' | 'jwt')[] | undefined;
}

/** Events of {@link BundleSource}. */
export interface BundleSourceEvents {
  /** New bundles (X.509 and JWT together). */
  update: [bundles: BundleSet];
  /** A trust domain's bundle was added, changed or removed. */
  bundleUpdated: [change: BundleChange];
  /** Bundles were withdrawn. */
  redacted: [redaction: Redaction];
  /** A stream ended and will be retried. */
  reconnecting: [info: ReconnectInfo];
  /** A discarded message or a fatal stream error. Always has an internal listener. */
  error: [error: IdentityError];
}

/**
 * The X.509 and JWT bundles this workload may trust, always up to date (FetchX509Bundles and
 * FetchJWTBundles). `create()` resolves once every followed kind has arrived, or rejects after
 * `initialSyncTimeoutMs` naming the address and the last gRPC status.
 *
 * @example
 * ```ts
 * await using bundles = await BundleSource.create();
 * verifyX509Svid(peerChain, bundles.getBundleSet());
 * ```
 */
export class BundleSource extends SourceEmitter<BundleSourceEvents> implements AsyncDisposable {
  readonly #client: WorkloadAPIClient;
  readonly #owned: boolean;
  readonly #x509: Watch<BundleSet> | undefined;
  readonly #jwt: Watch<BundleSet> | undefined;
  #x509Set: BundleSet = new BundleSet();
  #jwtSet: BundleSet = new BundleSet();
  #merged: BundleSet = new BundleSet();
  #ready = false;
  #lastUpdate: Date | undefined;
  #closed = false;

  private constructor(
    client: WorkloadAPIClient,
    owned: boolean,
    x509: Watch<BundleSet> | undefined,
    jwt: Watch<BundleSet> | undefined,
  ) {
    super('BundleSource');
    this.#client = client;
    this.#owned = owned;
    this.#x509 = x509;
    this.#jwt = jwt;
  }

  /**
   * Connects and resolves once the first bundles of every followed kind arrived.
   *
   * @param options - address or client, kinds, initial sync timeout, retry policy.
   * @throws IdentityError `workload-initial-sync-timeout`, `workload-invalid-argument`,
   *   `workload-aborted`, `workload-invalid-option`, or an address error.
   */
  static async create(options: BundleSourceOptions = {}): Promise<BundleSource> {
    const timeoutMs = initialSyncTimeout(options);
    const kinds = options.kinds ?? ['x509', 'jwt'];
    if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => k !== 'x509' && k !== 'jwt')) {
      throw new IdentityError(
        'workload-invalid-option',
        "kinds must be a non-empty list of 'x509' and 'jwt'",
      );
    }
    const { client, owned } = clientFor(options);
    let source: BundleSource | undefined;
    try {
      const x509 = kinds.includes('x509') ? client.watchX509Bundles() : undefined;
      const jwt = kinds.includes('jwt') ? client.watchJwtBundles() : undefined;
      source = new BundleSource(client, owned, x509, jwt);
      source.#wire();
      const watches = [x509, jwt].filter((w): w is Watch<BundleSet> => w !== undefined);
      await waitInitialSync(
        watches as Watch<unknown>[],
        kinds.map((k) => (k === 'x509' ? 'X.509 bundles' : 'JWT bundles')).join(' and '),
        client.address,
        timeoutMs,
        options.signal,
        () => watches.map((w) => w.lastStatus).join('; '),
      );
      source.#x509Set = x509?.current ?? new BundleSet();
      source.#jwtSet = jwt?.current ?? new BundleSet();
      source.#merged = merge(source.#x509Set, source.#jwtSet);
      source.#ready = true;
      source.#lastUpdate = new Date();
      return source;
    } catch (err) {
      if (source) await source.close();
      else if (owned) await client.close();
      throw err;
    }
  }

  #wire(): void {
    for (const [kind, w] of [
      ['x509', this.#x509],
      ['jwt', this.#jwt],
    ] as const) {
      if (!w) continue;
      w.on('update', (next) => this.#onUpdate(kind, next));
      w.on('redacted', (r) => this.emitSafely('redacted', r));
      w.on('reconnecting', (i) => this.emitSafely('reconnecting', i));
      w.on('error', (e) => this.reportError(e));
    }
  }

  #onUpdate(kind: 'x509' | 'jwt', next: BundleSet): void {
    if (!this.#ready) return;
    const previous = kind === 'x509' ? this.#x509Set : this.#jwtSet;
    if (kind === 'x509') this.#x509Set = next;
    else this.#jwtSet = next;
    this.#merged = merge(this.#x509Set, this.#jwtSet);
    this.#lastUpdate = new Date();
    const list = (s: BundleSet): readonly (X509Bundle | JwtBundle)[] =>
      kind === 'x509' ? s.x509Bundles : s.jwtBundles;
    const oldB = new Map(list(previous).map((b) => [b.trustDomain.name, b] as const));
    const newB = new Map(list(next).map((b) => [b.trustDomain.name, b] as const));
    for (const [name, b] of newB) {
      const old = oldB.get(name);
      if (old === undefined || !(old as { equals(o: unknown): boolean }).equals(b)) {
        this.emitSafely('bundleUpdated', { trustDomain: b.trustDomain, kind, bundle: b });
      }
    }
    for (const [name, b] of oldB) {
      if (!newB.has(name))
        this.emitSafely('bundleUpdated', { trustDomain: b.trustDomain, kind, bundle: undefined });
    }
    this.emitSafely('update', this.#merged);
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new IdentityError('workload-closed', `${what}: the BundleSource is closed`);
  }

  /**
   * Every current bundle, X.509 and JWT, own and federated.
   *
   * @throws IdentityError `workload-closed`.
   */
  getBundleSet(): BundleSet {
    this.#checkOpen('getBundleSet');
    return this.#merged;
  }

  /**
   * The current X.509 bundles (the `X509SvidSource` shape of `@tachikoma/identity/tls`).
   *
   * @throws IdentityError `workload-closed`.
   */
  getX509BundleSet(): BundleSet {
    this.#checkOpen('getX509BundleSet');
    return this.#x509Set;
  }

  /**
   * The X.509 bundle of one trust domain.
   *
   * @param td - a trust domain or its name.
   * @throws IdentityError `workload-bundle-not-found` when there is none.
   */
  getX509BundleForTrustDomain(td: TrustDomain | string): X509Bundle {
    const b = this.getBundleSet().getX509Bundle(td);
    if (!b)
      throw new IdentityError('workload-bundle-not-found', `no X.509 bundle for trust domain ${String(td)}`);
    return b;
  }

  /**
   * The JWT bundle of one trust domain.
   *
   * @param td - a trust domain or its name.
   * @throws IdentityError `workload-bundle-not-found` when there is none.
   */
  getJwtBundleForTrustDomain(td: TrustDomain | string): JwtBundle {
    const b = this.getBundleSet().getJwtBundle(td);
    if (!b)
      throw new IdentityError('workload-bundle-not-found', `no JWT bundle for trust domain ${String(td)}`);
    return b;
  }

  /** When the bundles were last updated. */
  get lastUpdate(): Date | undefined {
    return this.#lastUpdate;
  }

  /** True when open, no followed stream failed for good, and at least one bundle is held. */
  isHealthy(): boolean {
    if (this.#closed || this.#x509?.closed || this.#jwt?.closed) return false;
    return this.#merged.trustDomains().length > 0;
  }

  /** Whether the source is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching; closes the client if the source made it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#x509?.close(), this.#jwt?.close()]);
    if (this.#owned) await this.#client.close();
  }

  /** Same as {@link BundleSource.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function merge(x509: BundleSet, jwt: BundleSet): BundleSet {
  return new BundleSet(...x509.x509Bundles, ...jwt.jwtBundles);
}
