// The Tachikoma agent flow against a real spire-server and spire-agent: the example's registry
// backend, TEG core and agent get their SVIDs from SPIRE and talk over SPIFFE mTLS with the
// agent's JWT-SVID; refusals, a live rotation, the agent going away and coming back, the audit
// events and the metric values are asserted.
//
// Identities: five entries for this process's uid, told apart by SPIFFE ID (hints set too), so one
// Workload API connection serves all of them and each service selects its own. X509-SVID TTL 30 s
// (SPIRE rotates about every 10 s); erin's JWT-SVID TTL 5 s (the expiry case).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ExampleApp,
  presentsCurrentSvids,
  startExample,
} from '../../../examples/tachikoma-agent/app.js';
import { requestJson } from '../../../examples/tachikoma-agent/https-json.js';
import { exampleIds, requiredIdentities } from '../../../examples/tachikoma-agent/identities.js';
import type { IdentityHealthReport } from '../../../src/health/index.js';
import { parseJwtSvidInsecure } from '../../../src/svid/index.js';
import { useSpire } from '../../rig/index.js';
import { captureAudit, startLoad } from '../../unit/e2e/helpers.js';
import { scrape, seriesValue } from '../../unit/e2e/prometheus.js';

const TD = 'agent-flow.test';
const ids = exampleIds(TD);
const ALICE = ids.agent.toString();
const ALICE_ID = ids.agent.segments()[1]!;
const ERIN = ids.otherAgent.toString();
const ERIN_ID = ids.otherAgent.segments()[1]!;

/** Polls `probe` until it returns a value, with a deadline (the probe is the event). */
async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('the agent flow on real SPIRE', () => {
  const spire = useSpire({ trustDomain: TD, name: 'e2e-agent-flow' });
  let app: ExampleApp;

  beforeAll(async () => {
    const rig = spire();
    for (const { spiffeId, hint } of requiredIdentities(ids)) {
      await rig.createEntry({ spiffeId, hint, x509SvidTtl: 30 });
    }
    await rig.createEntry({ spiffeId: ERIN, hint: 'erin', x509SvidTtl: 30, jwtSvidTtl: 5 });
    for (const { spiffeId } of requiredIdentities(ids)) await rig.waitForX509Svid(spiffeId);
    await rig.waitForX509Svid(ERIN);
    app = await startExample({ address: rig.workloadAddress, clockToleranceSec: 1 });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('agent → registry → teg-core: token bridge and the record, each identity from SPIRE; every step audited', async () => {
    expect(app.ids.trustDomain.name).toBe(TD);
    expect(app.sources.tegCore.getX509Svid().spiffeId.toString()).toBe(ids.tegCore.toString());
    const audit = captureAudit();
    try {
      const t = await app.agent.requestToken();
      expect(t.status).toBe(200);
      const body = t.body as { token: string; expires_in: number; token_type: string };
      expect(body.token_type).toBe('Bearer');
      const svid = parseJwtSvidInsecure(body.token);
      expect(svid.spiffeId.toString()).toBe(ALICE);
      expect(svid.audience).toEqual([ids.tegCore.toString()]);
      expect(body.expires_in).toBeGreaterThan(60); // SPIRE's default JWT-SVID TTL is 5 minutes

      const r = await app.agent.getRecord('me');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        teg_core: {
          record: { agent: ALICE_ID },
          caller: { service: ids.registry.toString(), agent: ALICE },
          rate: { tier: 'trusted', limit: 1000 },
        },
      });
      expect(audit.results.map((e) => `${e.service} ${e.mechanism} ${e.result} ${e.spiffeId}`)).toEqual([
        `registry-backend mtls success ${ALICE}`, // POST /api/v1/teg/token
        `registry-backend mtls success ${ALICE}`, // GET /api/v1/agents/me
        `teg-core mtls success ${ids.registry}`,
        `teg-core jwt-svid success ${ALICE}`,
        `teg-core policy success ${ids.registry}`,
        `teg-core policy success ${ALICE}`,
        `teg-core policy success ${ALICE}`,
      ]);
    } finally {
      audit.stop();
    }
  });

  it('a wrong-audience token → 401; an expired one → 401 (it was accepted while valid)', async () => {
    const path = `/agents/${ERIN_ID}`;
    const audit = captureAudit();
    try {
      const wrong = await app.jwt.fetchJwtSvid({ audience: ids.registry.toString(), subject: ALICE });
      const wa = await app.registry.callTegCore(`/agents/${ALICE_ID}`, wrong.token);
      expect(wa.status).toBe(401);
      expect(wa.headers['www-authenticate']).toBe(
        'Bearer error="invalid_token", error_description="jwtsvid-audience-mismatch"',
      );

      // erin's entry has a 5 s JWT-SVID TTL: SPIRE's own token, used while valid, then after exp.
      const issued = await app.registry.bridge.issue(ids.otherAgent, ids.tegCore);
      const exp = parseJwtSvidInsecure(issued.token).expiresAt.getTime();
      const fresh = await app.registry.callTegCore(path, issued.token);
      expect(fresh.status).toBe(200);
      expect(fresh.body).toMatchObject({ rate: { tier: 'standard', limit: 100 } });
      // Expiry is the clock: wait until past exp + the 1 s tolerance.
      await new Promise((r) => setTimeout(r, Math.max(0, exp + 1_100 - Date.now())));
      const expired = await app.registry.callTegCore(path, issued.token);
      expect(expired.status).toBe(401);
      expect(expired.headers['www-authenticate']).toBe(
        'Bearer error="invalid_token", error_description="jwtsvid-expired"',
      );
      const failures = audit.results.filter((e) => e.result === 'failure');
      expect(failures.map((e) => [e.mechanism, e.status, e.reason])).toEqual([
        ['jwt-svid', 401, 'jwtsvid-audience-mismatch'],
        ['jwt-svid', 401, 'jwtsvid-expired'],
      ]);
    } finally {
      audit.stop();
    }
  });

  it('a caller outside the service graph → 403 with the policy’s reason, audited', async () => {
    const audit = captureAudit();
    try {
      const token = (await app.registry.bridge.issue(ids.agent, ids.tegCore)).token;
      const r = await requestJson(app.outsiderClient, `${app.tegCore.url}/agents/${ALICE_ID}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({
        error: 'forbidden',
        reason: 'federation-hub may not call teg-core',
        policy: 'service-graph',
      });
      expect(audit.results.at(-1)).toMatchObject({
        service: 'teg-core',
        mechanism: 'policy',
        result: 'failure',
        status: 403,
        spiffeId: ids.outsider.toString(),
        reason: 'service-graph: federation-hub may not call teg-core',
      });
    } finally {
      audit.stop();
    }
  });

  it('SPIRE rotates the SVIDs during the flow: no failed call, the new certificates are used', async () => {
    const rotated = new Set<string>();
    const onRotated = (r: { spiffeId: string }): void => {
      rotated.add(r.spiffeId);
    };
    app.sources.registry.on('rotated', onRotated);
    const load = startLoad(() => app.agent.getRecord('me'), 2, 20);
    try {
      const wanted = [ids.registry, ids.tegCore, ids.agent].map(String);
      await eventually(
        'SPIRE rotated registry-backend, teg-core and the agent, and new connections use the new SVIDs',
        async () => (wanted.every((w) => rotated.has(w)) && presentsCurrentSvids(app) ? true : undefined),
        45_000,
      );
    } finally {
      await load.stop();
      app.sources.registry.off('rotated', onRotated);
    }
    expect(load.failures).toEqual([]);
    expect(load.calls).toBeGreaterThan(10);
  });

  it('/metrics holds the values of the flow above', async () => {
    const s = await scrape(app.opsUrl);
    expect(seriesValue(s, 'identity_auth_attempts_total', { service: 'teg-core', result: 'failure' })).toBe(
      2,
    );
    expect(
      seriesValue(s, 'identity_auth_attempts_total', { service: 'teg-core', result: 'success' }),
    ).toBeGreaterThan(10);
    expect(
      seriesValue(s, 'identity_auth_attempts_total', { service: 'registry-backend', result: 'success' }),
    ).toBeGreaterThan(5);
    expect(
      seriesValue(s, 'identity_policy_evaluation_duration_seconds_count', {
        policy: 'service-graph',
        decision: 'deny',
      }),
    ).toBe(1);
    expect(
      seriesValue(s, 'identity_svid_rotations_total', { workload_type: 'service' }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      seriesValue(s, 'identity_svid_rotations_total', { workload_type: 'agent' }),
    ).toBeGreaterThanOrEqual(1);
    const expiry = seriesValue(s, 'identity_svid_expiry_seconds', { spiffe_id: ids.tegCore.toString() });
    expect(expiry).toBeGreaterThan(0);
    expect(expiry).toBeLessThanOrEqual(40); // TTL 30 s (+10 s backdating)
  });

  it('health: healthy, degraded while the SPIRE agent is stopped, healthy again when it returns', async () => {
    const check = () => app.health.check();
    expect((await check()).status).toBe('healthy');
    await spire().stopAgent();
    const down = await eventually<IdentityHealthReport>(
      'health degraded',
      async () => {
        const r = await check();
        return r.status === 'degraded' ? r : undefined;
      },
      20_000,
    );
    expect(down.checks.spire_agent.status).toBe('fail');
    expect(down.checks.svid_valid.status).toBe('pass'); // the SVID is still valid for a while
    const res = await fetch(`${app.opsUrl}/health/identity`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(503);

    await spire().startAgent();
    const up = await eventually<IdentityHealthReport>(
      'health healthy again',
      async () => {
        const r = await check();
        return r.status === 'healthy' ? r : undefined;
      },
      60_000,
    );
    expect(up.checks.spire_agent.status).toBe('pass');
    expect(up.checks.bundle_fresh.status).toBe('pass');
    // And the flow works again with SVIDs from the restarted agent.
    const r = await eventually(
      'a call through the restarted agent',
      async () => {
        const x = await app.agent.getRecord('me');
        return x.status === 200 ? x : undefined;
      },
      30_000,
    );
    expect(r.status).toBe(200);
  });
});
