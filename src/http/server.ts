import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { SpiffeId } from '../spiffeid/index.js';
import type { Authorizer } from '../tls/authorizer.js';
import { attachMtls, type MtlsServerOptions, tlsServerOptions } from '../tls/server.js';
import type { X509SvidSource } from '../tls/source.js';
import { getPeerSpiffeId } from '../tls/verify.js';

/** Options of {@link createMtlsServer}. */
export interface CreateMtlsServerOptions extends MtlsServerOptions {
  /** Abort TLS handshakes that take longer, in ms. Default 10 000. */
  handshakeTimeoutMs?: number | undefined;
  /** Close keep-alive connections idle for longer, in ms (Node's default is 5 000). */
  keepAliveTimeoutMs?: number | undefined;
}

/**
 * Creates an https server that does SPIFFE mTLS: every client must present an X509-SVID that
 * verifies against the bundle of its own trust domain and pass `authorizer`, or its connection
 * is closed before a request is parsed. The context rotates with the source. The handler reads
 * the caller's ID with {@link getRequestSpiffeId} (or `getPeerSpiffeId(req.socket)`).
 *
 * @param source - the identity source (an `X509Source`, or `staticX509Source(...)`).
 * @param authorizer - who may call.
 * @param handler - the request listener.
 * @param opts - protocol minimum, resumption, timeouts, callbacks.
 *
 * @example
 * ```ts
 * const server = createMtlsServer(source, authorizeId('spiffe://example.org/frontend'), (req, res) => {
 *   res.end(`hello ${getRequestSpiffeId(req)}`);
 * });
 * server.listen(8443);
 * ```
 */
export function createMtlsServer(
  source: X509SvidSource,
  authorizer: Authorizer,
  handler?: RequestListener | undefined,
  opts?: CreateMtlsServerOptions,
): Server {
  const o = opts ?? {};
  const server = createServer({
    ...tlsServerOptions(source, o),
    handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
  });
  if (o.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = o.keepAliveTimeoutMs;
  const binding = attachMtls(server, source, authorizer, o);
  server.once('close', () => binding.close());
  if (handler !== undefined) server.on('request', handler);
  return server;
}

/**
 * The verified SPIFFE ID of the client that sent an https request (server side) or of the
 * server that answered (client side, pass the response), or `undefined` when the connection
 * was not verified by one of the SDK's helpers.
 *
 * @param message - an `IncomingMessage` (request on a server, response on a client).
 */
export function getRequestSpiffeId(
  message: IncomingMessage | ServerResponse | { socket?: unknown },
): SpiffeId | undefined {
  return getPeerSpiffeId((message as { socket?: object | null }).socket ?? undefined);
}
