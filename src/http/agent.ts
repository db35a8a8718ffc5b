import { Agent, type AgentOptions, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Authorizer } from '../tls/authorizer.js';
import { MtlsClient, type MtlsClientOptions } from '../tls/client.js';
import type { X509SvidSource } from '../tls/source.js';

/** Options of {@link MtlsAgent}: pooling settings plus the client options. */
export interface MtlsAgentOptions extends MtlsClientOptions {
  /** Keep connections open for reuse. Default `true`. */
  keepAlive?: boolean | undefined;
  /** Initial delay of TCP keep-alive probes, in ms. */
  keepAliveMsecs?: number | undefined;
  /** Most sockets per origin. */
  maxSockets?: number | undefined;
  /** Most sockets in total. */
  maxTotalSockets?: number | undefined;
  /** Most idle sockets kept per origin. */
  maxFreeSockets?: number | undefined;
  /** Socket idle timeout, in ms. */
  timeout?: number | undefined;
}

/**
 * An `https.Agent` for SPIFFE mTLS: each new connection presents the source's current SVID and
 * accepts only a server whose X509-SVID verifies against the bundle of its own trust domain and
 * passes `authorizer`. No hostname check, no TLS session cache.
 *
 * Node pools sockets by host and TLS options but not by identity check, so use one agent per
 * authorizer: a socket verified for one SPIFFE ID is then never reused for a request that
 * expects another. Pooled connections keep the SVID they were opened with; new connections use
 * the current one.
 *
 * @example
 * ```ts
 * const agent = new MtlsAgent(source, authorizeId('spiffe://example.org/billing'));
 * https.get('https://billing.internal:8443/invoices', { agent }, (res) => {
 *   getRequestSpiffeId(res); // spiffe://example.org/billing
 * });
 * ```
 */
export class MtlsAgent extends Agent {
  /** The authorizer every server must pass. */
  readonly authorizer: Authorizer;
  readonly #client: MtlsClient;

  /**
   * @param source - the identity source.
   * @param authorizer - which servers are acceptable.
   * @param opts - pooling and client options.
   */
  constructor(source: X509SvidSource, authorizer: Authorizer, opts?: MtlsAgentOptions) {
    const o = opts ?? {};
    const agentOptions: AgentOptions = { keepAlive: o.keepAlive ?? true, maxCachedSessions: 0 };
    if (o.keepAliveMsecs !== undefined) agentOptions.keepAliveMsecs = o.keepAliveMsecs;
    if (o.maxSockets !== undefined) agentOptions.maxSockets = o.maxSockets;
    if (o.maxTotalSockets !== undefined) agentOptions.maxTotalSockets = o.maxTotalSockets;
    if (o.maxFreeSockets !== undefined) agentOptions.maxFreeSockets = o.maxFreeSockets;
    if (o.timeout !== undefined) agentOptions.timeout = o.timeout;
    super(agentOptions);
    const client = new MtlsClient(source, authorizer, o);
    this.#client = client;
    this.authorizer = client.authorizer;
  }

  /**
   * Opens a verified connection (called by Node for each new pooled socket). TLS options on the
   * request (`ca`, `cert`, `rejectUnauthorized`, `session`, ...) are ignored: the identity and
   * trust come from the source only.
   *
   * @param options - the request's connection options (host, port, servername).
   */
  override createConnection(
    options: RequestOptions,
    _callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex {
    const host = options.host ?? options.hostname ?? undefined;
    const name = (options as { servername?: string }).servername;
    const port = typeof options.port === 'string' ? Number(options.port) : options.port;
    return this.#client.connect({
      host: host ?? undefined,
      port: port ?? 443,
      servername: name !== undefined && name !== '' && isIP(name) === 0 ? name : undefined,
      ALPNProtocols: ['http/1.1'],
      localAddress: options.localAddress ?? undefined,
      path: options.socketPath ?? undefined,
    });
  }

  /** Destroys pooled sockets and stops following the source. Idempotent. */
  close(): void {
    this.destroy();
    this.#client.close();
  }
}
