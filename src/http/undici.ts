import type { Socket } from 'node:net';
import { IdentityError } from '../errors/index.js';
import type { Authorizer } from '../tls/authorizer.js';
import { MtlsClient, type MtlsClientOptions } from '../tls/client.js';
import type { X509SvidSource } from '../tls/source.js';
import { asIdentityError } from '../tls/verify.js';

/** What undici passes to a `connect` function (the fields this connector reads). */
export interface UndiciConnectParams {
  /** Host name or address of the origin. */
  hostname: string;
  /** `https:` (anything else is refused). */
  protocol: string;
  /** Port as a string; empty for the default. */
  port: string;
  /** SNI name undici computed, if any. */
  servername?: string | null | undefined;
  /** Local address to bind. */
  localAddress?: string | null | undefined;
  /** A socket undici already connected (proxy tunnels). */
  httpSocket?: Socket | undefined;
}

/** undici's connector callback: a socket, or an error. */
export type UndiciConnectCallback = (...args: [null, Socket] | [Error, null]) => void;

/** A connector for undici's `connect` option, with a `close()` to stop following the source. */
export interface UndiciConnector {
  /**
   * Opens a verified mTLS connection for undici.
   *
   * @param params - what undici passes.
   * @param callback - called once with the verified socket or the error.
   */
  (params: UndiciConnectParams, callback: UndiciConnectCallback): void;
  /** The authorizer every server must pass. */
  readonly authorizer: Authorizer;
  /** Stops following the source. Idempotent. */
  close(): void;
}

/** Options of {@link undiciConnector}. */
export interface UndiciConnectorOptions extends MtlsClientOptions {
  /** Offer HTTP/2 through ALPN (undici's `allowH2`). Default `false`. */
  allowH2?: boolean | undefined;
}

/**
 * A connector that makes undici (and its `fetch`) do SPIFFE mTLS: it calls `tls.connect`
 * itself with the source's current SecureContext, verifies the server's X509-SVID against the
 * bundle of its own trust domain, runs `authorizer`, never resumes sessions and hands undici the
 * socket only when everything passed. It depends on node:tls only, so it works with the undici
 * the application installed.
 *
 * Use `fetch` from the same undici copy as the `Agent`, never the global `fetch` with an npm
 * undici dispatcher.
 *
 * @param source - the identity source.
 * @param authorizer - which servers are acceptable; use one connector (and one Agent) per authorizer.
 * @param opts - protocol minimum, handshake timeout, HTTP/2.
 *
 * @example
 * ```ts
 * import { Agent, fetch } from 'undici';
 * const dispatcher = new Agent({ connect: undiciConnector(source, authorizeId('spiffe://example.org/api')) });
 * const res = await fetch('https://api.internal:8443/v1', { dispatcher });
 * ```
 */
export function undiciConnector(
  source: X509SvidSource,
  authorizer: Authorizer,
  opts?: UndiciConnectorOptions,
): UndiciConnector {
  const client = new MtlsClient(source, authorizer, opts);
  const alpn = opts?.allowH2 === true ? ['h2', 'http/1.1'] : ['http/1.1'];
  const connector = (params: UndiciConnectParams, callback: UndiciConnectCallback): void => {
    let called = false;
    const done = (...args: [null, Socket] | [Error, null]): void => {
      if (called) return;
      called = true;
      callback(...args);
    };
    if (params?.protocol !== 'https:') {
      done(
        new IdentityError(
          'tls-invalid-argument',
          `the SPIFFE mTLS connector only serves https: origins, got ${params?.protocol}`,
        ),
        null,
      );
      return;
    }
    let socket: ReturnType<MtlsClient['connect']>;
    try {
      const port = params.port === '' || params.port === undefined ? 443 : Number(params.port);
      const name = params.servername ?? undefined;
      socket = client.connect({
        host: params.hostname,
        port,
        servername: name === null || name === '' ? undefined : name,
        socket: params.httpSocket,
        ALPNProtocols: alpn,
        localAddress: params.localAddress ?? undefined,
      });
    } catch (err) {
      done(asIdentityError(err, 'tls-connect-failed'), null);
      return;
    }
    const onError = (err: Error): void => done(err, null);
    const onClose = (): void =>
      done(
        new IdentityError('tls-connect-failed', 'the connection closed before the TLS handshake finished'),
        null,
      );
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('secureConnect', () => {
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      socket.setNoDelay(true);
      done(null, socket);
    });
  };
  return Object.assign(connector, {
    authorizer: client.authorizer,
    close: (): void => client.close(),
  });
}
