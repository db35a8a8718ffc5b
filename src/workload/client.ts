/**
 * `WorkloadAPIClient`: the SPIFFE Workload API over gRPC (unix socket or TCP), with one-shot
 * fetches, live watches, agent-side JWT validation and peer verification.
 */
import * as grpc from '@grpc/grpc-js';
import { BundleSet } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import { H2FirstMessageClient, type H2Status } from '../internal/grpc-h2.js';
import {
  loadWorkloadService,
  type RawJwtBundlesResponse,
  type RawJwtSvidRequest,
  type RawJwtSvidResponse,
  type RawValidateJwtSvidRequest,
  type RawValidateJwtSvidResponse,
  type RawX509BundlesResponse,
  type RawX509SvidResponse,
  WORKLOAD_HEADER,
} from '../internal/grpc-workload.js';
import type { SpiffeIdMatcher } from '../spiffeid/index.js';
import {
  type CertificateChainInput,
  type JwtSvid,
  parseJwtSvidInsecure,
  SVID_LIMITS,
  verifyX509Svid,
  type X509Svid,
  type X509SvidVerification,
} from '../svid/index.js';
import { resolveWorkloadAddress, type WorkloadAddress } from './address.js';
import { type BackoffFactory, defaultBackoff, defaultNoIdentityBackoff } from './backoff.js';
import {
  boundedDeserializer,
  defaultWorkloadLimits,
  fingerprintJwtBundles,
  fingerprintX509,
  fingerprintX509Bundles,
  newParseCaches,
  type ParseCaches,
  parseJwtBundles,
  parseJwtSvids,
  parseX509Bundles,
  parseX509Context,
  svidKey,
  type WorkloadLimits,
} from './parse.js';
import { errorFromStatus, type GrpcErrorLike } from './retry.js';
import {
  type CallOptions,
  type JwtSvidSelector,
  selectSvid,
  type X509Context,
  type X509SvidSelector,
} from './types.js';
import { type HubSpec, StreamHub, Watch, type WatchOptions } from './watch.js';

/** Options of {@link WorkloadAPIClient}. */
export interface WorkloadAPIClientOptions {
  /**
   * `unix:///path/to/socket` or `tcp://IP:port`; default the `SPIFFE_ENDPOINT_SOCKET` environment
   * variable.
   */
  address?: string | undefined;
  /** Deadline of one-shot calls in ms (fetches, JWT calls); default 30 000. */
  timeoutMs?: number | undefined;
  /** Retry delays of watches after transient failures; default {@link defaultBackoff}. */
  backoff?: BackoffFactory | undefined;
  /** Retry delays while the agent reports `PermissionDenied`; default {@link defaultNoIdentityBackoff}. */
  noIdentityBackoff?: BackoffFactory | undefined;
  /**
   * When a watch ends with `PermissionDenied`, withdraw the identities and bundles it carried
   * (Workload API §5.2.1: stop using them). Default `true`; `false` keeps serving the last state
   * until the stream recovers (availability over strictness; expiry still applies).
   */
  redactOnPermissionDenied?: boolean | undefined;
  /**
   * Largest message accepted from the agent, in bytes; default 32 MiB (grpc-js defaults to 4 MiB,
   * too small for big federated bundle sets).
   */
  maxReceiveMessageBytes?: number | undefined;
  /** Bounds on counts in one message (SVIDs, bundles, CRLs); default 1000 each. */
  limits?: Partial<WorkloadLimits> | undefined;
}

/** Parameters of {@link WorkloadAPIClient.fetchJwtSvid}. */
export interface FetchJwtSvidParams extends CallOptions {
  /** The audience(s) the token is for: one value or a non-empty list (mandatory). */
  audience: string | readonly string[];
  /** Ask for a token of this SPIFFE ID only (one of the caller's identities). */
  subject?: string | undefined;
  /** Choose the SVID with this hint (among several identities). */
  hint?: string | undefined;
  /** Choose with a selector (hint, SPIFFE ID or picker); `hint` wins when both are given. */
  select?: JwtSvidSelector | undefined;
}

/** Parameters of {@link WorkloadAPIClient.fetchJwtSvids}. */
export interface FetchJwtSvidsParams extends CallOptions {
  /** The audience(s) the tokens are for (mandatory). */
  audience: string | readonly string[];
  /** Ask for a token of this SPIFFE ID only. */
  subject?: string | undefined;
}

/** Options of {@link WorkloadAPIClient.validatePeerIdentity}. */
export interface ValidatePeerOptions extends CallOptions {
  /** The clock for validity checks; default now. */
  now?: Date | undefined;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RECEIVE = 32 * 1024 * 1024;
const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;
const MAX_AUDIENCE_CHARS = 2048;

/** Anything in flight that `close()` or an abort can cancel. */
interface AnyCall {
  cancel(): void;
}

type StreamRpc = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles';

interface MethodCodec {
  path: string;
  requestSerialize(value: object): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

/** A stream RPC's codec plus its (empty) request, encoded once. */
interface StreamMethod extends MethodCodec {
  emptyRequest: Buffer;
}

const WORKLOAD_HEADERS: Readonly<Record<string, string>> = Object.freeze({ [WORKLOAD_HEADER]: 'true' });

interface ServiceStub extends grpc.Client {
  FetchX509SVID(
    req: object,
    md: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<RawX509SvidResponse>;
  FetchX509Bundles(
    req: object,
    md: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<RawX509BundlesResponse>;
  FetchJWTBundles(
    req: object,
    md: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<RawJwtBundlesResponse>;
  FetchJWTSVID(
    req: RawJwtSvidRequest,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: RawJwtSvidResponse) => void,
  ): grpc.ClientUnaryCall;
  ValidateJWTSVID(
    req: RawValidateJwtSvidRequest,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: RawValidateJwtSvidResponse) => void,
  ): grpc.ClientUnaryCall;
}

function checkTimeout(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_TIMEOUT_MS) {
    throw new IdentityError(
      'workload-invalid-option',
      `${name} must be a finite number of ms in (0, ${MAX_TIMEOUT_MS}]`,
    );
  }
  return v;
}

/** Validates and normalises an audience argument (order kept, duplicates dropped). */
export function normalizeAudience(audience: unknown): string[] {
  const list =
    typeof audience === 'string' ? [audience] : Array.isArray(audience) ? (audience as unknown[]) : undefined;
  if (list === undefined) {
    throw new IdentityError(
      'workload-invalid-audience',
      'audience must be a string or a non-empty array of strings',
    );
  }
  if (list.length === 0) throw new IdentityError('workload-invalid-audience', 'audience must not be empty');
  if (list.length > SVID_LIMITS.jwtMaxAudiences) {
    throw new IdentityError(
      'workload-invalid-audience',
      `at most ${SVID_LIMITS.jwtMaxAudiences} audience values`,
    );
  }
  const out: string[] = [];
  for (const a of list) {
    if (typeof a !== 'string' || a === '') {
      throw new IdentityError('workload-invalid-audience', 'every audience value must be a non-empty string');
    }
    if (a.length > MAX_AUDIENCE_CHARS) {
      throw new IdentityError(
        'workload-invalid-audience',
        `an audience value is at most ${MAX_AUDIENCE_CHARS} characters`,
      );
    }
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

function abortedError(signal: AbortSignal, what: string): IdentityError {
  return new IdentityError('workload-aborted', `${what} was aborted`, { cause: signal.reason });
}

/**
 * A client of the SPIFFE Workload API (usually the SPIRE agent on this node).
 *
 * - One-shot calls (`fetch…`, `validateJwtSvid`) make one RPC with a finite deadline and never
 *   retry; failures map to `IdentityError`s (`workload-no-identity` for `PermissionDenied`,
 *   `workload-unavailable`, `workload-invalid-argument`, …) with the gRPC status in `cause`.
 * - Watches (`watch…`) keep a stream open and retry by the published table
 *   (docs/workload-api.md): `InvalidArgument` and `Unimplemented` end the watch, `PermissionDenied`
 *   retries on a slow lane (redacting by default), everything else backs off exponentially with
 *   jitter. Watches of one kind share one stream.
 * - Every call sends the `workload.spiffe.io: true` metadata and takes an `AbortSignal`.
 * - `close()` (idempotent, also `await using`) cancels everything; nothing keeps the process
 *   alive afterwards.
 *
 * @example
 * ```ts
 * await using client = new WorkloadAPIClient({ address: 'unix:///run/spire/agent.sock' });
 * const svid = await client.fetchX509Svid();
 * for await (const ctx of client.watchX509Context()) console.log(ctx.svids[0]?.spiffeId.toString());
 * ```
 */
export class WorkloadAPIClient implements AsyncDisposable {
  /** The validated address (`unix:///…` or `tcp://…`). */
  readonly address: string;
  readonly #addr: WorkloadAddress;
  readonly #stub: ServiceStub;
  readonly #h2: H2FirstMessageClient;
  readonly #methods: Record<StreamRpc, StreamMethod>;
  /** The last answer of each one-shot stream RPC, raw and parsed. */
  readonly #memo = new Map<StreamRpc, { bytes: Buffer; value: unknown }>();
  readonly #timeoutMs: number;
  readonly #limits: WorkloadLimits;
  readonly #calls = new Set<AnyCall>();
  /** Parse caches of one-shot fetches, one per kind (watches have their own). */
  readonly #fetchCaches: { x509: ParseCaches; x509Bundles: ParseCaches; jwtBundles: ParseCaches } = {
    x509: newParseCaches(),
    x509Bundles: newParseCaches(),
    jwtBundles: newParseCaches(),
  };
  readonly #watches = new Set<Watch<unknown>>();
  readonly #x509Hub: StreamHub<RawX509SvidResponse, X509Context>;
  readonly #x509BundlesHub: StreamHub<RawX509BundlesResponse, BundleSet>;
  readonly #jwtBundlesHub: StreamHub<RawJwtBundlesResponse, BundleSet>;
  #closed = false;

  /**
   * @param options - address, deadlines, retry policy, message limits.
   * @throws IdentityError `workload-address-missing`, `workload-address-invalid`,
   *   `workload-invalid-option`.
   */
  constructor(options: WorkloadAPIClientOptions = {}) {
    this.#addr = resolveWorkloadAddress(options.address);
    this.address = this.#addr.uri;
    this.#timeoutMs = checkTimeout('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS);
    const maxReceive = options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE;
    if (!Number.isInteger(maxReceive) || maxReceive < 64 * 1024 || maxReceive > 1024 * 1024 * 1024) {
      throw new IdentityError(
        'workload-invalid-option',
        'maxReceiveMessageBytes must be an integer in [64 KiB, 1 GiB]',
      );
    }
    this.#limits = { ...defaultWorkloadLimits, ...(options.limits ?? {}) };
    for (const [k, v] of Object.entries(this.#limits)) {
      if (!Number.isInteger(v) || (v as number) < 1) {
        throw new IdentityError('workload-invalid-option', `limits.${k} must be a positive integer`);
      }
    }
    const backoff = options.backoff ?? defaultBackoff;
    const noIdentityBackoff = options.noIdentityBackoff ?? defaultNoIdentityBackoff;
    if (typeof backoff !== 'function' || typeof noIdentityBackoff !== 'function') {
      throw new IdentityError(
        'workload-invalid-option',
        'backoff and noIdentityBackoff must be factories (() => Backoff)',
      );
    }
    const { definition } = loadWorkloadService();
    const codec = (name: StreamRpc): StreamMethod => {
      const c = definition[name] as unknown as MethodCodec;
      return {
        path: c.path,
        requestSerialize: c.requestSerialize,
        responseDeserialize: boundedDeserializer(name, this.#limits, c.responseDeserialize),
        emptyRequest: c.requestSerialize({}),
      };
    };
    this.#methods = {
      FetchX509SVID: codec('FetchX509SVID'),
      FetchX509Bundles: codec('FetchX509Bundles'),
      FetchJWTBundles: codec('FetchJWTBundles'),
    };
    // The same proto, with this client's count limits checked on the wire before decoding.
    const bounded: Record<string, grpc.MethodDefinition<object, object>> = { ...definition };
    for (const name of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles', 'FetchJWTSVID'] as const) {
      const m = definition[name] as grpc.MethodDefinition<object, object>;
      bounded[name] = {
        ...m,
        responseDeserialize: boundedDeserializer(name, this.#limits, m.responseDeserialize),
      };
    }
    const Client = grpc.makeClientConstructor(bounded, 'SpiffeWorkloadAPI');
    this.#stub = new Client(this.#addr.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': maxReceive,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
      // Retries are ours (the published table), not grpc-js's.
      'grpc.enable_retries': 0,
      // A closed client must release its connection at once, not when a shared pool sweeps it.
      'grpc.use_local_subchannel_pool': 1,
      // Reconnect quickly when the agent comes back; the watch backoff paces the attempts.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.service_config_disable_resolution': 1,
    }) as unknown as ServiceStub;

    this.#h2 = new H2FirstMessageClient(
      this.#addr.kind === 'unix'
        ? { kind: 'unix', path: this.#addr.path }
        : { kind: 'tcp', host: this.#addr.host, port: this.#addr.port },
      maxReceive,
    );
    const hubOpts = {
      address: this.address,
      metadata: () => this.#metadata(),
      backoff,
      noIdentityBackoff,
      redactOnPermissionDenied: options.redactOnPermissionDenied ?? true,
    };
    const limits = this.#limits;
    const x509Caches = newParseCaches();
    const x509BundleCaches = newParseCaches();
    const jwtBundleCaches = newParseCaches();
    const x509Spec: HubSpec<RawX509SvidResponse, X509Context> = {
      rpc: 'FetchX509SVID',
      what: 'X.509 context',
      open: (md) => this.#stub.FetchX509SVID({}, md),
      fingerprint: fingerprintX509,
      parse: (raw) => parseX509Context(raw, limits, x509Caches),
      empty: () =>
        Object.freeze({ svids: Object.freeze([]), bundles: new BundleSet(), crls: Object.freeze([]) }),
      removed: (prev, next) => {
        const nextKeys = new Set(next.svids.map(svidKey));
        const nextTds = new Set(next.bundles.x509Bundles.map((b) => b.trustDomain.name));
        return {
          spiffeIds: prev.svids.filter((s) => !nextKeys.has(svidKey(s))).map((s) => s.spiffeId.toString()),
          trustDomains: prev.bundles.x509Bundles
            .map((b) => b.trustDomain.name)
            .filter((n) => !nextTds.has(n)),
        };
      },
    };
    const bundleRemoved = (kind: 'x509' | 'jwt') => (prev: BundleSet, next: BundleSet) => {
      const list = (s: BundleSet) =>
        (kind === 'x509' ? s.x509Bundles : s.jwtBundles).map((b) => b.trustDomain.name);
      const nextTds = new Set(list(next));
      return { spiffeIds: [], trustDomains: list(prev).filter((n) => !nextTds.has(n)) };
    };
    this.#x509Hub = new StreamHub(x509Spec, hubOpts);
    this.#x509BundlesHub = new StreamHub(
      {
        rpc: 'FetchX509Bundles',
        what: 'X.509 bundles',
        open: (md) => this.#stub.FetchX509Bundles({}, md),
        fingerprint: fingerprintX509Bundles,
        parse: (raw) => parseX509Bundles(raw, limits, x509BundleCaches),
        empty: () => new BundleSet(),
        removed: bundleRemoved('x509'),
      },
      hubOpts,
    );
    this.#jwtBundlesHub = new StreamHub(
      {
        rpc: 'FetchJWTBundles',
        what: 'JWT bundles',
        open: (md) => this.#stub.FetchJWTBundles({}, md),
        fingerprint: fingerprintJwtBundles,
        parse: (raw) => parseJwtBundles(raw, limits, jwtBundleCaches),
        empty: () => new BundleSet(),
        removed: bundleRemoved('jwt'),
      },
      hubOpts,
    );
  }

  /** Whether {@link WorkloadAPIClient.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  #metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(WORKLOAD_HEADER, 'true');
    return md;
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new IdentityError('workload-closed', `${what}: the WorkloadAPIClient is closed`);
  }

  #deadline(opts: CallOptions | undefined): grpc.Deadline {
    return Date.now() + checkTimeout('timeoutMs', opts?.timeoutMs, this.#timeoutMs);
  }

  /** Runs `start` with abort and close handling; `start` gets resolve/reject wired to the call. */
  #run<T>(
    what: string,
    opts: CallOptions | undefined,
    start: (finish: (err: unknown, value?: T) => void) => AnyCall,
  ): Promise<T> {
    this.#checkOpen(what);
    const signal = opts?.signal;
    if (signal?.aborted) return Promise.reject(abortedError(signal, what));
    return new Promise<T>((resolve, reject) => {
      let done = false;
      let call: AnyCall | undefined;
      const onAbort = (): void => {
        if (done) return;
        finish(abortedError(signal!, what));
        call?.cancel();
      };
      const finish = (err: unknown, value?: T): void => {
        if (done) return;
        done = true;
        signal?.removeEventListener('abort', onAbort);
        if (call) this.#calls.delete(call);
        if (err !== undefined && err !== null) reject(err);
        else resolve(value as T);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        call = start(finish);
      } catch (err) {
        finish(err);
        return;
      }
      if (!done) this.#calls.add(call);
    });
  }

  /**
   * First message of a stream RPC, parsed. One-shot fetches use a small gRPC-over-HTTP/2 client
   * (src/internal/grpc-h2.ts) on their own connection: about half the CPU of a grpc-js call, which
   * matters for programs that poll. Watches and unary calls go through grpc-js.
   */
  #first<Raw, T>(rpc: StreamRpc, parse: (raw: Raw) => T, opts: CallOptions | undefined): Promise<T> {
    const timeoutMs = checkTimeout('timeoutMs', opts?.timeoutMs, this.#timeoutMs);
    const method = this.#methods[rpc];
    return this.#run<T>(rpc, opts, (finish) => {
      const call = this.#h2.first(method.path, method.emptyRequest, WORKLOAD_HEADERS, timeoutMs);
      call.result.then(
        (buf) => {
          try {
            // An answer byte-for-byte equal to the last one of this RPC parses to the same
            // immutable value: reuse it (parsing is pure and independent of the clock).
            const memo = this.#memo.get(rpc);
            if (memo?.bytes.equals(buf)) {
              finish(undefined, memo.value as T);
              return;
            }
            let raw: Raw;
            try {
              raw = method.responseDeserialize(buf) as Raw;
            } catch (err) {
              if (err instanceof IdentityError) throw err; // a limit, checked before decoding
              throw new IdentityError('workload-malformed-response', `${rpc}: the message does not decode`, {
                cause: err,
              });
            }
            const value = parse(raw);
            this.#memo.set(rpc, { bytes: buf, value });
            finish(undefined, value);
          } catch (err) {
            finish(err);
          }
        },
        (st: H2Status) => {
          if (this.#closed)
            finish(new IdentityError('workload-closed', `${rpc}: the WorkloadAPIClient was closed`));
          else if (st.code === grpc.status.OK) {
            finish(
              new IdentityError('workload-rpc-failed', `${rpc} at ${this.address} ended without a message`),
            );
          } else finish(errorFromStatus(st, rpc, this.address));
        },
      );
      return { cancel: () => call.cancel() };
    });
  }

  #unary<Req, Res>(
    rpc: 'FetchJWTSVID' | 'ValidateJWTSVID',
    req: Req,
    opts: CallOptions | undefined,
    mapError: (err: GrpcErrorLike) => IdentityError = (err) => errorFromStatus(err, rpc, this.address),
  ): Promise<Res> {
    const deadline = this.#deadline(opts);
    return this.#run<Res>(rpc, opts, (finish) => {
      const method = this.#stub[rpc] as unknown as (
        req: Req,
        md: grpc.Metadata,
        o: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, res?: Res) => void,
      ) => grpc.ClientUnaryCall;
      return method.call(this.#stub, req, this.#metadata(), { deadline }, (err, res) => {
        if (err) {
          finish(
            this.#closed
              ? new IdentityError('workload-closed', `${rpc}: the WorkloadAPIClient was closed`)
              : mapError(err),
          );
        } else {
          finish(undefined, res);
        }
      });
    });
  }

  /**
   * Fetches the current X.509 context: every X509-SVID of this workload, the bundles of their
   * trust domains and of federated trust domains, and the CRLs.
   *
   * @param opts - abort signal and deadline.
   * @throws IdentityError `workload-no-identity`, `workload-unavailable`, `workload-malformed-response`, …
   */
  async fetchX509Context(opts?: CallOptions): Promise<X509Context> {
    return this.#first(
      'FetchX509SVID',
      (raw: RawX509SvidResponse) => parseX509Context(raw, this.#limits, this.#fetchCaches.x509),
      opts,
    );
  }

  /**
   * Fetches one X509-SVID: the first (default identity) unless `select` names another.
   *
   * @param select - `{ hint }`, `{ spiffeId }` or a picker; default the first SVID.
   * @param opts - abort signal and deadline.
   * @throws IdentityError `workload-svid-not-found` when nothing matches, or a fetch error.
   */
  async fetchX509Svid(select?: X509SvidSelector | undefined, opts?: CallOptions): Promise<X509Svid> {
    const ctx = await this.fetchX509Context(opts);
    return selectSvid(ctx.svids, select);
  }

  /**
   * Fetches every X509-SVID of this workload (the first is the default identity).
   *
   * @param opts - abort signal and deadline.
   */
  async fetchX509Svids(opts?: CallOptions): Promise<readonly X509Svid[]> {
    return (await this.fetchX509Context(opts)).svids;
  }

  /**
   * Fetches the X.509 bundles (own and federated trust domains).
   *
   * @param opts - abort signal and deadline.
   */
  async fetchX509Bundles(opts?: CallOptions): Promise<BundleSet> {
    return this.#first(
      'FetchX509Bundles',
      (raw: RawX509BundlesResponse) => parseX509Bundles(raw, this.#limits, this.#fetchCaches.x509Bundles),
      opts,
    );
  }

  /**
   * Fetches the JWT bundles (own and federated trust domains).
   *
   * @param opts - abort signal and deadline.
   */
  async fetchJwtBundles(opts?: CallOptions): Promise<BundleSet> {
    return this.#first(
      'FetchJWTBundles',
      (raw: RawJwtBundlesResponse) => parseJwtBundles(raw, this.#limits, this.#fetchCaches.jwtBundles),
      opts,
    );
  }

  /**
   * Fetches JWT-SVIDs for an audience: one per identity of this workload, or only `subject`'s.
   *
   * @param params - audience (mandatory), optional subject, abort signal and deadline.
   * @throws IdentityError `workload-invalid-audience`, `workload-no-identity`, …
   */
  async fetchJwtSvids(params: FetchJwtSvidsParams): Promise<JwtSvid[]> {
    const audience = normalizeAudience(params?.audience);
    let subject: string | undefined;
    if (params.subject !== undefined) {
      if (typeof params.subject !== 'string' || params.subject === '') {
        throw new IdentityError('workload-invalid-option', 'subject must be a non-empty SPIFFE ID string');
      }
      subject = params.subject;
    }
    const res = await this.#unary<RawJwtSvidRequest, RawJwtSvidResponse>(
      'FetchJWTSVID',
      { audience, spiffe_id: subject ?? '' },
      params,
    );
    return parseJwtSvids(res?.svids ?? [], subject, this.#limits);
  }

  /**
   * Fetches one JWT-SVID for an audience: the first identity's unless `subject`, `hint` or
   * `select` says otherwise.
   *
   * @param params - audience (mandatory), subject, hint or selector, abort signal and deadline.
   * @throws IdentityError `workload-svid-not-found` when the hint or selector matches nothing.
   */
  async fetchJwtSvid(params: FetchJwtSvidParams): Promise<JwtSvid> {
    const svids = await this.fetchJwtSvids(params);
    const selector: JwtSvidSelector | undefined =
      params.hint !== undefined
        ? { hint: params.hint }
        : params.select !== undefined
          ? params.select
          : undefined;
    return selectSvid(svids, selector);
  }

  /**
   * Asks the agent to validate a JWT-SVID for `audience` (Workload API §6.3: preferred when
   * offered). Returns the token parsed, after the agent accepted it.
   *
   * @param token - the JWT-SVID in compact form.
   * @param audience - the audience you expect in it.
   * @param opts - abort signal and deadline.
   * @throws IdentityError `workload-jwt-svid-rejected` when the agent refuses the token (its reason
   *   in the message), `workload-invalid-audience`, `workload-invalid-option`, or a call error.
   */
  async validateJwtSvid(token: string, audience: string, opts?: CallOptions): Promise<JwtSvid> {
    if (typeof token !== 'string' || token === '') {
      throw new IdentityError('workload-invalid-option', 'the token must be a non-empty string');
    }
    if (token.length > SVID_LIMITS.jwtMaxTokenChars) {
      throw new IdentityError(
        'workload-invalid-option',
        `the token is longer than ${SVID_LIMITS.jwtMaxTokenChars} characters`,
      );
    }
    if (typeof audience !== 'string') {
      throw new IdentityError('workload-invalid-audience', 'ValidateJWTSVID takes one audience string');
    }
    normalizeAudience(audience);
    const res = await this.#unary<RawValidateJwtSvidRequest, RawValidateJwtSvidResponse>(
      'ValidateJWTSVID',
      { audience, svid: token },
      opts,
      (err) =>
        err.code === grpc.status.INVALID_ARGUMENT
          ? new IdentityError(
              'workload-jwt-svid-rejected',
              `the Workload API at ${this.address} rejected the JWT-SVID: ${err.details ?? err.message ?? 'no reason given'}`,
              { cause: err, details: { grpcCode: err.code } },
            )
          : errorFromStatus(err, 'ValidateJWTSVID', this.address),
    );
    const svid = parseJwtSvidInsecure(token);
    if (res?.spiffe_id !== svid.spiffeId.toString()) {
      throw new IdentityError(
        'workload-malformed-response',
        `ValidateJWTSVID: the agent answered for ${String(res?.spiffe_id).slice(0, 300)}, the token is for ${svid.spiffeId}`,
      );
    }
    return svid;
  }

  /**
   * Verifies a peer's X509-SVID chain against the current X.509 bundles (the bundle of the peer's
   * own trust domain), then asks `authorizer` whether that SPIFFE ID may proceed.
   *
   * The bundles come from a running X.509 watch of this client when there is one, else from one
   * FetchX509Bundles call.
   *
   * @param peerChain - leaf first: PEM, concatenated DER, or a list of certificates/DER.
   * @param authorizer - e.g. `matchId(…)`, `matchMemberOf(…)`; default: any verified ID. A throwing
   *   authorizer denies.
   * @param opts - clock, abort signal and deadline.
   * @throws IdentityError an `x509svid-` code when the chain does not verify, or
   *   `workload-peer-unauthorized` when the authorizer says no.
   */
  async validatePeerIdentity(
    peerChain: CertificateChainInput,
    authorizer?: SpiffeIdMatcher | undefined,
    opts?: ValidatePeerOptions,
  ): Promise<X509SvidVerification> {
    this.#checkOpen('validatePeerIdentity');
    const fromWatch = this.#x509Hub.state;
    let bundles: BundleSet;
    if (fromWatch !== undefined && fromWatch.svids.length > 0) bundles = fromWatch.bundles;
    else bundles = this.#x509BundlesHub.state ?? (await this.fetchX509Bundles(opts));
    const verified = verifyX509Svid(
      peerChain,
      bundles,
      opts?.now === undefined ? undefined : { now: opts.now },
    );
    if (authorizer !== undefined) {
      let allowed = false;
      let cause: unknown;
      try {
        allowed = authorizer(verified.spiffeId) === true;
      } catch (err) {
        cause = err;
      }
      if (!allowed) {
        throw new IdentityError('workload-peer-unauthorized', `peer ${verified.spiffeId} is not authorized`, {
          cause,
          details: { spiffeId: verified.spiffeId.toString() },
        });
      }
    }
    return verified;
  }

  #watch<T>(hub: StreamHub<unknown, T>, what: string, opts?: WatchOptions): Watch<T> {
    this.#checkOpen(what);
    const w = new Watch<T>(hub, opts);
    const any = w as unknown as Watch<unknown>;
    if (!w.closed) {
      this.#watches.add(any);
      w.once('closed', () => this.#watches.delete(any));
    }
    return w;
  }

  /**
   * Watches the X.509 context (FetchX509SVID). Iterate it or listen to its events; see
   * {@link Watch}.
   *
   * @param opts - `signal` ends the watch.
   * @throws IdentityError `workload-closed` after `close()`.
   */
  watchX509Context(opts?: WatchOptions): Watch<X509Context> {
    return this.#watch(this.#x509Hub as StreamHub<unknown, X509Context>, 'watchX509Context', opts);
  }

  /**
   * Watches the X.509 bundles (FetchX509Bundles).
   *
   * @param opts - `signal` ends the watch.
   */
  watchX509Bundles(opts?: WatchOptions): Watch<BundleSet> {
    return this.#watch(this.#x509BundlesHub as StreamHub<unknown, BundleSet>, 'watchX509Bundles', opts);
  }

  /**
   * Watches the JWT bundles (FetchJWTBundles).
   *
   * @param opts - `signal` ends the watch.
   */
  watchJwtBundles(opts?: WatchOptions): Watch<BundleSet> {
    return this.#watch(this.#jwtBundlesHub as StreamHub<unknown, BundleSet>, 'watchJwtBundles', opts);
  }

  /**
   * Closes the client: ends every watch, cancels every call in flight (they reject with
   * `workload-closed`) and closes the channel. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#watches].map((w) => w.close()));
    this.#x509Hub.stop();
    this.#x509BundlesHub.stop();
    this.#jwtBundlesHub.stop();
    for (const call of [...this.#calls]) call.cancel();
    this.#calls.clear();
    this.#memo.clear();
    this.#h2.close();
    this.#stub.close();
  }

  /** Same as {@link WorkloadAPIClient.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
