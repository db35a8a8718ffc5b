/**
 * TEG core: agent records behind three checks.
 *
 * 1. SPIFFE mTLS: any workload of the trust domain may connect (the policy decides who may call).
 * 2. The agent's JWT-SVID in `Authorization: Bearer` (audience: TEG core's SPIFFE ID), validated
 *    locally against the watched JWT bundles: 401 with the rule that failed otherwise.
 * 3. The in-process policies: the mTLS caller must be allowed by the service graph, the agent
 *    may only GET/PUT its own record, and its request rate is capped by its reputation tier:
 *    403/429 with the policy's reason otherwise.
 *
 * Routes: `GET /agents/<id>`, `PUT /agents/<id>` (JSON `{ "profile": { ... } }`).
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { IdentityError } from '../../src/errors/index.js';
import { createMtlsServer, getRequestSpiffeId } from '../../src/http/index.js';
import { type JwtBundleProvider, type JwtSvidCaller, requireJwtSvid } from '../../src/http/jwt-svid-auth.js';
import type { Auditor } from '../../src/observability/index.js';
import {
  type AuthorizationOptions,
  type AuthorizationOutcome,
  authorizeRequest,
  parseRequestTarget,
  refusalFor,
} from '../../src/policy/index.js';
import { segmentToEmail } from '../../src/spiffeid/index.js';
import { authorizeMemberOf, type X509SvidSource } from '../../src/tls/index.js';
import { readJsonBody, sendJson } from './https-json.js';
import type { ExampleIds } from './identities.js';
import type { ExampleEngines } from './policies.js';

/** Options of {@link startTegCore}. */
export interface TegCoreOptions {
  /** TEG core's own identity (its X509-SVID). */
  readonly x509: X509SvidSource;
  /** JWT bundles to validate agents' tokens with (a JwtSource). */
  readonly jwt: JwtBundleProvider;
  readonly ids: ExampleIds;
  readonly engines: ExampleEngines;
  readonly auditor: Auditor;
  /** Rate window of the tiers' limits, in ms. Default 60 000. */
  readonly rateWindowMs?: number | undefined;
  /** JWT clock tolerance in seconds. Default the SDK's (5). */
  readonly clockToleranceSec?: number | undefined;
  /** Listen address. Default 127.0.0.1, any free port. */
  readonly host?: string | undefined;
  readonly port?: number | undefined;
}

/** A running TEG core. */
export interface TegCore {
  readonly server: Server;
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  /** The serial of the certificate each caller last presented (by SPIFFE ID): shows rotations. */
  readonly peerSerials: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

interface AgentRecord {
  agent: string;
  email: string | null;
  profile: Record<string, unknown>;
  updated_at: string | null;
}

const SG_ALLOW = 'tachikoma/service_graph/allow';
const SG_REASON = 'tachikoma/service_graph/reason';
const ASA_ALLOW = 'tachikoma/agent_self_access/allow';
const ASA_REASON = 'tachikoma/agent_self_access/reason';

/** Starts TEG core on SPIFFE mTLS. */
export async function startTegCore(opts: TegCoreOptions): Promise<TegCore> {
  const { ids, engines, auditor } = opts;
  const service = 'teg-core';
  const target = ids.tegCore.toString();
  const windowMs = opts.rateWindowMs ?? 60_000;
  const windows = new Map<string, { start: number; count: number }>();
  const records = new Map<string, AgentRecord>();
  const peerSerials = new Map<string, string>();

  const auth = requireJwtSvid({
    source: opts.jwt,
    audience: target,
    service,
    auditor,
    ...(opts.clockToleranceSec === undefined ? {} : { clockToleranceSec: opts.clockToleranceSec }),
  });

  /** Audits a policy outcome and answers refusals; true when allowed. */
  const decide = (
    policy: string,
    options: AuthorizationOptions<IncomingMessage>,
    outcome: AuthorizationOutcome,
    caller: string,
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
  ): boolean => {
    const refusal = refusalFor(options, outcome);
    const status = refusal?.status ?? 200;
    auditor.result({
      mechanism: 'policy',
      service,
      result: refusal === undefined ? 'success' : 'failure',
      status,
      spiffeId: caller,
      method: req.method,
      path: (req.url ?? '/').split('?')[0],
      durationMs: performance.now() - started,
      reason:
        outcome.kind === 'deny'
          ? `${policy}: ${outcome.reason}`
          : outcome.kind === 'allow'
            ? `${policy}: allow`
            : `${policy}: ${outcome.error.code}`,
    });
    if (refusal === undefined) return true;
    sendJson(res, refusal.status, { ...refusal.body, policy });
    return false;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?')[0];

    // 1. The mTLS peer: verified by the server before the request was parsed.
    const peer = getRequestSpiffeId(req);
    if (peer === undefined) {
      sendJson(res, 401, { error: 'unauthenticated' });
      return;
    }
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

    // 2. The agent's JWT-SVID.
    const agent: JwtSvidCaller | undefined = await auth.http(req, res);
    if (agent === undefined) return;

    // 3a. Service graph: may this service call TEG core?
    let started = performance.now();
    auditor.attempt({ mechanism: 'policy', service, method, path, spiffeId: peer.toString() });
    const graphOptions: AuthorizationOptions<IncomingMessage> = {
      engine: engines.serviceGraph,
      entrypoint: SG_ALLOW,
      reasonEntrypoint: SG_REASON,
      getCaller: () => peer,
      target,
    };
    const graph = await authorizeRequest(graphOptions, req, method, url);
    if (!decide('service-graph', graphOptions, graph, peer.toString(), req, res, started)) return;

    // 3b. Agent self-access: may this agent touch this record?
    started = performance.now();
    const subject = agent.spiffeId.toString();
    auditor.attempt({ mechanism: 'policy', service, method, path, spiffeId: subject });
    const selfOptions: AuthorizationOptions<IncomingMessage> = {
      engine: engines.agentSelfAccess,
      entrypoint: ASA_ALLOW,
      reasonEntrypoint: ASA_REASON,
      getCaller: () => agent.spiffeId,
    };
    const self = await authorizeRequest(selfOptions, req, method, url);
    if (!decide('agent-self-access', selfOptions, self, subject, req, res, started)) return;

    // 3c. Rate tier: how many requests per window this agent may make.
    started = performance.now();
    auditor.attempt({ mechanism: 'policy', service, method, path, spiffeId: subject });
    let limit: number;
    let tier: string;
    try {
      limit = Number(
        engines.rateTiers.evaluate('tachikoma/rate_limit/limit', { caller: subject }).result ?? 100,
      );
      tier = String(
        engines.rateTiers.evaluate('tachikoma/rate_limit/tier', { caller: subject }).result ?? 'standard',
      );
    } catch (err) {
      const error =
        err instanceof IdentityError
          ? err
          : new IdentityError('policy-evaluation-failed', `rate tiers: ${(err as Error)?.message}`);
      decide('rate-tiers', graphOptions, { kind: 'error', error }, subject, req, res, started);
      return;
    }
    const now = Date.now();
    let w = windows.get(subject);
    if (w === undefined || now - w.start >= windowMs) {
      w = { start: now, count: 0 };
      windows.set(subject, w);
    }
    w.count++;
    if (w.count > limit) {
      const reason = `${agent.agentId} used its ${tier} tier limit of ${limit} requests per ${Math.round(windowMs / 1000)} s`;
      auditor.result({
        mechanism: 'policy',
        service,
        result: 'failure',
        status: 429,
        spiffeId: subject,
        method,
        path,
        durationMs: performance.now() - started,
        reason: `rate-tiers: ${reason}`,
      });
      sendJson(
        res,
        429,
        { error: 'rate_limited', reason, policy: 'rate-tiers', tier, limit },
        { 'retry-after': String(Math.max(1, Math.ceil((w.start + windowMs - now) / 1000))) },
      );
      return;
    }
    auditor.result({
      mechanism: 'policy',
      service,
      result: 'success',
      status: 200,
      spiffeId: subject,
      method,
      path,
      durationMs: performance.now() - started,
      reason: `rate-tiers: ${tier} (${limit})`,
    });

    // The application: the record the policies allowed.
    const id = parseRequestTarget(url).path[1]!;
    let record = records.get(id);
    if (record === undefined) {
      let email: string | null = null;
      try {
        email = segmentToEmail(id);
      } catch {
        email = null;
      }
      record = { agent: id, email, profile: {}, updated_at: null };
      records.set(id, record);
    }
    if (method === 'PUT') {
      let body: unknown;
      try {
        body = await readJsonBody(req);
      } catch (err) {
        sendJson(res, 400, { error: 'bad request', reason: (err as Error).message });
        return;
      }
      const profile = (body as { profile?: unknown }).profile;
      if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) {
        sendJson(res, 400, { error: 'bad request', reason: 'the body must be { "profile": { ... } }' });
        return;
      }
      record.profile = profile as Record<string, unknown>;
      record.updated_at = new Date().toISOString();
    }
    sendJson(res, 200, {
      record,
      served_by: target,
      caller: { service: peer.toString(), agent: subject },
      rate: { tier, limit, remaining: Math.max(0, limit - w.count) },
    });
  };

  const server = createMtlsServer(
    opts.x509,
    authorizeMemberOf(ids.trustDomain),
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
    peerSerials,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
