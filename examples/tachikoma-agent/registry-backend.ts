/**
 * The registry backend: the agents' entry point.
 *
 * Agents call it over SPIFFE mTLS with their own X509-SVID (only `spiffe://<td>/agent/...` may
 * connect). For each call it fetches a JWT-SVID **for that agent** with TEG core's SPIFFE ID as
 * audience (the token bridge) and calls TEG core over SPIFFE mTLS with its own X509-SVID,
 * passing the token in `Authorization: Bearer`. TEG core thus sees two identities: the service
 * calling (mTLS) and the agent it acts for (JWT-SVID).
 *
 * Routes:
 * - `POST /api/v1/teg/token`: the token bridge; `{ token, expires_in, token_type: "Bearer" }` for
 *   the calling agent, audience TEG core (or `{ "audience": ... }` from the allow-list).
 * - `GET /api/v1/agents/<id>` (`me` is the caller), `PUT /api/v1/agents/<id>`: forwarded to TEG
 *   core; its answer (or refusal, with the policy's reason) is relayed.
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { IdentityError } from '../../src/errors/index.js';
import { createMtlsServer, getRequestSpiffeId, MtlsAgent } from '../../src/http/index.js';
import { type JwtSvidFetcher, TokenBridge, tokenBridgeFailure } from '../../src/http/token-bridge.js';
import type { Auditor, Logger } from '../../src/observability/index.js';
import { describeTachikomaId, matchPathPrefix, type SpiffeId } from '../../src/spiffeid/index.js';
import { authorizeId, authorizeMatcher, type X509SvidSource } from '../../src/tls/index.js';
import { type JsonResponse, readJsonBody, requestJson, sendJson } from './https-json.js';
import type { ExampleIds } from './identities.js';

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** The registry's own identity. */
  readonly x509: X509SvidSource;
  /** Where agents' JWT-SVIDs come from (a JwtSource; its process must be entitled to the agent IDs). */
  readonly jwt: JwtSvidFetcher;
  readonly ids: ExampleIds;
  /** TEG core's base URL. */
  readonly tegCoreUrl: string;
  readonly auditor: Auditor;
  readonly logger?: Logger | undefined;
  readonly host?: string | undefined;
  readonly port?: number | undefined;
}

/** A running registry backend. */
export interface Registry {
  readonly server: Server;
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  readonly bridge: TokenBridge;
  /** The serial of the certificate each agent last presented. */
  readonly peerSerials: ReadonlyMap<string, string>;
  /**
   * Calls TEG core as the registry with any token (for demonstrations of refusals).
   *
   * @param path - e.g. `/agents/<id>`.
   * @param token - the bearer token to send, or `undefined` for none.
   */
  callTegCore(path: string, token: string | undefined): Promise<JsonResponse>;
  close(): Promise<void>;
}

/** Starts the registry backend on SPIFFE mTLS. */
export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const { ids, auditor } = opts;
  const service = 'registry-backend';
  const tegCore = ids.tegCore.toString();
  const peerSerials = new Map<string, string>();
  const bridge = new TokenBridge({ source: opts.jwt, audiences: [ids.tegCore], logger: opts.logger });
  const tokenHandler = bridge.handler({
    getSubject: (req) => getRequestSpiffeId(req),
    defaultAudience: ids.tegCore,
  });
  // One pooled client per authorizer: it talks to TEG core only. No keep-alive: every call is a
  // new handshake, so an SVID rotation shows on the very next call (pooled connections would
  // keep the SVID they were opened with until they close, which is fine but less visible).
  const toTegCore = new MtlsAgent(opts.x509, authorizeId(ids.tegCore), { keepAlive: false });

  const callTegCore = (
    path: string,
    token: string | undefined,
    method: 'GET' | 'PUT' = 'GET',
    body?: unknown,
  ) =>
    requestJson(toTegCore, `${opts.tegCoreUrl}${path}`, {
      method,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      body,
      timeoutMs: 10_000,
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    const peer = getRequestSpiffeId(req) as SpiffeId; // the authorizer let only agents in
    const serial = (req.socket as TLSSocket).getPeerCertificate?.()?.serialNumber;
    if (serial) peerSerials.set(peer.toString(), serial.toUpperCase());
    auditor.attempt({ mechanism: 'mtls', service, method, path, spiffeId: peer.toString() });
    auditor.result({
      mechanism: 'mtls',
      service,
      result: 'success',
      status: 200,
      spiffeId: peer.toString(),
      method,
      path,
      durationMs: 0,
    });

    if (path === '/api/v1/teg/token') {
      await tokenHandler(req, res);
      return;
    }
    const m = /^\/api\/v1\/agents\/([A-Za-z0-9._-]+)$/.exec(path);
    if (m === null || (method !== 'GET' && method !== 'PUT')) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const me = describeTachikomaId(peer);
    const id = m[1] === 'me' ? (me?.kind === 'agent' ? me.agentId : undefined) : m[1]!;
    if (id === undefined) {
      sendJson(res, 400, { error: 'bad request', reason: 'the caller is not an agent' });
      return;
    }
    let token: string;
    try {
      token = (await bridge.issue(peer, tegCore)).token;
    } catch (err) {
      const e = err instanceof IdentityError ? err : new IdentityError('auth-token-unavailable', String(err));
      const f = tokenBridgeFailure(e);
      sendJson(res, f.status, { error: f.error, reason: e.code });
      return;
    }
    let body: unknown;
    if (method === 'PUT') {
      try {
        body = await readJsonBody(req);
      } catch (err) {
        sendJson(res, 400, { error: 'bad request', reason: (err as Error).message });
        return;
      }
    }
    let answer: JsonResponse;
    try {
      answer = await callTegCore(`/agents/${id}`, token, method, body);
    } catch (err) {
      sendJson(res, 502, { error: 'bad gateway', reason: `teg-core: ${(err as Error).message}` });
      return;
    }
    sendJson(res, answer.status, { via: service, teg_core: answer.body });
  };

  const server = createMtlsServer(
    opts.x509,
    authorizeMatcher(matchPathPrefix(ids.trustDomain, '/agent'), `agents of ${ids.trustDomain.name}`),
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent)
          sendJson(res, 500, { error: 'internal error', reason: (err as Error)?.message });
        else res.destroy();
      });
    },
    {
      onPeerRejected: (error) => {
        auditor.result({
          mechanism: 'mtls',
          service,
          result: 'failure',
          status: error.code === 'tls-peer-unauthorized' ? 403 : 401,
          durationMs: 0,
          reason: error.code,
        });
      },
    },
  );
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    url: `https://127.0.0.1:${port}`,
    bridge,
    peerSerials,
    callTegCore: (path, token) => callTegCore(path, token),
    async close() {
      toTegCore.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
