// identityHealth against the in-process dev Workload API server: each of the four checks passes
// and fails for its own reason, the status follows, and the handler maps it to 200/503.
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundlePath } from '../../../examples/tachikoma-agent/policies.js';
import { BundleSet } from '../../../src/bundle/index.js';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import {
  type IdentityHealth,
  type IdentityHealthOptions,
  identityHealth,
} from '../../../src/health/index.js';
import { PolicyEngine } from '../../../src/policy/index.js';
import { JwtSource, WorkloadAPIClient, X509Source } from '../../../src/workload/index.js';
import { expectIdentityError, expectIdentityRejection } from '../../fixtures/errors.js';
import { listen, rawRequest } from './helpers.js';

const TD = 'health.test';
const TEG = `spiffe://${TD}/service/teg-core`;

/** Waits for `event` once, with a deadline. */
function next(
  emitter: { once(e: string, f: () => void): unknown },
  event: string,
  ms = 10_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe('identityHealth', () => {
  let dev: DevWorkloadServer;
  let client: WorkloadAPIClient;
  let x509: X509Source;
  let jwt: JwtSource;
  let engine: PolicyEngine;
  const checkers: IdentityHealth[] = [];
  const make = (opts: Partial<IdentityHealthOptions> = {}): IdentityHealth => {
    const h = identityHealth({
      agent: client,
      x509Source: x509,
      jwtSource: jwt,
      policies: [{ engine, entrypoint: 'tachikoma/service_graph/decision', input: {} }],
      cacheMs: 0,
      ...opts,
    });
    checkers.push(h);
    return h;
  };

  beforeAll(async () => {
    dev = await DevWorkloadServer.start({ trustDomain: TD, identities: [TEG], x509Rotation: false });
    client = new WorkloadAPIClient({ address: dev.address });
    x509 = await X509Source.create({ client });
    jwt = await JwtSource.create({ client });
    engine = await PolicyEngine.fromBundle(new Uint8Array(readFileSync(bundlePath('service-graph'))), {
      name: 'service-graph',
    });
  });
  afterEach(() => {
    for (const h of checkers.splice(0)) h.close();
  });
  afterAll(async () => {
    await engine?.close();
    await jwt?.close();
    await x509?.close();
    await client?.close();
    await dev?.close();
  });

  it('healthy: all four checks pass, with the SVID expiry', async () => {
    const r = await make().check();
    expect(r.status).toBe('healthy');
    expect(Object.fromEntries(Object.entries(r.checks).map(([k, v]) => [k, v.status]))).toEqual({
      spire_agent: 'pass',
      svid_valid: 'pass',
      opa_responsive: 'pass',
      bundle_fresh: 'pass',
    });
    expect(r.svid_expiry).toBe(x509.getX509Svid().expiresAt.toISOString());
    expect(r.last_rotation).toBeNull();
    expect(r.checks.bundle_fresh.detail).toBe('bundles match the agent');
  });

  it('last_rotation follows the source’s rotated events', async () => {
    const h = make();
    const rotated = next(x509, 'rotated');
    const before = Date.now();
    dev.rotateX509Svids();
    await rotated;
    const r = await h.check();
    expect(Date.parse(r.last_rotation!)).toBeGreaterThanOrEqual(before - 1);
    expect(h.lastRotation?.toISOString()).toBe(r.last_rotation);
  });

  it('svid_valid fails when the SVID expires within minSvidLifetimeMs', async () => {
    const r = await make({ minSvidLifetimeMs: 2 * 3_600_000 }).check();
    expect(r.status).toBe('degraded');
    expect(r.checks.svid_valid.status).toBe('fail');
    expect(r.checks.svid_valid.detail).toMatch(/^health-svid-expiring: /);
  });

  it('svid_valid fails when the source has no SVID', async () => {
    const r = await make({
      x509Source: {
        getX509Svid: () => {
          throw new IdentityError('workload-no-identity', 'redacted');
        },
        getX509BundleSet: () => x509.getX509BundleSet(),
      },
    }).check();
    expect(r.checks.svid_valid).toEqual({ status: 'fail', detail: 'workload-no-identity: redacted' });
    expect(r.svid_expiry).toBeNull();
    expect(r.status).toBe('degraded');
  });

  it('opa_responsive fails when a policy engine errors (closed here)', async () => {
    const closed = await PolicyEngine.fromBundle(new Uint8Array(readFileSync(bundlePath('service-graph'))), {
      name: 'closed-one',
    });
    await closed.close();
    const r = await make({ policies: [{ engine }, { engine: closed }] }).check();
    expect(r.checks.opa_responsive.status).toBe('fail');
    expect(r.checks.opa_responsive.detail).toMatch(/^closed-one: policy-closed: /);
    expect(r.status).toBe('degraded');
  });

  it('bundle_fresh: bundles that differ from the agent’s stay fresh only until bundleMaxAgeMs after the last match', async () => {
    let held = x509.getX509BundleSet();
    let clock = Date.now();
    const h = make({
      x509Source: { getX509Svid: () => x509.getX509Svid(), getX509BundleSet: () => held },
      jwtSource: undefined,
      bundleMaxAgeMs: 60_000,
      now: () => new Date(clock),
    });
    expect((await h.check()).checks.bundle_fresh.status).toBe('pass');
    held = new BundleSet(); // lost (e.g. a watch that missed updates), then …
    expect((await h.check()).checks.bundle_fresh.detail).toMatch(/^health-no-bundles: /);
    // … stale: an old CA the agent no longer sends.
    const old = dev.x509Bundle();
    dev.rotateX509Authority({ keepPrevious: false });
    held = new BundleSet(old);
    clock += 30_000;
    const within = await h.check();
    expect(within.checks.bundle_fresh.status).toBe('pass');
    expect(within.checks.bundle_fresh.detail).toContain(`the agent now sends other bundles (X.509 ${TD})`);
    clock += 31_000;
    const after = await h.check();
    expect(after.checks.bundle_fresh.status).toBe('fail');
    expect(after.checks.bundle_fresh.detail).toMatch(
      /^health-bundles-stale: bundles last matched the agent 61 s ago/,
    );
    expect(after.status).toBe('degraded');
  });

  it('spire_agent fails (and the status degrades) when the agent is too slow or gone; bundles stay fresh for a while', async () => {
    const h = make({ probeTimeoutMs: 300 });
    expect((await h.check()).status).toBe('healthy');
    dev.injectFault({ type: 'slow', delayMs: 2000, rpc: 'FetchX509Bundles' });
    const slow = await h.check();
    expect(slow.checks.spire_agent.status).toBe('fail');
    expect(slow.checks.spire_agent.detail).toMatch(/workload|health-probe-timeout/);
    expect(slow.checks.bundle_fresh.status).toBe('pass'); // confirmed a moment ago
    expect(slow.status).toBe('degraded');
    dev.clearFaults();
    dev.injectFault({ type: 'unavailable', rpc: 'FetchX509Bundles' });
    const down = await h.check();
    expect(down.checks.spire_agent.detail).toMatch(/^workload-unavailable: /);
    dev.clearFaults();
    expect((await h.check()).status).toBe('healthy');
  });

  it('skipped checks do not degrade; nothing configured is healthy', async () => {
    const r = await make({
      agent: undefined,
      policies: [],
      x509Source: undefined,
      jwtSource: undefined,
    }).check();
    expect(r.status).toBe('healthy');
    expect(Object.values(r.checks).map((c) => c.status)).toEqual([
      'skipped',
      'skipped',
      'skipped',
      'skipped',
    ]);
  });

  it('the handler answers 200 healthy / 503 degraded as JSON, 405 for other methods', async () => {
    const good = make();
    const bad = make({ minSvidLifetimeMs: 86_000_000 });
    const srv = await listen((req, res) => (req.url === '/bad' ? bad : good).handler(req, res));
    try {
      const ok = await rawRequest(`${srv.url}/health/identity`);
      expect(ok.status).toBe(200);
      expect(ok.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(ok.body)).toMatchObject({
        status: 'healthy',
        checks: { spire_agent: { status: 'pass' } },
      });
      const degraded = await rawRequest(`${srv.url}/bad`);
      expect(degraded.status).toBe(503);
      expect(JSON.parse(degraded.body).status).toBe('degraded');
      const head = await rawRequest(`${srv.url}/health/identity`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body).toBe('');
      const post = await rawRequest(`${srv.url}/health/identity`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers['allow']).toBe('GET, HEAD');
    } finally {
      await srv.close();
    }
  });

  it('cacheMs reuses a recent report', async () => {
    const h = make({ cacheMs: 60_000 });
    const a = h.check();
    const b = h.check();
    expect(a).toBe(b);
  });

  it('close() stops it: check() rejects with health-closed', async () => {
    const h = make();
    h.close();
    h.close();
    await expectIdentityRejection(h.check(), 'health-closed');
  });

  it.each([
    ['an agent without fetch methods', { agent: {} }],
    ['an X.509 source without getX509Svid', { x509Source: {} }],
    ['a JWT source without getJwtBundleSet', { jwtSource: {} }],
    ['a policy probe without an engine', { policies: [{}] }],
    ['a zero probe timeout', { probeTimeoutMs: 0 }],
    ['a negative bundle age', { bundleMaxAgeMs: -1 }],
  ])('refuses %s: health-invalid-option', (_name, opts) => {
    expectIdentityError(() => identityHealth(opts as IdentityHealthOptions), 'health-invalid-option');
  });
});
