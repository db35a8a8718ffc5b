import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { Auditor, channelNames, IdentityMetrics, type Logger } from '../../../src/observability/index.js';

function recordingLogger(): Logger & { lines: Array<{ level: string; fields: unknown; msg: unknown }> } {
  const lines: Array<{ level: string; fields: unknown; msg: unknown }> = [];
  const at = (level: string) => (fields: unknown, msg?: unknown) => {
    lines.push({ level, fields, msg });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as Logger & {
    lines: typeof lines;
  };
}

async function collect(
  provider: MeterProvider,
  exporter: InMemoryMetricExporter,
): Promise<Map<string, Array<{ attributes: object; value: unknown }>>> {
  await provider.forceFlush();
  const out = new Map<string, Array<{ attributes: object; value: unknown }>>();
  for (const rm of exporter.getMetrics()) {
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        out.set(
          m.descriptor.name,
          m.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value })),
        );
      }
    }
  }
  exporter.reset();
  return out;
}

describe('observability', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  function meter(): { metrics: IdentityMetrics; provider: MeterProvider; exporter: InMemoryMetricExporter } {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    cleanups.push(() => provider.shutdown());
    return { metrics: new IdentityMetrics(provider.getMeter('test')), provider, exporter };
  }

  it('audits a result to the logger, the diagnostics channel and the attempts counter', async () => {
    const { metrics, provider, exporter } = meter();
    const logger = recordingLogger();
    const seen: unknown[] = [];
    const onMessage = (m: unknown): void => {
      seen.push(m);
    };
    subscribe(channelNames.authResult, onMessage);
    cleanups.push(() => {
      unsubscribe(channelNames.authResult, onMessage);
    });

    const auditor = new Auditor({ logger, metrics });
    auditor.result({
      mechanism: 'jwt-svid',
      service: 'teg-core',
      result: 'failure',
      status: 401,
      durationMs: 1.5,
      reason: 'jwtsvid-expired',
    });
    auditor.result({
      mechanism: 'mtls',
      service: 'teg-core',
      result: 'success',
      status: 200,
      durationMs: 0.4,
      spiffeId: 'spiffe://td/x',
    });

    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({ event: 'auth_result', result: 'failure', reason: 'jwtsvid-expired' });
    expect(logger.lines.map((l) => l.level)).toEqual(['warn', 'info']);
    const points = (await collect(provider, exporter)).get('identity_auth_attempts_total');
    expect(points).toEqual(
      expect.arrayContaining([
        { attributes: { service: 'teg-core', result: 'failure' }, value: 1 },
        { attributes: { service: 'teg-core', result: 'success' }, value: 1 },
      ]),
    );
  });

  it('records rotations, policy durations and SVID expiry', async () => {
    const { metrics, provider, exporter } = meter();
    metrics.recordRotation('agent');
    metrics.recordRotation('agent');
    metrics.recordPolicyEvaluation('service_graph', 'allow', 0.0002);
    metrics.setSvidExpiry('spiffe://td/agent/a', new Date(Date.now() + 60_000));
    const got = await collect(provider, exporter);
    expect(got.get('identity_svid_rotations_total')).toEqual([
      { attributes: { workload_type: 'agent' }, value: 2 },
    ]);
    const histogram = got.get('identity_policy_evaluation_duration_seconds')![0]!;
    expect(histogram.attributes).toEqual({ policy: 'service_graph', decision: 'allow' });
    expect((histogram.value as { count: number }).count).toBe(1);
    const expiry = got.get('identity_svid_expiry_seconds')![0]!;
    expect(expiry.value as number).toBeGreaterThan(55);
    expect(expiry.value as number).toBeLessThanOrEqual(60);
  });

  it('is a no-op without a meter and never publishes when nobody listens', () => {
    const metrics = new IdentityMetrics();
    expect(() => {
      metrics.recordAuthAttempt('s', 'success');
      metrics.recordPolicyEvaluation('p', 'deny', 0.1);
      new Auditor().result({
        mechanism: 'policy',
        service: 's',
        result: 'success',
        status: 200,
        durationMs: 1,
      });
    }).not.toThrow();
  });
});
