/**
 * `X509Source`: the current X509-SVID and X.509 bundles of this workload, kept up to date from
 * the Workload API, with rotation events.
 */
import type { BundleSet, JwtBundle, X509Bundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import type { TrustDomain } from '../spiffeid/index.js';
import type { X509Svid } from '../svid/index.js';
import type { WorkloadAPIClient } from './client.js';
import { svidKey } from './parse.js';
import {
  clientFor,
  initialSyncTimeout,
  publishDiagnostic,
  SourceEmitter,
  type SourceOptions,
  waitInitialSync,
  workloadChannels,
} from './source-common.js';
import { selectSvid, type X509Context, type X509SvidSelector } from './types.js';
import type { ReconnectInfo, Redaction, Watch } from './watch.js';

/** Options of {@link X509Source.create}. */
export interface X509SourceOptions extends SourceOptions {
  /**
   * Which SVID {@link X509Source.getX509Svid} returns: `{ hint }`, `{ spiffeId }` or a picker;
   * default the first SVID (the default identity, Workload API §8).
   */
  select?: X509SvidSelector | undefined;
}

/** An X509-SVID that was replaced by a new one for the same identity (SPIFFE ID and hint). */
export interface X509SvidRotation {
  /** The identity's SPIFFE ID. */
  readonly spiffeId: string;
  /** The identity's hint, if any. */
  readonly hint: string | undefined;
  /** Serial number (hex, as node prints it) of the replaced leaf. */
  readonly oldSerial: string;
  /** Serial number of the new leaf. */
  readonly newSerial: string;
  /** When the replaced SVID expires(d). */
  readonly oldExpiresAt: Date;
  /** When the new SVID expires. */
  readonly newExpiresAt: Date;
  /** Whether this is the SVID that {@link X509Source.getX509Svid} returns. */
  readonly selected: boolean;
  /** The new SVID. */
  readonly svid: X509Svid;
}

/** A bundle that was added, changed or removed. */
export interface BundleChange {
  /** The trust domain whose bundle changed. */
  readonly trustDomain: TrustDomain;
  /** `x509` or `jwt`. */
  readonly kind: 'x509' | 'jwt';
  /** The new bundle, or undefined when the trust domain's bundle was removed. */
  readonly bundle: X509Bundle | JwtBundle | undefined;
}

/** The current identity in the shape of the identity spec. */
export interface WorkloadIdentity {
  /** Trust domain name. */
  readonly trustDomain: string;
  /** Path of the SPIFFE ID. */
  readonly path: string;
  /** The X509-SVID. */
  readonly svid: X509Svid;
  /** When the SVID expires. */
  readonly expiresAt: Date;
  /** Whether the source will replace this SVID before it expires (it is open and its stream alive). */
  readonly renewable: boolean;
}

/** Events of {@link X509Source}. */
export interface X509SourceEvents {
  /** A new X.509 context (any change: SVIDs, bundles, CRLs). */
  update: [context: X509Context];
  /** An identity's SVID was replaced (one event per identity). */
  rotated: [rotation: X509SvidRotation];
  /** A trust domain's X.509 bundle was added, changed or removed. */
  bundleUpdated: [change: BundleChange];
  /** Identities or bundles were withdrawn. */
  redacted: [redaction: Redaction];
  /** The stream ended and will be retried. */
  reconnecting: [info: ReconnectInfo];
  /** A discarded message, an unusable update, or a fatal stream error. Always has an internal listener. */
  error: [error: IdentityError];
}

function serialOf(svid: X509Svid): string {
  return svid.leaf.serialNumber;
}

/**
 * The current X509-SVID(s) and X.509 bundles of this workload, always up to date.
 *
 * `create()` resolves after the first update, or rejects after `initialSyncTimeoutMs` (default
 * 30 s) with `workload-initial-sync-timeout` naming the address and the last gRPC status. After
 * that the source follows the stream: SVIDs rotate, bundles change, identities may be redacted
 * (then {@link X509Source.getX509Svid} throws until they come back), and the connection is retried
 * by the published retry table. It fails closed: an expired SVID is never returned.
 *
 * Fits the `X509SvidSource` shape of `@tachikoma/identity/tls`.
 *
 * @example
 * ```ts
 * await using source = await X509Source.create({ select: { hint: 'internal' } });
 * source.on('rotated', (r) => log.info({ serial: r.newSerial }, 'rotated'));
 * const svid = source.getX509Svid();
 * ```
 */
export class X509Source extends SourceEmitter<X509SourceEvents> implements AsyncDisposable {
  readonly #client: WorkloadAPIClient;
  readonly #owned: boolean;
  readonly #watch: Watch<X509Context>;
  readonly #select: X509SvidSelector | undefined;
  #context: X509Context | undefined;
  #lastUpdate: Date | undefined;
  #closed = false;

  private constructor(
    client: WorkloadAPIClient,
    owned: boolean,
    watch: Watch<X509Context>,
    select: X509SvidSelector | undefined,
  ) {
    super('X509Source');
    this.#client = client;
    this.#owned = owned;
    this.#watch = watch;
    this.#select = select;
  }

  /**
   * Connects and resolves once the first X.509 context arrived.
   *
   * @param options - address or client, selector, initial sync timeout, retry policy.
   * @throws IdentityError `workload-initial-sync-timeout`, `workload-invalid-argument`,
   *   `workload-unimplemented`, `workload-aborted`, `workload-svid-not-found` (the selector matches
   *   nothing in the first update), or an address/option error.
   */
  static async create(options: X509SourceOptions = {}): Promise<X509Source> {
    const timeoutMs = initialSyncTimeout(options);
    const { client, owned } = clientFor(options);
    let source: X509Source | undefined;
    try {
      const watch = client.watchX509Context();
      source = new X509Source(client, owned, watch, options.select);
      source.#wire();
      await waitInitialSync(
        [watch as Watch<unknown>],
        'X.509 context',
        client.address,
        timeoutMs,
        options.signal,
        () => watch.lastStatus,
      );
      // The first state is absorbed silently: events describe changes after create().
      const first = watch.current!;
      selectSvid(first.svids, options.select);
      source.#context = first;
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
    w.on('redacted', (r) => this.emitSafely('redacted', r));
    w.on('reconnecting', (i) => {
      publishDiagnostic(workloadChannels.reconnect, {
        source: 'X509Source',
        address: this.#client.address,
        attempt: i.attempt,
        delayMs: i.delayMs,
        grpcCode: i.grpcCode,
      });
      this.emitSafely('reconnecting', i);
    });
    w.on('error', (e) => this.reportError(e));
  }

  #onUpdate(next: X509Context): void {
    const previous = this.#context;
    if (previous === undefined) return; // still in create(): the first state is taken there
    if (next.svids.length > 0) {
      let selected: X509Svid;
      try {
        selected = selectSvid(next.svids, this.#select);
      } catch (err) {
        // The selected identity vanished from an otherwise valid update: keep serving nothing
        // rather than another identity (fail closed), and say why.
        this.#context = next;
        this.#lastUpdate = new Date();
        this.reportError(err as IdentityError);
        this.emitSafely('update', next);
        return;
      }
      if (selected.expiresAt.getTime() <= Date.now()) {
        this.reportError(
          new IdentityError(
            'workload-svid-expired',
            `ignored an update whose selected SVID ${selected.spiffeId} already expired at ${selected.expiresAt.toISOString()}`,
          ),
        );
        return;
      }
    }
    this.#context = next;
    this.#lastUpdate = new Date();

    const selectedKey = (() => {
      try {
        return next.svids.length > 0 ? svidKey(selectSvid(next.svids, this.#select)) : undefined;
      } catch {
        return undefined;
      }
    })();
    const before = new Map(previous.svids.map((s) => [svidKey(s), s] as const));
    for (const s of next.svids) {
      const old = before.get(svidKey(s));
      if (old === undefined || serialOf(old) === serialOf(s)) continue;
      const rotation: X509SvidRotation = {
        spiffeId: s.spiffeId.toString(),
        hint: s.hint,
        oldSerial: serialOf(old),
        newSerial: serialOf(s),
        oldExpiresAt: old.expiresAt,
        newExpiresAt: s.expiresAt,
        selected: svidKey(s) === selectedKey,
        svid: s,
      };
      publishDiagnostic(workloadChannels.svidRotated, {
        spiffeId: rotation.spiffeId,
        hint: rotation.hint,
        oldSerial: rotation.oldSerial,
        newSerial: rotation.newSerial,
        oldExpiresAt: rotation.oldExpiresAt,
        newExpiresAt: rotation.newExpiresAt,
      });
      this.emitSafely('rotated', rotation);
    }
    const oldBundles = new Map(previous.bundles.x509Bundles.map((b) => [b.trustDomain.name, b] as const));
    const newBundles = new Map(next.bundles.x509Bundles.map((b) => [b.trustDomain.name, b] as const));
    for (const [name, b] of newBundles) {
      const old = oldBundles.get(name);
      if (old === undefined || !old.equals(b))
        this.emitSafely('bundleUpdated', { trustDomain: b.trustDomain, kind: 'x509', bundle: b });
    }
    for (const [name, b] of oldBundles) {
      if (!newBundles.has(name))
        this.emitSafely('bundleUpdated', { trustDomain: b.trustDomain, kind: 'x509', bundle: undefined });
    }
    this.emitSafely('update', next);
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new IdentityError('workload-closed', `${what}: the X509Source is closed`);
  }

  /**
   * The selected X509-SVID (default: the first).
   *
   * @throws IdentityError `workload-closed`; `workload-no-identity` after a redaction;
   *   `workload-svid-not-found` when the selector matches nothing now; `workload-svid-expired`
   *   when the SVID has expired (the agent stopped rotating it).
   */
  getX509Svid(): X509Svid {
    this.#checkOpen('getX509Svid');
    const ctx = this.#context;
    if (ctx === undefined || ctx.svids.length === 0) {
      throw new IdentityError(
        'workload-no-identity',
        `the X509Source has no identity now (redacted by the Workload API at ${this.#client.address})`,
      );
    }
    const svid = selectSvid(ctx.svids, this.#select);
    if (svid.expiresAt.getTime() <= Date.now()) {
      throw new IdentityError(
        'workload-svid-expired',
        `the X509-SVID ${svid.spiffeId} expired at ${svid.expiresAt.toISOString()} and was not renewed`,
      );
    }
    return svid;
  }

  /**
   * Every current X509-SVID (the first is the default identity); empty after a redaction.
   *
   * @throws IdentityError `workload-closed`.
   */
  getX509Svids(): readonly X509Svid[] {
    this.#checkOpen('getX509Svids');
    return this.#context?.svids ?? [];
  }

  /**
   * The current X.509 bundles (own trust domain and federated ones).
   *
   * @throws IdentityError `workload-closed`.
   */
  getX509BundleSet(): BundleSet {
    this.#checkOpen('getX509BundleSet');
    return this.#context!.bundles;
  }

  /**
   * The X.509 bundle of one trust domain.
   *
   * @param td - a trust domain or its name.
   * @throws IdentityError `workload-bundle-not-found` when the source has none for it.
   */
  getX509BundleForTrustDomain(td: TrustDomain | string): X509Bundle {
    const b = this.getX509BundleSet().getX509Bundle(td);
    if (!b)
      throw new IdentityError('workload-bundle-not-found', `no X.509 bundle for trust domain ${String(td)}`);
    return b;
  }

  /** The whole current context (undefined only after close). */
  get context(): X509Context | undefined {
    return this.#closed ? undefined : this.#context;
  }

  /**
   * The selected identity as `{ trustDomain, path, svid, expiresAt, renewable }`.
   *
   * @throws IdentityError as {@link X509Source.getX509Svid}.
   */
  getIdentity(): WorkloadIdentity {
    const svid = this.getX509Svid();
    return Object.freeze({
      trustDomain: svid.spiffeId.trustDomain.name,
      path: svid.spiffeId.path,
      svid,
      expiresAt: svid.expiresAt,
      renewable: !this.#closed && !this.#watch.closed,
    });
  }

  /** When the selected SVID expires (undefined when there is none). */
  get expiresAt(): Date | undefined {
    try {
      const ctx = this.#context;
      return ctx && ctx.svids.length > 0 ? selectSvid(ctx.svids, this.#select).expiresAt : undefined;
    } catch {
      return undefined;
    }
  }

  /** When the source last accepted an update. */
  get lastUpdate(): Date | undefined {
    return this.#lastUpdate;
  }

  /**
   * True when the source is open, its stream has not failed for good, and the selected SVID
   * exists and has not expired.
   */
  isHealthy(): boolean {
    if (this.#closed || this.#watch.closed) return false;
    try {
      this.getX509Svid();
      return true;
    } catch {
      return false;
    }
  }

  /** Whether the source is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching; closes the client if the source made it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#watch.close();
    if (this.#owned) await this.#client.close();
  }

  /** Same as {@link X509Source.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
