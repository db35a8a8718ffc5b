/**
 * The agent: a Tachikoma agent with its own SPIFFE identity (`spiffe://<td>/agent/<id>`). It
 * talks only to the registry backend, over SPIFFE mTLS, and accepts no other server.
 */
import { MtlsAgent } from '../../src/http/index.js';
import type { SpiffeId } from '../../src/spiffeid/index.js';
import { authorizeId, type X509SvidSource } from '../../src/tls/index.js';
import { type JsonResponse, requestJson } from './https-json.js';

/** An agent's client of the registry backend. */
export class TachikomaAgent {
  readonly #http: MtlsAgent;
  readonly #registryUrl: string;

  /**
   * @param x509 - the agent's identity.
   * @param registryUrl - the registry's base URL.
   * @param registryId - the registry's SPIFFE ID: the only server this agent talks to.
   */
  constructor(x509: X509SvidSource, registryUrl: string, registryId: SpiffeId) {
    // No keep-alive: each call is a fresh handshake with the current SVID (see registry-backend.ts).
    this.#http = new MtlsAgent(x509, authorizeId(registryId), { keepAlive: false });
    this.#registryUrl = registryUrl;
  }

  /** `POST /api/v1/teg/token`: a JWT-SVID for this agent, audience TEG core (or `audience`). */
  requestToken(audience?: string): Promise<JsonResponse> {
    return requestJson(this.#http, `${this.#registryUrl}/api/v1/teg/token`, {
      method: 'POST',
      body: audience === undefined ? {} : { audience },
    });
  }

  /** `GET /api/v1/agents/<id>` (default `me`): a record, through the registry and TEG core. */
  getRecord(id = 'me'): Promise<JsonResponse> {
    return requestJson(this.#http, `${this.#registryUrl}/api/v1/agents/${encodeURIComponent(id)}`);
  }

  /** `PUT /api/v1/agents/<id>` with `{ profile }`. */
  putRecord(id: string, profile: Record<string, unknown>): Promise<JsonResponse> {
    return requestJson(this.#http, `${this.#registryUrl}/api/v1/agents/${encodeURIComponent(id)}`, {
      method: 'PUT',
      body: { profile },
    });
  }

  /** Closes the connection pool. */
  close(): void {
    this.#http.close();
  }
}
