// The Tachikoma agent example in one process on the dev Workload API server: the agent → registry
// → TEG core flow, every refusal with its status and reason, the rate tier, the audit events and
// the metric values /metrics serves. (The same flow against real SPIRE:
// test/integration/e2e/agent-flow.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ExampleApp,
  presentsCurrentSvids,
  startExample,
} from '../../../examples/tachikoma-agent/app.js';
import { requestJson } from '../../../examples/tachikoma-agent/https-json.js';
import { exampleIds, requiredIdentities } from '../../../examples/tachikoma-agent/identities.js';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { MtlsAgent } from '../../../src/http/index.js';
import { parseJwtSvidInsecure } from '../../../src/svid/index.js';
import { authorizeId } from '../../../src/tls/index.js';
import { captureAudit, startLoad } from './helpers.js';
import { scrape, seriesValue } from './prometheus.js';

const TD = 'example.test';
const ids = exampleIds(TD);
const ALICE = ids.agent.toString();
const ALICE_ID = ids.agent.segments()[1]!;

describe('the Tachikoma agent example (dev Workload API)', () => {
  let dev: DevWorkloadServer;
  let app: ExampleApp;
  beforeAll(async () => {
    dev = await DevWorkloadServer.start({
      trustDomain: TD,
      identities: requiredIdentities(ids),
      x509Rotation: false,
    });
    // Tolerance 1 s (as in the demo): the dev-minted token below expires 1 s after minting.
    app = await startExample({ address: dev.address, clockToleranceSec: 1 });
  });
  afterAll(async () => {
    await app?.close();
    await dev?.close();
  });

  it('discovers the trust domain and patches it into the policies', () => {
    expect(app.ids.trustDomain.name).toBe(TD);
    expect(app.engines.serviceGraph.data['service_graph']).toMatchObject({ trust_domain: TD });
    expect(app.engines.agentSelfAccess.data['agent_self_access']).toMatchObject({ trust_domain: TD });
    expect(app.engines.rateTiers.data['rate_limit']).toMatchObject({ trust_domain: TD });
  });

  it('token bridge: the agent gets { token, expires_in, token_type } for itself, audience teg-core', async () => {
    const r = await app.agent.requestToken();
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    const body = r.body as { token: string; expires_in: number; token_type: string };
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBeGreaterThan(200);
    const svid = parseJwtSvidInsecure(body.token);
    expect(svid.spiffeId.toString()).toBe(ALICE);
    expect(svid.audience).toEqual([ids.tegCore.toString()]);
    const other = await app.agent.requestToken(ids.registry.toString());
    expect(other.status).toBe(400);
    expect(other.body).toEqual({ error: 'invalid_target', error_description: 'auth-audience-not-allowed' });
  });

  it('agent → registry → teg-core: 200; teg-core saw the registry (mTLS) acting for the agent (JWT-SVID); audited', async () => {
    const audit = captureAudit();
    try {
      const r = await app.agent.getRecord('me');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        via: 'registry-backend',
        teg_core: {
          record: { agent: ALICE_ID, email: 'alice@example.com' },
          served_by: ids.tegCore.toString(),
          caller: { service: ids.registry.toString(), agent: ALICE },
          rate: { tier: 'trusted', limit: 1000 },
        },
      });
      const put = await app.agent.putRecord(ALICE_ID, { display_name: 'Alice' });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ teg_core: { record: { profile: { display_name: 'Alice' } } } });

      const summary = audit.results.map(
        (e) => `${e.service} ${e.mechanism} ${e.result} ${e.status} ${e.spiffeId}`,
      );
      // Per call: the registry authenticates the agent (mTLS); teg-core authenticates the
      // registry (mTLS) and the agent (JWT-SVID), then three policies allow.
      const perCall = [
        `registry-backend mtls success 200 ${ALICE}`,
        `teg-core mtls success 200 ${ids.registry}`,
        `teg-core jwt-svid success 200 ${ALICE}`,
        `teg-core policy success 200 ${ids.registry}`,
        `teg-core policy success 200 ${ALICE}`,
        `teg-core policy success 200 ${ALICE}`,
      ];
      expect(summary).toEqual([...perCall, ...perCall]);
      expect(audit.results.filter((e) => e.mechanism === 'policy').map((e) => e.reason)).toEqual([
        'service-graph: allow',
        'agent-self-access: allow',
        'rate-tiers: trusted (1000)',
        'service-graph: allow',
        'agent-self-access: allow',
        'rate-tiers: trusted (1000)',
      ]);
      expect(audit.attempts.length).toBe(audit.results.length);
      expect(audit.results.find((e) => e.mechanism === 'jwt-svid')).toMatchObject({
        method: 'GET',
        path: `/agents/${ALICE_ID}`,
      });
    } finally {
      audit.stop();
    }
  });

  it('refusals: expired and wrong-audience tokens → 401; no token → 401; a service outside the graph → 403; another agent’s record → 403', async () => {
    const path = `/agents/${ALICE_ID}`;
    const expired = await dev.mintJwtSvid(ALICE, ids.tegCore.toString(), { ttlMs: 1000 });
    const exp = parseJwtSvidInsecure(expired).expiresAt.getTime();
    const wrongAudience = await app.jwt.fetchJwtSvid({ audience: ids.registry.toString(), subject: ALICE });

    const wa = await app.registry.callTegCore(path, wrongAudience.token);
    expect(wa.status).toBe(401);
    expect(wa.headers['www-authenticate']).toBe(
      'Bearer error="invalid_token", error_description="jwtsvid-audience-mismatch"',
    );
    const none = await app.registry.callTegCore(path, undefined);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');

    const valid = (await app.registry.bridge.issue(ids.agent, ids.tegCore)).token;
    const outsider = await requestJson(app.outsiderClient, `${app.tegCore.url}${path}`, {
      headers: { authorization: `Bearer ${valid}` },
    });
    expect(outsider.status).toBe(403);
    expect(outsider.body).toMatchObject({
      error: 'forbidden',
      reason: 'federation-hub may not call teg-core',
      policy: 'service-graph',
    });

    const other = await app.agent.getRecord(ids.otherAgent.segments()[1]!);
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({
      via: 'registry-backend',
      teg_core: {
        reason: 'an agent may only access its own record, agents/<its id>',
        policy: 'agent-self-access',
      },
    });

    // Expiry is a matter of the clock: wait until it is past exp + the 1 s tolerance.
    await new Promise((r) => setTimeout(r, Math.max(0, exp + 1_000 + 100 - Date.now())));
    const ex = await app.registry.callTegCore(path, expired);
    expect(ex.status).toBe(401);
    expect(ex.headers['www-authenticate']).toBe(
      'Bearer error="invalid_token", error_description="jwtsvid-expired"',
    );
  });

  it('a server that is not the registry is refused by the agent’s client, and a non-agent by the registry', async () => {
    // The agent only talks to the registry: pointed at teg-core, its handshake fails.
    const wrongServer = new MtlsAgent(app.sources.agent, authorizeId(ids.registry), { keepAlive: false });
    try {
      await expect(requestJson(wrongServer, `${app.tegCore.url}/agents/x`)).rejects.toThrow(
        /tls-peer-unauthorized/,
      );
    } finally {
      wrongServer.close();
    }
    // The registry only admits agents: teg-core's identity is refused at the TLS layer, audited.
    const audit = captureAudit();
    const asService = new MtlsAgent(app.sources.tegCore, authorizeId(ids.registry), { keepAlive: false });
    try {
      await expect(requestJson(asService, `${app.registry.url}/api/v1/agents/me`)).rejects.toThrow();
      await new Promise((r) => setImmediate(r));
      expect(audit.results).toContainEqual(
        expect.objectContaining({
          service: 'registry-backend',
          mechanism: 'mtls',
          result: 'failure',
          status: 403,
          reason: 'tls-peer-unauthorized',
        }),
      );
    } finally {
      asService.close();
      audit.stop();
    }
  });

  it('rate tiers: an agent past its tier’s limit gets 429 with the reason', async () => {
    // Drop alice to the standard tier (limit 100) through the policy's data.
    const agents = app.engines.rateTiers.data['agents'] as Record<string, { reputation_score: number }>;
    const before = agents[ALICE_ID]!.reputation_score;
    app.engines.rateTiers.patchData(['agents', ALICE_ID, 'reputation_score'], 10);
    try {
      const token = (await app.registry.bridge.issue(ids.agent, ids.tegCore)).token;
      const path = `/agents/${ALICE_ID}`;
      const first = await app.registry.callTegCore(path, token);
      expect(first.body).toMatchObject({ rate: { tier: 'standard', limit: 100 } });
      const used = 100 - (first.body as { rate: { remaining: number } }).rate.remaining;
      let last = first;
      for (let i = used; i <= 100; i++) last = await app.registry.callTegCore(path, token);
      expect(last.status).toBe(429);
      expect(last.body).toMatchObject({
        error: 'rate_limited',
        policy: 'rate-tiers',
        tier: 'standard',
        limit: 100,
        reason: `${ALICE_ID} used its standard tier limit of 100 requests per 60 s`,
      });
      expect(Number(last.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    } finally {
      app.engines.rateTiers.patchData(['agents', ALICE_ID, 'reputation_score'], before);
    }
  });

  it('/metrics serves the four metrics with the values of the calls above; /health/identity is healthy', async () => {
    const s = await scrape(app.opsUrl);
    const attempts = (service: string, result: string) =>
      seriesValue(s, 'identity_auth_attempts_total', { service, result });
    // teg-core failures: wrong audience, no token, expired (JWT) = 3; the registry refused teg-core (mTLS) = 1.
    expect(attempts('teg-core', 'failure')).toBe(3);
    expect(attempts('registry-backend', 'failure')).toBe(1);
    expect(attempts('teg-core', 'success')).toBeGreaterThan(100);
    const count = (policy: string, decision: string) =>
      seriesValue(s, 'identity_policy_evaluation_duration_seconds_count', { policy, decision });
    expect(count('service-graph', 'deny')).toBe(1);
    expect(count('agent-self-access', 'deny')).toBe(1);
    expect(count('service-graph', 'allow')).toBeGreaterThan(100);
    expect(seriesValue(s, 'identity_svid_rotations_total', { workload_type: 'service' })).toBeUndefined();
    const expiry = seriesValue(s, 'identity_svid_expiry_seconds', { spiffe_id: ids.tegCore.toString() });
    expect(expiry).toBeGreaterThan(3000);
    expect(expiry).toBeLessThanOrEqual(3600);

    const health = await fetch(`${app.opsUrl}/health/identity`, { signal: AbortSignal.timeout(5000) });
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'healthy',
      checks: {
        spire_agent: { status: 'pass' },
        svid_valid: { status: 'pass' },
        opa_responsive: { status: 'pass' },
        bundle_fresh: { status: 'pass' },
      },
    });
  });

  it('a rotation under load: zero failed calls, new connections present the new SVIDs, rotations counted', async () => {
    const rotated = new Set<string>();
    const onRotated = (r: { spiffeId: string }): void => {
      rotated.add(r.spiffeId);
    };
    app.sources.registry.on('rotated', onRotated);
    const load = startLoad(() => app.agent.getRecord('me'), 3);
    try {
      while (load.calls < 6) await new Promise((r) => setImmediate(r));
      dev.rotateX509Svids();
      const deadline = Date.now() + 15_000;
      const seesNew = () => rotated.size === 4 && presentsCurrentSvids(app);
      while (!seesNew() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(seesNew()).toBe(true);
    } finally {
      await load.stop();
      app.sources.registry.off('rotated', onRotated);
    }
    expect(load.failures).toEqual([]);
    expect(load.calls).toBeGreaterThan(6);
    const s = await scrape(app.opsUrl);
    expect(seriesValue(s, 'identity_svid_rotations_total', { workload_type: 'service' })).toBe(3);
    expect(seriesValue(s, 'identity_svid_rotations_total', { workload_type: 'agent' })).toBe(1);
  });
});
