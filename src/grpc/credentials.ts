import type { SecureContextOptions, TLSSocket } from 'node:tls';
import {
  type CallCredentials,
  ChannelCredentials,
  type ChannelOptions,
  experimental,
  Metadata,
  ResponderBuilder,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
  status,
} from '@grpc/grpc-js';
import { IdentityError } from '../errors/index.js';
import type { SpiffeId } from '../spiffeid/index.js';
import { type Authorizer, isAuthorizer } from '../tls/authorizer.js';
import {
  type MtlsOptions,
  readMinVersion,
  serverSecureOptions,
  type TlsMaterial,
  TlsMaterialTracker,
} from '../tls/material.js';
import { checkSource, type X509SvidSource } from '../tls/source.js';
import { asIdentityError, peerChainDer, verifyPeerChain } from '../tls/verify.js';

type CertificateProvider = experimental.CertificateProvider;
type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;
type SecureConnector = experimental.SecureConnector;
type GrpcUri = experimental.GrpcUri;
type ContextWatcher = (options: SecureContextOptions | null) => void;

function checkAuthorizer(authorizer: unknown): Authorizer {
  if (!isAuthorizer(authorizer)) {
    throw new IdentityError(
      'tls-invalid-argument',
      'an Authorizer is required (authorizeId(), authorizeOneOf(), authorizeMemberOf(), ...)',
    );
  }
  return authorizer;
}

/**
 * A grpc-js CertificateProvider fed by a source: the SVID as identity, every trusted authority
 * as CA list (OpenSSL's first check; the SPIFFE check per trust domain is ours). It serves both
 * roles, so grpc-js's swapped parameter names cannot mix them up, and it delivers the current
 * value on the next tick after a listener is added: grpc-js reads the provider's state before it
 * registers its watcher and would lose a synchronous first update.
 */
class SourceCertificateProvider implements CertificateProvider {
  readonly #tracker: TlsMaterialTracker;
  readonly #ca = new Set<CaListener>();
  readonly #identity = new Set<IdentityListener>();

  constructor(tracker: TlsMaterialTracker) {
    this.#tracker = tracker;
    tracker.onChange((m) => {
      for (const l of [...this.#ca]) l(caUpdate(m));
      for (const l of [...this.#identity]) l(identityUpdate(m));
    });
  }

  #deliver<L>(set: Set<L>, listener: L, make: (m: TlsMaterial) => unknown): void {
    process.nextTick(() => {
      if (!set.has(listener)) return;
      let value: unknown = null;
      try {
        value = make(this.#tracker.current());
      } catch {
        value = null; // no SVID yet: grpc-js treats null as "not loaded"
      }
      (listener as (v: unknown) => void)(value);
    });
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#ca.add(listener);
    this.#deliver(this.#ca, listener, caUpdate);
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.#ca.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.add(listener);
    this.#deliver(this.#identity, listener, identityUpdate);
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.delete(listener);
  }
}

function caUpdate(m: TlsMaterial): experimental.CaCertificateUpdate {
  const ca = m.contextOptions.ca as string[];
  return { caCertificate: Buffer.from(ca.join('')) };
}

function identityUpdate(m: TlsMaterial): experimental.IdentityCertificateUpdate {
  return {
    certificate: Buffer.from(m.contextOptions.cert as string),
    privateKey: Buffer.from(m.contextOptions.key as string),
  };
}

const PROTOCOL_RANK: Record<string, number> = { 'TLSv1.2': 2, 'TLSv1.3': 3 };

/** grpc-js channel credentials doing SPIFFE mTLS, with a `close()`. */
export interface SpiffeChannelCredentials extends ChannelCredentials {
  /** The authorizer every server must pass. */
  readonly authorizer: Authorizer;
  /** Stops following the source. Idempotent. */
  close(): void;
}

class SpiffeChannelCredentialsImpl extends ChannelCredentials implements SpiffeChannelCredentials {
  readonly authorizer: Authorizer;
  readonly #inner: ChannelCredentials;
  readonly #tracker: TlsMaterialTracker;

  constructor(inner: ChannelCredentials, tracker: TlsMaterialTracker, authorizer: Authorizer) {
    super();
    this.#inner = inner;
    this.#tracker = tracker;
    this.authorizer = authorizer;
  }
  _isSecure(): boolean {
    return true;
  }
  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }
  _createSecureConnector(
    channelTarget: GrpcUri,
    options: ChannelOptions,
    callCredentials?: CallCredentials,
  ): SecureConnector {
    const inner = this.#inner._createSecureConnector(channelTarget, options, callCredentials);
    const min = PROTOCOL_RANK[this.#tracker.minVersion] ?? 3;
    return {
      async connect(socket) {
        const result = await inner.connect(socket);
        const tlsSocket = result.socket as TLSSocket;
        const protocol = typeof tlsSocket.getProtocol === 'function' ? tlsSocket.getProtocol() : null;
        if ((PROTOCOL_RANK[protocol ?? ''] ?? 0) < min) {
          tlsSocket.destroy();
          throw new IdentityError(
            'tls-protocol-too-old',
            `the server negotiated ${protocol}, below the minimum`,
          );
        }
        return result;
      },
      waitForReady: () => inner.waitForReady(),
      getCallCredentials: () => inner.getCallCredentials(),
      destroy: () => inner.destroy(),
    };
  }
  close(): void {
    this.#tracker.close();
  }
}

/**
 * grpc-js channel credentials for SPIFFE mTLS, rotating through grpc-js's experimental
 * CertificateProvider path: each new connection presents the source's current SVID and
 * accepts only a server whose X509-SVID verifies against the bundle of its own trust domain
 * and passes `authorizer`. The DNS hostname check is replaced by the SPIFFE check; connections
 * below the minimum TLS version are closed.
 *
 * Use a DNS name as the target host (an IP target puts the IP into SNI, which Node warns
 * about), or set `grpc.ssl_target_name_override`.
 *
 * @param source - the identity source.
 * @param authorizer - which servers are acceptable.
 * @param opts - protocol minimum.
 *
 * @example
 * ```ts
 * const creds = createGrpcChannelCredentials(source, authorizeId('spiffe://example.org/billing'));
 * const client = new BillingClient('billing.internal:8443', creds);
 * ```
 */
export function createGrpcChannelCredentials(
  source: X509SvidSource,
  authorizer: Authorizer,
  opts?: MtlsOptions,
): SpiffeChannelCredentials {
  const auth = checkAuthorizer(authorizer);
  const tracker = new TlsMaterialTracker(checkSource(source), readMinVersion(opts?.minTlsVersion));
  const provider = new SourceCertificateProvider(tracker);
  const inner = experimental.createCertificateProviderChannelCredentials(provider, provider, {
    rejectUnauthorized: true,
    checkServerIdentity: (_hostname, cert) => {
      try {
        verifyPeerChain(peerChainDer(cert), tracker.current().bundles, auth, 'server');
        return undefined;
      } catch (err) {
        return asIdentityError(err, 'tls-peer-untrusted');
      }
    },
  });
  return new SpiffeChannelCredentialsImpl(inner, tracker, auth);
}

/** Verified peer IDs by the request metadata object grpc-js hands to the handler. */
const callPeers = new WeakMap<Metadata, SpiffeId>();

/**
 * The verified SPIFFE ID of the client of a gRPC call, set by the interceptor of
 * {@link createGrpcServerCredentials}, or `undefined` when the call did not pass it.
 *
 * @param call - the handler's call object (`ServerUnaryCall`, streams).
 *
 * @example
 * ```ts
 * server.addService(Billing.service, {
 *   charge(call, cb) { cb(null, { by: getGrpcPeerSpiffeId(call)?.toString() }); },
 * });
 * ```
 */
export function getGrpcPeerSpiffeId(call: { metadata?: Metadata }): SpiffeId | undefined {
  const md = call?.metadata;
  return md instanceof Metadata ? callPeers.get(md) : undefined;
}

/** grpc-js server credentials doing SPIFFE mTLS, with a `close()`. */
export interface SpiffeServerCredentials extends ServerCredentials {
  /** The authorizer every client must pass. */
  readonly authorizer: Authorizer;
  /** Stops following the source. Idempotent. */
  close(): void;
}

class SpiffeServerCredentialsImpl extends ServerCredentials implements SpiffeServerCredentials {
  readonly authorizer: Authorizer;
  readonly #inner: ServerCredentials;
  readonly #tracker: TlsMaterialTracker;
  readonly #extra: SecureContextOptions & { secureOptions: number };
  readonly #watchers = new Map<ContextWatcher, ContextWatcher>();
  readonly #interceptors: ServerInterceptor[];

  constructor(
    inner: ServerCredentials,
    tracker: TlsMaterialTracker,
    authorizer: Authorizer,
    resumption: boolean,
  ) {
    const extra = {
      minVersion: tracker.minVersion,
      maxVersion: 'TLSv1.3' as const,
      secureOptions: serverSecureOptions(resumption),
    };
    super({ ...(inner._getConstructorOptions() ?? {}), ...extra });
    this.#inner = inner;
    this.#tracker = tracker;
    this.authorizer = authorizer;
    this.#extra = extra;
    this.#interceptors = [makeInterceptor(tracker, authorizer)];
  }
  override _isSecure(): boolean {
    return true;
  }
  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
  override _getConstructorOptions(): ReturnType<ServerCredentials['_getConstructorOptions']> {
    return {
      ...(this.#inner._getConstructorOptions() ?? {}),
      ...this.#extra,
      requestCert: true,
      rejectUnauthorized: true,
    };
  }
  /** The full option set, also before the provider's first (deferred) update. */
  override _getSecureContextOptions(): SecureContextOptions | null {
    try {
      return { ...this.#tracker.current().contextOptions, ...this.#extra };
    } catch {
      return null;
    }
  }
  override _getInterceptors(): ServerInterceptor[] {
    return this.#interceptors;
  }
  override _addWatcher(watcher: ContextWatcher): void {
    // setSecureContext resets every option it is not given: add the protocol bounds and
    // secureOptions to each update grpc-js applies.
    const wrapped: ContextWatcher = (options) =>
      watcher(options === null ? null : { ...options, ...this.#extra });
    this.#watchers.set(watcher, wrapped);
    this.#inner._addWatcher(wrapped);
  }
  override _removeWatcher(watcher: ContextWatcher): void {
    const wrapped = this.#watchers.get(watcher);
    if (wrapped === undefined) return;
    this.#watchers.delete(watcher);
    this.#inner._removeWatcher(wrapped);
  }
  close(): void {
    this.#tracker.close();
  }
}

function makeInterceptor(tracker: TlsMaterialTracker, authorizer: Authorizer): ServerInterceptor {
  return (_method, call: ServerInterceptingCallInterface) => {
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        let id: SpiffeId;
        try {
          const cert = call.getAuthContext().sslPeerCertificate;
          // grpc-js exposes the leaf only, and only for sockets OpenSSL verified against the
          // pooled roots; the leaf must chain to a root of its own trust domain's bundle.
          id = verifyPeerChain(
            cert?.raw ? [cert.raw] : [],
            tracker.current().bundles,
            authorizer,
            'client',
          ).spiffeId;
        } catch (err) {
          const e = asIdentityError(err, 'tls-peer-untrusted');
          call.sendStatus({
            code: e.code === 'tls-peer-unauthorized' ? status.PERMISSION_DENIED : status.UNAUTHENTICATED,
            details: e.message,
            metadata: new Metadata(),
          });
          return;
        }
        callPeers.set(metadata, id);
        next(metadata);
      })
      .build();
    const responder = new ResponderBuilder().withStart((next) => next(listener)).build();
    return new ServerInterceptingCall(call, responder);
  };
}

/** Options of {@link createGrpcServerCredentials}. */
export interface GrpcServerCredentialsOptions extends MtlsOptions {
  /** Let clients resume TLS sessions. Default `false`; each call is authorized either way. */
  sessionResumption?: boolean | undefined;
}

/**
 * grpc-js server credentials for SPIFFE mTLS, rotating through grpc-js's experimental
 * CertificateProvider path (the server calls `setSecureContext` with the full option set on
 * every SVID rotation or bundle update). Client certificates are required; an interceptor
 * verifies each call's client X509-SVID against the bundle of the client's own trust domain and
 * runs `authorizer` before the handler sees the request (`UNAUTHENTICATED` /
 * `PERMISSION_DENIED` otherwise). Handlers read the caller with {@link getGrpcPeerSpiffeId}.
 *
 * grpc-js hands interceptors the client's leaf certificate only, so the leaf must be signed by
 * an authority of its trust domain's bundle (SPIRE's default); chains through intermediates are
 * refused.
 *
 * @param source - the identity source.
 * @param authorizer - which clients may call.
 * @param opts - protocol minimum, resumption.
 */
export function createGrpcServerCredentials(
  source: X509SvidSource,
  authorizer: Authorizer,
  opts?: GrpcServerCredentialsOptions,
): SpiffeServerCredentials {
  const auth = checkAuthorizer(authorizer);
  const tracker = new TlsMaterialTracker(checkSource(source), readMinVersion(opts?.minTlsVersion));
  const provider = new SourceCertificateProvider(tracker);
  // grpc-js names the first parameter "ca" but uses it as the identity provider; the same
  // provider serves both roles here.
  const inner = experimental.createCertificateProviderServerCredentials(provider, provider, true);
  return new SpiffeServerCredentialsImpl(inner, tracker, auth, opts?.sessionResumption === true);
}
