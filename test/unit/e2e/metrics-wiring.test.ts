// IdentityMetrics wired to real sources: rotations from an X509Source's `rotated` events (by
// workload type), the SVID expiry gauge per SPIFFE ID (withdrawn SVIDs leave it), policy
// evaluation durations from the PolicyEngine metrics hook, and attempts counted only for
// authentication, not for policy decisions.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePath } from '../../../examples/tachikoma-agent/policies.js';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { Auditor, workloadTypeOf } from '../../../src/observability/index.js';
import { PolicyEngine } from '../../../src/policy/index.js';
import { X509Source } from '../../../src/workload/index.js';
import { pointValue, testMetrics } from './helpers.js';

const TD = 'metrics.test';
const SVC = `spiffe://${TD}/service/teg-core`;
const AGENT = `spiffe://${TD}/agent/a1`;
const POD = `spiffe://${TD}/pod/ns/p`;

function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`${what} within ${ms} ms`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

describe('IdentityMetrics wiring', () => {
  let dev: DevWorkloadServer;
  let source: X509Source;
  beforeAll(async () => {
    dev = await DevWorkloadServer.start({
      trustDomain: TD,
      identities: [SVC, AGENT, POD],
      x509Rotation: false,
    });
    source = await X509Source.create({ address: dev.address });
  });
  afterAll(async () => {
    await source?.close();
    await dev?.close();
  });

  it('workloadTypeOf follows the naming scheme', () => {
    expect([SVC, AGENT, POD, `spiffe://${TD}/web`, 'nonsense'].map(workloadTypeOf)).toEqual([
      'service',
      'agent',
      'pod',
      'other',
      'other',
    ]);
  });

  // A delta pipeline: @opentelemetry/sdk-metrics 2.x keeps exporting every attribute set an
  // observable gauge ever reported when the temporality is cumulative (the Prometheus exporter's),
  // so only delta shows that our callback stops reporting a withdrawn SVID.
  it('counts rotations by workload type and reports each SVID’s expiry; a withdrawn SVID leaves the gauge', async () => {
    const m = testMetrics('delta');
    const stop = m.metrics.watchX509Source(source);
    try {
      let got = await m.collect();
      const expiry = got.get('identity_svid_expiry_seconds');
      expect(expiry?.map((p) => p.attributes['spiffe_id']).sort()).toEqual([AGENT, POD, SVC].sort());
      const left = pointValue(expiry, { spiffe_id: SVC }) as number;
      const expected = (source.getX509Svids()[0]!.expiresAt.getTime() - Date.now()) / 1000;
      expect(Math.abs(left - expected)).toBeLessThan(5);
      expect(got.get('identity_svid_rotations_total') ?? []).toEqual([]);

      let rotations = 0;
      const onRotated = (): void => {
        rotations++;
      };
      source.on('rotated', onRotated);
      dev.rotateX509Svids();
      await until(() => rotations === 3, 'three rotated events');
      dev.rotateX509Svids(AGENT);
      await until(() => rotations === 4, 'a fourth rotated event');
      source.off('rotated', onRotated);
      got = await m.collect();
      const r = got.get('identity_svid_rotations_total');
      expect(pointValue(r, { workload_type: 'service' })).toBe(1);
      expect(pointValue(r, { workload_type: 'agent' })).toBe(2);
      expect(pointValue(r, { workload_type: 'pod' })).toBe(1);

      let updates = 0;
      const onUpdate = (): void => {
        updates++;
      };
      source.on('update', onUpdate);
      dev.removeIdentity(POD);
      await until(() => updates > 0, 'an update after the removal');
      source.off('update', onUpdate);
      got = await m.collect();
      expect(
        got
          .get('identity_svid_expiry_seconds')
          ?.map((p) => p.attributes['spiffe_id'])
          .sort(),
      ).toEqual([AGENT, SVC].sort());
    } finally {
      stop();
    }
    const after = await m.collect();
    expect(after.get('identity_svid_expiry_seconds') ?? []).toEqual([]);
    await m.shutdown();
  });

  it('a fixed workloadType label overrides the naming scheme', async () => {
    const m = testMetrics();
    const stop = m.metrics.watchX509Source(source, { workloadType: 'registry' });
    try {
      let seen = 0;
      const on = (): void => {
        seen++;
      };
      source.on('rotated', on);
      dev.rotateX509Svids(SVC);
      await until(() => seen === 1, 'a rotated event');
      source.off('rotated', on);
      expect((await m.collect()).get('identity_svid_rotations_total')).toEqual([
        { attributes: { workload_type: 'registry' }, value: 1 },
      ]);
    } finally {
      stop();
      await m.shutdown();
    }
  });

  it('policyHook records every evaluation of a PolicyEngine by policy and decision', async () => {
    const m = testMetrics();
    await using engine = await PolicyEngine.fromBundle(
      new Uint8Array(readFileSync(bundlePath('service-graph'))),
      {
        name: 'service-graph',
        metrics: m.metrics.policyHook(),
      },
    );
    const registry = 'spiffe://tachikoma.internal/service/registry-backend';
    const teg = 'spiffe://tachikoma.internal/service/teg-core';
    expect(engine.evaluate('tachikoma/service_graph/allow', { caller: registry, target: teg }).result).toBe(
      true,
    );
    expect(engine.evaluate('tachikoma/service_graph/allow', { caller: teg, target: registry }).result).toBe(
      false,
    );
    engine.evaluate('tachikoma/service_graph/allow', { caller: teg, target: registry });
    const h = (await m.collect()).get('identity_policy_evaluation_duration_seconds');
    const count = (decision: string) =>
      (pointValue(h, { policy: 'service-graph', decision }) as { count: number } | undefined)?.count;
    expect(count('allow')).toBe(1);
    expect(count('deny')).toBe(2);
    await m.shutdown();
  });

  it('the Auditor counts authentication results, not policy decisions', async () => {
    const m = testMetrics();
    const auditor = new Auditor({ metrics: m.metrics });
    const base = { service: 'teg-core', status: 200, durationMs: 1 } as const;
    auditor.result({ ...base, mechanism: 'jwt-svid', result: 'success' });
    auditor.result({ ...base, mechanism: 'mtls', result: 'success' });
    auditor.result({ ...base, mechanism: 'policy', result: 'failure', status: 403 });
    const points = (await m.collect()).get('identity_auth_attempts_total');
    expect(points).toEqual([{ attributes: { service: 'teg-core', result: 'success' }, value: 2 }]);
    await m.shutdown();
  });
});
