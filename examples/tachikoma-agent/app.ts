/**
 * The whole example in one process: registry backend, TEG core and the agent, each with its own
 * SPIFFE identity from one Workload API (the embedded dev server or a SPIRE agent), plus an ops
 * listener with `/metrics` (Prometheus) and `/health/identity`.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { type IdentityHealth, identityHealth } from '../../src/health/index.js';
import { MtlsAgent } from '../../src/http/index.js';
import { Auditor, IdentityMetrics, type Logger } from '../../src/observability/index.js';
import { authorizeId } from '../../src/tls/index.js';
import { JwtSource, WorkloadAPIClient, X509Source } from '../../src/workload/index.js';
import { TachikomaAgent } from './agent.js';
import { type ExampleIds, exampleIds } from './identities.js';
import { type ExampleEngines, loadPolicyEngines } from './policies.js';
import { type Registry, startRegistry } from './registry-backend.js';
import { startTegCore, type TegCore } from './teg-core.js';

/** Options of {@link startExample}. */
export interface ExampleOptions {
  /** The Workload API address (`unix:///…`); default `SPIFFE_ENDPOINT_SOCKET`. */
  readonly address?: string | undefined;
  /** Rate window of the tiers, in ms. Default 60 000. */
  readonly rateWindowMs?: number | undefined;
  /** TEG core's JWT clock tolerance, in seconds. Default the SDK's (5). */
  readonly clockToleranceSec?: number | undefined;
  /** Audit and bridge log lines. Default silent. */
  readonly logger?: Logger | undefined;
  /** How long to wait for the Workload API at start, in ms. Default 15 000. */
  readonly initialSyncTimeoutMs?: number | undefined;
}

/** The running example. */
export interface ExampleApp {
  readonly ids: ExampleIds;
  /** The one Workload API client every source shares. */
  readonly client: WorkloadAPIClient;
  /** One X509Source per identity (all on the shared client and stream). */
  readonly sources: {
    readonly registry: X509Source;
    readonly tegCore: X509Source;
    readonly agent: X509Source;
    readonly outsider: X509Source;
  };
  readonly jwt: JwtSource;
  readonly engines: ExampleEngines;
  readonly auditor: Auditor;
  readonly metrics: IdentityMetrics;
  readonly meterProvider: MeterProvider;
  readonly tegCore: TegCore;
  readonly registry: Registry;
  /** The agent (alice). */
  readonly agent: TachikomaAgent;
  /** An mTLS client with the outsider's identity (federation-hub), pointed at TEG core. */
  readonly outsiderClient: MtlsAgent;
  /** TEG core's identity health. */
  readonly health: IdentityHealth;
  /** `http://127.0.0.1:<port>`: `/metrics` and `/health/identity`. */
  readonly opsUrl: string;
  close(): Promise<void>;
}

/**
 * Starts the example against a Workload API. The trust domain is the one of the first SVID the
 * API serves; the four identities of `requiredIdentities()` must be served to this process.
 *
 * @throws IdentityError `workload-svid-not-found` (naming the missing SPIFFE ID and what is
 *   available) when an entry is missing, or any Workload API error.
 */
export async function startExample(opts: ExampleOptions = {}): Promise<ExampleApp> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // keep closing the rest
      }
    }
  };
  try {
    const client = new WorkloadAPIClient(opts.address === undefined ? {} : { address: opts.address });
    cleanups.push(() => client.close());
    const first = await client.fetchX509Context({ timeoutMs: opts.initialSyncTimeoutMs ?? 15_000 });
    const ids = exampleIds(first.svids[0]!.spiffeId.trustDomain);

    const sourceFor = async (id: ExampleIds['registry']): Promise<X509Source> => {
      const s = await X509Source.create({
        client,
        select: { spiffeId: id },
        initialSyncTimeoutMs: opts.initialSyncTimeoutMs ?? 15_000,
      });
      cleanups.push(() => s.close());
      return s;
    };
    const [registrySource, tegCoreSource, agentSource, outsiderSource] = await Promise.all([
      sourceFor(ids.registry),
      sourceFor(ids.tegCore),
      sourceFor(ids.agent),
      sourceFor(ids.outsider),
    ]);
    const jwt = await JwtSource.create({ client, initialSyncTimeoutMs: opts.initialSyncTimeoutMs ?? 15_000 });
    cleanups.push(() => jwt.close());

    // Metrics: an OpenTelemetry meter whose reader is the Prometheus exporter (no server of its
    // own: the ops listener below serves its handler).
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
    const meterProvider = new MeterProvider({ readers: [exporter] });
    cleanups.push(() => meterProvider.shutdown());
    const metrics = new IdentityMetrics(meterProvider.getMeter('@tachikoma/identity'));
    // Every X509Source on the shared client sees every identity's rotations: follow one of them.
    cleanups.push(metrics.watchX509Source(registrySource));

    const auditor = new Auditor({ logger: opts.logger, metrics });
    const engines = await loadPolicyEngines(ids.trustDomain.name, metrics);
    cleanups.push(() => engines.close());

    const tegCore = await startTegCore({
      x509: tegCoreSource,
      jwt,
      ids,
      engines,
      auditor,
      rateWindowMs: opts.rateWindowMs,
      clockToleranceSec: opts.clockToleranceSec,
    });
    cleanups.push(() => tegCore.close());
    const registry = await startRegistry({
      x509: registrySource,
      jwt,
      ids,
      tegCoreUrl: tegCore.url,
      auditor,
      logger: opts.logger,
    });
    cleanups.push(() => registry.close());
    const agent = new TachikomaAgent(agentSource, registry.url, ids.registry);
    cleanups.push(() => agent.close());
    const outsiderClient = new MtlsAgent(outsiderSource, authorizeId(ids.tegCore), { keepAlive: false });
    cleanups.push(() => outsiderClient.close());

    const health = identityHealth({
      agent: client,
      x509Source: tegCoreSource,
      jwtSource: jwt,
      // Probes are evaluations too (they land in the metrics): the `decision` entrypoints are
      // labelled `value`, so probes never inflate the allow/deny counts the app produces.
      policies: [
        { engine: engines.serviceGraph, entrypoint: 'tachikoma/service_graph/decision' },
        { engine: engines.agentSelfAccess, entrypoint: 'tachikoma/agent_self_access/decision' },
        { engine: engines.rateTiers, entrypoint: 'tachikoma/rate_limit/tier' },
      ],
      cacheMs: 0,
    });
    cleanups.push(() => health.close());

    const ops: Server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') exporter.getMetricsRequestHandler(req, res);
      else if (path === '/health/identity') health.handler(req, res);
      else {
        res.statusCode = 404;
        res.end();
      }
    });
    ops.listen(0, '127.0.0.1');
    await once(ops, 'listening');
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          ops.closeAllConnections();
          ops.close(() => resolve());
        }),
    );

    return {
      ids,
      client,
      sources: {
        registry: registrySource,
        tegCore: tegCoreSource,
        agent: agentSource,
        outsider: outsiderSource,
      },
      jwt,
      engines,
      auditor,
      metrics,
      meterProvider,
      tegCore,
      registry,
      agent,
      outsiderClient,
      health,
      opsUrl: `http://127.0.0.1:${(ops.address() as AddressInfo).port}`,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * Whether TEG core and the registry last saw the current X509-SVIDs of their callers (the
 * registry and the agent): after a rotation, true once new connections carry the new SVIDs.
 */
export function presentsCurrentSvids(app: ExampleApp): boolean {
  return (
    app.tegCore.peerSerials.get(app.ids.registry.toString()) ===
      app.sources.registry.getX509Svid().leaf.serialNumber.toUpperCase() &&
    app.registry.peerSerials.get(app.ids.agent.toString()) ===
      app.sources.agent.getX509Svid().leaf.serialNumber.toUpperCase()
  );
}
