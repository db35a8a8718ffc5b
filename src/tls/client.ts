import { isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { IdentityError } from '../errors/index.js';
import type { SpiffeId } from '../spiffeid/index.js';
import type { X509Svid } from '../svid/index.js';
import { type Authorizer, isAuthorizer } from './authorizer.js';
import { type MtlsOptions, readMinVersion, TlsMaterialTracker } from './material.js';
import { checkSource, type X509SvidSource } from './source.js';
import { asIdentityError, peerChainDer, recordPeer, verifyPeerChain } from './verify.js';

/** Options of the client helpers. */
export interface MtlsClientOptions extends MtlsOptions {
  /** Give up on a handshake that takes longer, in ms. Default 10 000. */
  handshakeTimeoutMs?: number | undefined;
}

/** Where and how to connect: a subset of `tls.connect` options the helpers pass through. */
export interface MtlsConnectOptions {
  /** Host name or IP address. */
  host?: string | undefined;
  /** TCP port. */
  port?: number | undefined;
  /** SNI server name; default `host` when it is a DNS name, none for an IP address. */
  servername?: string | undefined;
  /** An already connected socket to run TLS over (undici's `httpSocket`, proxies). */
  socket?: Socket | undefined;
  /** ALPN protocols, e.g. `['h2', 'http/1.1']`. */
  ALPNProtocols?: string[] | undefined;
  /** Local address to bind. */
  localAddress?: string | undefined;
  /** Connect over a Unix socket instead of TCP. */
  path?: string | undefined;
  /** Overrides the client's handshake timeout for this connection, in ms. */
  handshakeTimeoutMs?: number | undefined;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

function checkAuthorizer(authorizer: unknown): Authorizer {
  if (!isAuthorizer(authorizer)) {
    throw new IdentityError(
      'tls-invalid-argument',
      'an Authorizer is required (authorizeId(), authorizeOneOf(), authorizeMemberOf(), ...)',
    );
  }
  return authorizer;
}

function checkTimeout(ms: unknown, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new IdentityError('tls-invalid-argument', `${what} must be a positive number of milliseconds`);
  }
  return ms;
}

/**
 * A SPIFFE mTLS client: presents the source's current SVID and accepts a server only when its
 * X509-SVID verifies against the bundle of the server's **own** trust domain and the
 * authorizer allows its SPIFFE ID. No DNS hostname check (SPIFFE identities are URI SANs), no
 * TLS session resumption (Node skips identity checks on resumed sessions), TLS 1.3 unless
 * `minTlsVersion: 'TLSv1.2'`.
 *
 * Each connection uses the material current at connect time, so a rotated SVID or updated
 * bundle is used from the next connection on. One SecureContext is built per SVID/bundle
 * version and shared by its connections.
 *
 * @example
 * ```ts
 * const client = new MtlsClient(source, authorizeId('spiffe://example.org/db'));
 * const socket = client.connect({ host: 'db.internal', port: 5443 });
 * socket.on('secureConnect', () => console.log('talking to', getPeerSpiffeId(socket)));
 * ```
 */
export class MtlsClient {
  /** The authorizer every server must pass. */
  readonly authorizer: Authorizer;
  readonly #tracker: TlsMaterialTracker;
  readonly #timeoutMs: number;

  /**
   * @param source - the identity source.
   * @param authorizer - which servers are acceptable.
   * @param opts - protocol minimum, handshake timeout.
   * @throws IdentityError `tls-invalid-argument`.
   */
  constructor(source: X509SvidSource, authorizer: Authorizer, opts?: MtlsClientOptions) {
    if (opts !== undefined && (typeof opts !== 'object' || opts === null)) {
      throw new IdentityError('tls-invalid-argument', 'options must be an object');
    }
    this.authorizer = checkAuthorizer(authorizer);
    this.#timeoutMs =
      checkTimeout(opts?.handshakeTimeoutMs, 'handshakeTimeoutMs') ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#tracker = new TlsMaterialTracker(checkSource(source), readMinVersion(opts?.minTlsVersion));
  }

  /** The SVID the next connection presents. @throws IdentityError `tls-no-svid`. */
  currentSvid(): X509Svid {
    return this.#tracker.current().svid;
  }

  /**
   * Opens a verified mTLS connection. The returned socket emits `secureConnect` only after the
   * server passed every check; otherwise it is destroyed with an {@link IdentityError}
   * (`tls-peer-untrusted`, `tls-peer-unauthorized`, `tls-peer-chain-invalid`,
   * `tls-handshake-timeout`, ...) before the application can write a byte to it.
   *
   * @param options - host/port (or socket), SNI, ALPN.
   * @throws IdentityError `tls-no-svid`, `tls-no-bundle`, `tls-context-failed`, `tls-closed`.
   */
  connect(options: MtlsConnectOptions): TLSSocket {
    if (typeof options !== 'object' || options === null) {
      throw new IdentityError('tls-invalid-argument', 'connect options must be an object');
    }
    const timeoutMs = checkTimeout(options.handshakeTimeoutMs, 'handshakeTimeoutMs') ?? this.#timeoutMs;
    const material = this.#tracker.current();
    const tracker = this.#tracker;
    const authorizer = this.authorizer;
    let outcome: { id: SpiffeId } | { error: IdentityError } | undefined;
    const verify = (cert: PeerCertificate): { id: SpiffeId } | { error: IdentityError } => {
      try {
        // The freshest bundles: a removed authority is refused from the next handshake on.
        let bundles = material.bundles;
        try {
          bundles = tracker.current().bundles;
        } catch {
          // keep the bundles of the connection's own material
        }
        return { id: verifyPeerChain(peerChainDer(cert), bundles, authorizer, 'server').spiffeId };
      } catch (err) {
        return { error: asIdentityError(err, 'tls-peer-untrusted') };
      }
    };
    const host = options.host;
    const servername =
      options.servername ?? (host !== undefined && host !== '' && isIP(host) === 0 ? host : undefined);
    const tlsOptions: ConnectionOptions = {
      secureContext: material.clientContext(),
      // Manual mode: the gate below enforces OpenSSL's verdict and ours, with a reason each.
      rejectUnauthorized: false,
      // Replaces the DNS hostname check; runs only for full (non-resumed) handshakes that
      // OpenSSL verified.
      checkServerIdentity: (_hostname, cert) => {
        outcome = verify(cert);
        return 'error' in outcome ? outcome.error : undefined;
      },
    };
    if (host !== undefined) tlsOptions.host = host;
    if (options.port !== undefined) tlsOptions.port = options.port;
    if (servername !== undefined) tlsOptions.servername = servername;
    if (options.socket !== undefined) tlsOptions.socket = options.socket;
    if (options.ALPNProtocols !== undefined) tlsOptions.ALPNProtocols = options.ALPNProtocols;
    if (options.localAddress !== undefined)
      (tlsOptions as { localAddress?: string }).localAddress = options.localAddress;
    if (options.path !== undefined) tlsOptions.path = options.path;

    const socket = connect(tlsOptions);
    const timer = setTimeout(() => {
      socket.destroy(
        new IdentityError('tls-handshake-timeout', `no TLS handshake with the server within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    timer.unref?.();
    socket.once('close', () => clearTimeout(timer));
    // The gate sits in front of the socket's own emit: 'secureConnect' reaches listeners (the
    // caller, undici, the https machinery) only for a verified server, and destroying here
    // happens before Node flushes data written while connecting, so nothing reaches a refused
    // server.
    let gated = false;
    const check = (): IdentityError | undefined => {
      let result = outcome;
      if (socket.isSessionReused()) {
        result = {
          error: new IdentityError(
            'tls-session-resumed',
            'the handshake resumed a session, which skips the identity checks',
          ),
        };
      } else if (result === undefined) {
        // OpenSSL refused the chain before our check ran: name our reason if we have one.
        const ours = verify(socket.getPeerCertificate(true));
        const why = String(socket.authorizationError ?? 'unknown');
        result =
          'error' in ours
            ? ours
            : {
                error: new IdentityError(
                  'tls-peer-chain-invalid',
                  `OpenSSL refused the server chain: ${why}`,
                  {
                    details: { opensslError: why, role: 'server' },
                  },
                ),
              };
      }
      if ('error' in result) return result.error;
      recordPeer(socket, result.id);
      return undefined;
    };
    const baseEmit = socket.emit;
    (socket as { emit: typeof socket.emit }).emit = function (
      this: TLSSocket,
      event: string | symbol,
      ...args: unknown[]
    ) {
      if (event === 'secureConnect' && !gated) {
        gated = true;
        clearTimeout(timer);
        const error = check();
        if (error !== undefined) {
          socket.destroy(error);
          return false;
        }
      }
      return (baseEmit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
        this,
        event,
        ...args,
      );
    } as typeof socket.emit;
    return socket;
  }

  /** Stops following the source. Idempotent; open connections are not touched. */
  close(): void {
    this.#tracker.close();
  }

  /** Same as {@link MtlsClient.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/**
 * Opens one SPIFFE mTLS connection (a one-off {@link MtlsClient}; keep a client for many
 * connections so they share one SecureContext).
 *
 * @param source - the identity source.
 * @param authorizer - which servers are acceptable.
 * @param options - host/port (or socket), SNI, ALPN, plus the client options.
 */
export function connectMtls(
  source: X509SvidSource,
  authorizer: Authorizer,
  options: MtlsConnectOptions & MtlsClientOptions,
): TLSSocket {
  const client = new MtlsClient(source, authorizer, options);
  try {
    return client.connect(options);
  } finally {
    client.close();
  }
}

/**
 * Options for a plain `tls.connect` (or `https.request`) call from the source's current SVID:
 * a SecureContext with the SVID and the trusted roots, and a `checkServerIdentity` that
 * verifies the server's X509-SVID against the bundle of its own trust domain and runs the
 * authorizer. `rejectUnauthorized` stays on. Prefer {@link MtlsClient}: it also records the
 * peer ID, names OpenSSL refusals with our codes and refuses resumed sessions; never add a
 * `session` to these options (Node skips `checkServerIdentity` on resumed handshakes).
 *
 * The options carry `agent: false` (ignored by `tls.connect`): an `https.Agent` pools sockets
 * and caches TLS sessions by host and TLS options but not by `checkServerIdentity`, so a socket
 * verified for one authorizer would serve a request expecting another, and a resumed session
 * would skip the check. Do not override it; use `MtlsAgent` for pooled https.
 *
 * @param source - the identity source.
 * @param authorizer - which servers are acceptable.
 * @param opts - protocol minimum.
 */
export function tlsClientOptions(
  source: X509SvidSource,
  authorizer: Authorizer,
  opts?: MtlsOptions,
): ConnectionOptions & {
  /** Never pool or resume: see above. */
  agent: false;
} {
  const auth = checkAuthorizer(authorizer);
  const tracker = new TlsMaterialTracker(checkSource(source), readMinVersion(opts?.minTlsVersion));
  try {
    const material = tracker.current();
    return {
      secureContext: material.clientContext(),
      rejectUnauthorized: true,
      // Never pooled or resumed by an https.Agent (see above).
      agent: false,
      checkServerIdentity: (_hostname, cert) => {
        try {
          verifyPeerChain(peerChainDer(cert), material.bundles, auth, 'server');
          return undefined;
        } catch (err) {
          return asIdentityError(err, 'tls-peer-untrusted');
        }
      },
    };
  } finally {
    tracker.close();
  }
}
