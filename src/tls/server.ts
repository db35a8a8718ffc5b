import { createServer, type Server, type TLSSocket, type TlsOptions } from 'node:tls';
import { IdentityError } from '../errors/index.js';
import type { X509Svid } from '../svid/index.js';
import { type Authorizer, isAuthorizer } from './authorizer.js';
import {
  type MtlsOptions,
  readMinVersion,
  serverSecureOptions,
  type TlsMaterial,
  TlsMaterialTracker,
} from './material.js';
import { checkSource, type X509SvidSource } from './source.js';
import { asIdentityError, checkHandshakenSocket, recordPeer } from './verify.js';

/** Options of the server helpers. */
export interface MtlsServerOptions extends MtlsOptions {
  /**
   * Let clients resume TLS sessions (tickets). Default `false`. When on, every resumed
   * connection is still verified and authorized again against the current bundles.
   */
  sessionResumption?: boolean | undefined;
  /** Called for every refused peer, after its socket was destroyed. */
  onPeerRejected?: ((error: IdentityError, socket: TLSSocket) => void) | undefined;
  /** Called after each context swap (SVID rotation or bundle update). */
  onRotated?: ((svid: X509Svid) => void) | undefined;
  /** Called when a rotation could not be applied (the previous context stays in use). */
  onError?: ((error: IdentityError) => void) | undefined;
}

/** Options of {@link createMtlsTlsServer}: the helper options plus node:tls server settings. */
export interface CreateMtlsTlsServerOptions extends MtlsServerOptions {
  /** Abort handshakes that take longer, in ms. Default 10 000. */
  handshakeTimeoutMs?: number | undefined;
  /** ALPN protocols to offer, e.g. `['http/1.1']`. */
  ALPNProtocols?: string[] | undefined;
}

/** A server set up by {@link attachMtls}. */
export interface MtlsServerBinding {
  /** The authorizer applied to every client. */
  readonly authorizer: Authorizer;
  /** The SVID new handshakes present now. */
  currentSvid(): X509Svid;
  /** Stops rotating and removes the verification gate. Idempotent. */
  close(): void;
}

const bindings = new WeakMap<Server, MtlsServerBinding>();

function checkOptions(opts: unknown): MtlsServerOptions {
  if (opts === undefined) return {};
  if (typeof opts !== 'object' || opts === null) {
    throw new IdentityError('tls-invalid-argument', 'options must be an object');
  }
  return opts as MtlsServerOptions;
}

function checkAuthorizer(authorizer: unknown): Authorizer {
  if (!isAuthorizer(authorizer)) {
    throw new IdentityError(
      'tls-invalid-argument',
      'an Authorizer is required (authorizeId(), authorizeOneOf(), authorizeMemberOf(), ...)',
    );
  }
  return authorizer;
}

/** The full option set handed to `setSecureContext` (it resets anything not given). */
function fullServerOptions(m: TlsMaterial, sessionResumption: boolean): TlsOptions {
  return { ...m.contextOptions, secureOptions: serverSecureOptions(sessionResumption) };
}

/**
 * Server options for `tls.createServer` / `https.createServer` from a source's current SVID
 * and bundles: the SVID as identity, client certificates required, TLS 1.3 (or the chosen
 * minimum), no renegotiation, no session tickets.
 *
 * On their own these options only get OpenSSL's check against the roots of **all** trusted
 * trust domains, which is not enough for SPIFFE: call {@link attachMtls} on the server (or
 * use {@link createMtlsTlsServer} / `createMtlsServer`) to verify every client per trust
 * domain, authorize it and rotate.
 *
 * @param source - the identity source.
 * @param opts - protocol minimum and resumption.
 * @throws IdentityError `tls-no-svid`, `tls-no-bundle`, `tls-invalid-argument`.
 */
export function tlsServerOptions(source: X509SvidSource, opts?: MtlsServerOptions): TlsOptions {
  const o = checkOptions(opts);
  const tracker = new TlsMaterialTracker(checkSource(source), readMinVersion(o.minTlsVersion));
  try {
    return {
      ...fullServerOptions(tracker.current(), o.sessionResumption === true),
      requestCert: true,
      rejectUnauthorized: true,
    };
  } finally {
    tracker.close();
  }
}

/**
 * Turns a node:tls (or https, or HTTP/2 secure) server into a SPIFFE mTLS server:
 *
 * - sets its context from the source (`setSecureContext` with the full option set) and swaps
 *   it on every SVID rotation or bundle update; open connections keep their context, new
 *   handshakes use the new one at once;
 * - requires a client certificate, and before the server announces a connection
 *   (`secureConnection`) to any listener verifies the client's X509-SVID against the bundle of the client's **own** trust
 *   domain, requires OpenSSL's verdict to agree, and runs the authorizer; a refused client's
 *   socket is destroyed before any listener (https, HTTP/2, the application) sees it or a
 *   byte it sent is read;
 * - records the client's SPIFFE ID for {@link getPeerSpiffeId}.
 *
 * @param server - a `tls.Server` (or `https.Server`, `http2.Http2SecureServer`).
 * @param source - the identity source.
 * @param authorizer - who may connect.
 * @param opts - protocol minimum, resumption, callbacks.
 * @returns the binding; `close()` stops rotation and removes the gate.
 * @throws IdentityError `tls-invalid-argument`, `tls-already-attached`, `tls-no-svid`,
 *   `tls-no-bundle`, `tls-context-failed`.
 */
export function attachMtls(
  server: Server,
  source: X509SvidSource,
  authorizer: Authorizer,
  opts?: MtlsServerOptions,
): MtlsServerBinding {
  if (
    typeof server !== 'object' ||
    server === null ||
    typeof (server as Partial<Server>).setSecureContext !== 'function' ||
    typeof (server as Partial<Server>).prependListener !== 'function'
  ) {
    throw new IdentityError(
      'tls-invalid-argument',
      'attachMtls needs a tls.Server, https.Server or HTTP/2 secure server',
    );
  }
  if (bindings.has(server)) {
    throw new IdentityError(
      'tls-already-attached',
      'this server already has an mTLS binding; close it first',
    );
  }
  const auth = checkAuthorizer(authorizer);
  const o = checkOptions(opts);
  const resumption = o.sessionResumption === true;
  const tracker = new TlsMaterialTracker(checkSource(source), readMinVersion(o.minTlsVersion));

  let applied: TlsMaterial;
  const apply = (m: TlsMaterial): void => {
    try {
      server.setSecureContext(fullServerOptions(m, resumption));
    } catch (err) {
      throw new IdentityError(
        'tls-context-failed',
        `cannot apply the new TLS context: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    applied = m;
  };
  try {
    apply(tracker.current());
  } catch (err) {
    tracker.close();
    throw err;
  }
  // Manual mode: OpenSSL still verifies against the pooled roots, but the verdict is enforced
  // by the gate below together with the per-trust-domain check, so every refusal has a reason.
  const s = server as Server & { requestCert?: boolean; rejectUnauthorized?: boolean };
  const before = { requestCert: s.requestCert, rejectUnauthorized: s.rejectUnauthorized };
  s.requestCert = true;
  s.rejectUnauthorized = false;

  // The bundles to verify with: the freshest the source has, so a removed authority is refused
  // from the very next handshake, even before the context swap.
  const currentBundles = () => {
    try {
      return tracker.current().bundles;
    } catch {
      return applied.bundles;
    }
  };
  /** Verifies one client; true when it may be handed to the application. */
  const gate = (socket: TLSSocket): boolean => {
    try {
      const peer = checkHandshakenSocket(socket, currentBundles(), auth, 'client');
      recordPeer(socket, peer.spiffeId);
      return true;
    } catch (err) {
      const e = asIdentityError(err, 'tls-peer-untrusted');
      socket.destroy();
      try {
        o.onPeerRejected?.(e, socket);
      } catch {
        // a callback's failure must not affect the server
      }
      return false;
    }
  };
  // Node announces each handshaken socket with server.emit('secureConnection', socket). The
  // gate sits in front of that emit, so a refused socket reaches no listener at all (not the
  // https/http2 machinery, not the application), including listeners added later.
  const ownEmit = Object.hasOwn(server, 'emit') ? server.emit : undefined;
  const baseEmit = server.emit;
  const gatedEmit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'secureConnection' && !gate(args[0] as TLSSocket)) return false;
    return (baseEmit as (this: unknown, e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  };
  (server as { emit: typeof server.emit }).emit = gatedEmit as typeof server.emit;

  const offChange = tracker.onChange((m) => {
    if (m.epoch === applied.epoch) return;
    try {
      apply(m);
    } catch (err) {
      o.onError?.(asIdentityError(err, 'tls-rotation-failed'));
      return;
    }
    o.onRotated?.(m.svid);
  });
  const offError = tracker.onError((e) => o.onError?.(e));

  let closed = false;
  const binding: MtlsServerBinding = Object.freeze({
    authorizer: auth,
    currentSvid: () => applied.svid,
    close(): void {
      if (closed) return;
      closed = true;
      offChange();
      offError();
      tracker.close();
      if (server.emit === gatedEmit) {
        if (ownEmit === undefined) delete (server as { emit?: unknown }).emit;
        else (server as { emit: typeof server.emit }).emit = ownEmit;
      }
      s.requestCert = before.requestCert ?? true;
      s.rejectUnauthorized = before.rejectUnauthorized ?? true;
      bindings.delete(server);
    },
  });
  bindings.set(server, binding);
  return binding;
}

/**
 * Creates a node:tls server that does SPIFFE mTLS: {@link tlsServerOptions} plus
 * {@link attachMtls}. The binding closes with the server.
 *
 * @param source - the identity source.
 * @param authorizer - who may connect.
 * @param connectionListener - called with each verified, authorized socket.
 * @param opts - helper options, handshake timeout (default 10 s), ALPN.
 */
export function createMtlsTlsServer(
  source: X509SvidSource,
  authorizer: Authorizer,
  connectionListener?: ((socket: TLSSocket) => void) | undefined,
  opts?: CreateMtlsTlsServerOptions,
): Server {
  const o = (checkOptions(opts) ?? {}) as CreateMtlsTlsServerOptions;
  checkAuthorizer(authorizer);
  const base = tlsServerOptions(source, o);
  const server = createServer({
    ...base,
    handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
    ...(o.ALPNProtocols === undefined ? {} : { ALPNProtocols: o.ALPNProtocols }),
  });
  const binding = attachMtls(server, source, authorizer, o);
  server.once('close', () => binding.close());
  if (connectionListener !== undefined) server.on('secureConnection', connectionListener);
  return server;
}

/**
 * The mTLS binding of a server set up by {@link attachMtls} (or a helper that calls it), if any.
 *
 * @param server - the server.
 */
export function getMtlsBinding(server: Server): MtlsServerBinding | undefined {
  return bindings.get(server);
}
