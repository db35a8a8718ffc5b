/**
 * Shared parts of the policy benchmarks: the policy (examples/policies/service-graph), its data,
 * the inputs, and latency statistics.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (found from this file, whether run from source or compiled). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (
      existsSync(pkg) &&
      (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === '@tachikoma/identity'
    ) {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
}

export const ROOT: string = repoRoot();
export const POLICY_DIR: string = join(ROOT, 'examples', 'policies', 'service-graph');
export const REGO_FILE: string = join(POLICY_DIR, 'service_graph.rego');
export const DATA_FILE: string = join(POLICY_DIR, 'data.json');
export const CAPABILITIES: string = join(ROOT, 'src', 'policy', 'capabilities.json');
export const ENTRYPOINT = 'tachikoma/service_graph/allow';
export const DATA: Record<string, unknown> = JSON.parse(readFileSync(DATA_FILE, 'utf8')) as Record<
  string,
  unknown
>;

const TD = 'tachikoma.internal';
const SERVICES = ['registry-backend', 'teg-core', 'federation-hub', 'audit-logger', 'billing', 'web'];

/** A realistic request input: caller, target, method, path, query. */
export interface BenchInput {
  caller: string;
  target: string;
  method: string;
  path: string[];
  query: Record<string, string[]>;
}

/** `n` inputs cycling through every caller/target pair of six services (a quarter allowed). */
export function makeInputs(n: number): BenchInput[] {
  const out: BenchInput[] = [];
  for (let i = 0; i < n; i++) {
    const caller = SERVICES[i % SERVICES.length] as string;
    const target = SERVICES[Math.floor(i / SERVICES.length) % SERVICES.length] as string;
    out.push({
      caller: `spiffe://${TD}/service/${caller}`,
      target: `spiffe://${TD}/service/${target}`,
      method: i % 3 === 0 ? 'POST' : 'GET',
      path: ['v1', 'teg', `item-${i % 17}`],
      query: { page: [String(i % 5)] },
    });
  }
  return out;
}

/** Latency summary of samples in nanoseconds. */
export interface Stats {
  readonly count: number;
  readonly perSecond: number;
  readonly p50us: number;
  readonly p99us: number;
  /** CPU time of the whole process (all threads) per operation, user + system, µs. */
  readonly cpuUs?: number | undefined;
}

/** Summarises per-operation latencies (ns) measured over a wall time (ns). */
export function summarize(samples: Float64Array, count: number, wallNs: number): Stats {
  const sorted = samples.subarray(0, count).slice().sort();
  const at = (q: number) => (sorted[Math.min(count - 1, Math.floor(q * count))] ?? 0) / 1000;
  return { count, perSecond: (count * 1e9) / wallNs, p50us: at(0.5), p99us: at(0.99) };
}

/** Runs `op` repeatedly for `ms` milliseconds (after a warm-up) and times each call. */
export function timeSync(op: (i: number) => void, ms: number, warmup = 2000): Stats {
  for (let i = 0; i < warmup; i++) op(i);
  const samples = new Float64Array(5_000_000);
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let n = 0;
  let t = start;
  while (t < end && n < samples.length) {
    op(n);
    const now = process.hrtime.bigint();
    samples[n++] = Number(now - t);
    t = now;
  }
  const used = process.cpuUsage(cpu);
  return { ...summarize(samples, n, Number(t - start)), cpuUs: (used.user + used.system) / n };
}

/** Runs an async `op` with `concurrency` calls in flight for `ms` milliseconds, timing each. */
export async function timeAsync(
  op: (i: number) => Promise<void>,
  ms: number,
  concurrency: number,
  warmup = 500,
): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await op(i);
  const samples = new Float64Array(2_000_000);
  let n = 0;
  let issued = 0;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  const lane = async (): Promise<void> => {
    while (process.hrtime.bigint() < end && n < samples.length) {
      const t = process.hrtime.bigint();
      await op(issued++);
      samples[n++] = Number(process.hrtime.bigint() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const wall = Number(process.hrtime.bigint() - start);
  const used = process.cpuUsage(cpu);
  return { ...summarize(samples, n, wall), cpuUs: (used.user + used.system) / n };
}

/** Formats a row of the results table. */
export function row(name: string, s: Stats): string {
  const cpu = s.cpuUs === undefined ? '–' : s.cpuUs.toFixed(2);
  return `| ${name} | ${Math.round(s.perSecond).toLocaleString('en-US')} | ${s.p50us.toFixed(1)} | ${s.p99us.toFixed(1)} | ${cpu} |`;
}
