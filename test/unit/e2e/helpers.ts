/** Shared helpers of the e2e unit tests: audit capture, metrics collection, HTTP servers. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  type AuthAttemptEvent,
  type AuthResultEvent,
  channelNames,
  IdentityMetrics,
  type Logger,
} from '../../../src/observability/index.js';

/** Audit events seen on the diagnostics channels, until `stop()`. */
export interface AuditCapture {
  readonly attempts: AuthAttemptEvent[];
  readonly results: AuthResultEvent[];
  stop(): void;
}

export function captureAudit(): AuditCapture {
  const attempts: AuthAttemptEvent[] = [];
  const results: AuthResultEvent[] = [];
  const onAttempt = (m: unknown): void => {
    attempts.push(m as AuthAttemptEvent);
  };
  const onResult = (m: unknown): void => {
    results.push(m as AuthResultEvent);
  };
  subscribe(channelNames.authAttempt, onAttempt);
  subscribe(channelNames.authResult, onResult);
  return {
    attempts,
    results,
    stop() {
      unsubscribe(channelNames.authAttempt, onAttempt);
      unsubscribe(channelNames.authResult, onResult);
    },
  };
}

/** A logger that records every line. */
export function recordingLogger(): Logger & {
  lines: Array<{ level: string; fields: unknown; msg: unknown }>;
} {
  const lines: Array<{ level: string; fields: unknown; msg: unknown }> = [];
  const at = (level: string) => (fields: unknown, msg?: unknown) => {
    lines.push({ level, fields, msg });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as Logger & {
    lines: typeof lines;
  };
}

export interface MetricPoint {
  attributes: Record<string, unknown>;
  value: unknown;
}

/**
 * IdentityMetrics on an in-memory OpenTelemetry pipeline, and a way to read the points. With
 * `delta`, each collection holds what happened since the previous one (and, unlike cumulative,
 * only the gauge series observed in that collection).
 */
export function testMetrics(temporality: 'cumulative' | 'delta' = 'cumulative'): {
  metrics: IdentityMetrics;
  collect(): Promise<Map<string, MetricPoint[]>>;
  shutdown(): Promise<void>;
} {
  const exporter = new InMemoryMetricExporter(
    temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
  );
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    metrics: new IdentityMetrics(provider.getMeter('test')),
    async collect() {
      await provider.forceFlush();
      const out = new Map<string, MetricPoint[]>();
      const last = exporter.getMetrics().at(-1);
      for (const sm of last?.scopeMetrics ?? []) {
        for (const m of sm.metrics) {
          out.set(
            m.descriptor.name,
            m.dataPoints.map((p) => ({
              attributes: p.attributes as Record<string, unknown>,
              value: p.value,
            })),
          );
        }
      }
      exporter.reset();
      return out;
    },
    shutdown: () => provider.shutdown(),
  };
}

/** The value of the point whose attributes include `attrs`, or undefined. */
export function pointValue(points: MetricPoint[] | undefined, attrs: Record<string, unknown>): unknown {
  return points?.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))?.value;
}

/** Starts a node:http server on 127.0.0.1 and returns it with its base URL. */
export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * Sends one request with exactly the given header lines (repeated names allowed), for the
 * header-parsing cases fetch cannot produce.
 */
export function rawRequest(
  url: string,
  opts: { method?: string; headers?: Array<[string, string]>; body?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', signal: AbortSignal.timeout(10_000) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    const grouped = new Map<string, string[]>();
    for (const [k, v] of opts.headers ?? []) grouped.set(k, [...(grouped.get(k) ?? []), v]);
    for (const [k, v] of grouped) req.setHeader(k, v.length === 1 ? v[0]! : v);
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Concurrent calls started by {@link startLoad}. */
export interface Load {
  /** Calls answered so far (any status) or failed. */
  readonly calls: number;
  /** Non-200 answers (`<status> <body>`) and errors. */
  readonly failures: string[];
  /** Stops the loops and waits for the calls in flight. */
  stop(): Promise<void>;
}

/** Runs `workers` loops calling `call` back to back (with `pauseMs` between calls) until `stop()`. */
export function startLoad(
  call: () => Promise<{ status: number; body: unknown }>,
  workers: number,
  pauseMs = 0,
): Load {
  let stopped = false;
  let calls = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (!stopped) {
      try {
        const r = await call();
        if (r.status !== 200) failures.push(`${r.status} ${JSON.stringify(r.body)}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      calls++;
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const running = Array.from({ length: workers }, () => worker());
  return {
    get calls() {
      return calls;
    },
    failures,
    async stop() {
      stopped = true;
      await Promise.all(running);
    },
  };
}
