/**
 * Workload API benchmarks (issue 4), one run side by side:
 *
 * 1. `fetch`: fetchX509Context p50/p99 against one real SPIRE agent, ours (WorkloadAPIClient)
 *    vs a go-spiffe v2.9.0 client program (test/interop/go-spiffe), in alternating rounds; each
 *    side reuses one connected client and makes sequential calls.
 * 2. `rotation`: on the dev server, rotateX509Svids() → the X509Source `rotated` event, p50/p99.
 * 3. `memory`: RSS and heap growth of an X509Source over 1,000 rotations, the dev server in
 *    another process (after 1,000 warm-up rotations and a forced GC at both ends).
 *
 * Run: node --expose-gc --import ./test/integration/workload/helpers/register-ts.mjs bench/workload.ts [fetch|rotation|memory]...
 * Needs the SPIRE binaries (`npm run tools`) for `fetch`; builds the go-spiffe program on first use.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DevWorkloadServer } from '../src/dev/index.js';
import { X509Svid } from '../src/svid/index.js';
import { WorkloadAPIClient, X509Source, type X509SvidRotation } from '../src/workload/index.js';
import { goSpiffeBenchX509 } from '../test/interop/go-spiffe.js';
import { startSpire } from '../test/rig/index.js';

const sections = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const want = (s: string): boolean => sections.length === 0 || sections.includes(s);

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function stats(samplesMs: readonly number[]): { n: number; p50: number; p99: number; mean: number } {
  const s = [...samplesMs].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: quantile(s, 0.5),
    p99: quantile(s, 0.99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) g();
}

async function benchFetch(): Promise<void> {
  const CALLS = Number(process.env['BENCH_FETCH_CALLS'] ?? 300);
  const ROUNDS = Number(process.env['BENCH_FETCH_ROUNDS'] ?? 4);
  const rig = await startSpire({ trustDomain: 'bench.test', name: 'bench-workload', logLevel: 'WARN' });
  try {
    const id = 'spiffe://bench.test/service/bench';
    await rig.createEntryAndWait({ spiffeId: id });
    const client = new WorkloadAPIClient({ address: rig.workloadAddress });
    // Both sides: one warm-up call on a connected client, then sequential calls.
    await client.fetchX509Context();
    await goSpiffeBenchX509(rig.workloadAddress, 20);
    const ours: number[] = [];
    const go: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < CALLS; i++) {
        const t = performance.now();
        const ctx = await client.fetchX509Context();
        ours.push(performance.now() - t);
        if (ctx.svids[0]?.spiffeId.toString() !== id) throw new Error('unexpected SVID');
      }
      go.push(...(await goSpiffeBenchX509(rig.workloadAddress, CALLS)).map((us) => us / 1000));
    }
    // What parsing costs when nothing is cached (a rotation, or a first fetch): one SVID + bundle.
    const ctx = await client.fetchX509Context();
    const { certificatesDer, privateKeyDer } = ctx.svids[0]!.marshalDer();
    const PARSES = 300;
    const t = performance.now();
    for (let i = 0; i < PARSES; i++) X509Svid.parse(certificatesDer, privateKeyDer);
    const parseMs = (performance.now() - t) / PARSES;
    await client.close();

    const o = stats(ours);
    const g = stats(go);
    console.log(
      `\n## fetchX509Context against one SPIRE 1.13.3 agent (${ROUNDS} alternating rounds × ${CALLS} calls)\n`,
    );
    console.log('| client | calls | p50 | p99 | mean |');
    console.log('|---|---:|---:|---:|---:|');
    console.log(`| ours (WorkloadAPIClient) | ${o.n} | ${fmt(o.p50)} | ${fmt(o.p99)} | ${fmt(o.mean)} |`);
    console.log(`| go-spiffe v2.9.0 | ${g.n} | ${fmt(g.p50)} | ${fmt(g.p99)} | ${fmt(g.mean)} |`);
    console.log(
      `\nratio ours/go-spiffe: p50 ${(o.p50 / g.p50).toFixed(2)}×, p99 ${(o.p99 / g.p99).toFixed(2)}× (goal p50 ≤ 1.5×)`,
    );
    console.log(`uncached X509Svid.parse of the agent's SVID: ${fmt(parseMs)} per parse`);
  } finally {
    await rig.stop();
  }
}

async function rotationRig(): Promise<{
  server: DevWorkloadServer;
  source: X509Source;
  rotate: () => Promise<number>;
}> {
  const server = await DevWorkloadServer.start({
    identities: ['spiffe://example.org/bench'],
    x509Rotation: false,
  });
  const source = await X509Source.create({ address: server.address });
  const rotate = (): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no rotated event within 5 s')), 5000);
      const start = performance.now();
      const onRotated = (_r: X509SvidRotation): void => {
        clearTimeout(timer);
        source.off('rotated', onRotated);
        resolve(performance.now() - start);
      };
      source.on('rotated', onRotated);
      server.rotateX509Svids();
    });
  return { server, source, rotate };
}

async function benchRotation(): Promise<void> {
  const N = Number(process.env['BENCH_ROTATIONS'] ?? 500);
  const { server, source, rotate } = await rotationRig();
  try {
    for (let i = 0; i < 50; i++) await rotate();
    const samples: number[] = [];
    for (let i = 0; i < N; i++) samples.push(await rotate());
    const s = stats(samples);
    console.log(`\n## Rotation propagation on the dev server (${N} rotations after 50 warm-up)\n`);
    console.log('| measure | p50 | p99 | mean |');
    console.log('|---|---:|---:|---:|');
    console.log(
      `| rotateX509Svids() → X509Source 'rotated' | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.mean)} |`,
    );
    console.log('\ngoal p50 ≤ 5 ms');
  } finally {
    await source.close();
    await server.close();
  }
}

/** Runs the dev server in its own process (bench/workload-dev-server-child.ts). */
async function serverProcess(): Promise<{ address: string; rotate(): void; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      fileURLToPath(new URL('../test/integration/workload/helpers/register-ts.mjs', import.meta.url)),
      fileURLToPath(new URL('./workload-dev-server-child.ts', import.meta.url)),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  const address = await new Promise<string>((resolve, reject) => {
    lines.once('line', (l) => (l.startsWith('address ') ? resolve(l.slice(8)) : reject(new Error(l))));
    child.once('exit', (code) => reject(new Error(`dev server child exited (${code})`)));
  });
  return {
    address,
    rotate: () => child.stdin.write('rotate\n'),
    stop: async () => {
      child.stdin.end('quit\n');
      await once(child, 'exit');
    },
  };
}

async function benchMemory(): Promise<void> {
  const N = 1000;
  const WARMUP = Number(process.env['BENCH_MEMORY_WARMUP'] ?? 1000);
  const WINDOWS = Number(process.env['BENCH_MEMORY_WINDOWS'] ?? 5);
  // The server runs in another process: what is measured is the client (X509Source) alone.
  const server = await serverProcess();
  const source = await X509Source.create({ address: server.address });
  const rotate = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no rotated event within 5 s')), 5000);
      source.once('rotated', () => {
        clearTimeout(timer);
        resolve();
      });
      server.rotate();
    });
  try {
    // Heap and RSS settle after ~1,000 rotations (JIT and inline caches, malloc arenas). Then
    // WINDOWS windows of N rotations each, with a forced GC and a reading between windows: RSS
    // moves in steps (V8 and malloc grow and give back pages), so one window alone can mislead.
    for (let i = 0; i < WARMUP; i++) await rotate();
    gc();
    const readings = [process.memoryUsage()];
    for (let w = 0; w < WINDOWS; w++) {
      for (let i = 0; i < N; i++) await rotate();
      gc();
      readings.push(process.memoryUsage());
    }
    const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(2)} MB`;
    const growth = (key: 'rss' | 'heapUsed' | 'heapTotal' | 'external'): number[] =>
      readings.slice(1).map((r, i) => r[key] - readings[i]![key]);
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(
      `\n## Memory of an X509Source over ${N} rotations (dev server in another process; ${WARMUP} warm-up, ${WINDOWS} windows, forced GC between)\n`,
    );
    console.log('| measure | start | end | median growth per window | total over all windows |');
    console.log('|---|---:|---:|---:|---:|');
    const first = readings[0]!;
    const last = readings[readings.length - 1]!;
    for (const [label, key] of [
      ['RSS', 'rss'],
      ['heap used', 'heapUsed'],
      ['heap reserved by V8 (heapTotal)', 'heapTotal'],
      ['external + array buffers', 'external'],
    ] as const) {
      console.log(
        `| ${label} | ${mb(first[key])} | ${mb(last[key])} | ${mb(median(growth(key)))} | ${mb(last[key] - first[key])} |`,
      );
    }
    console.log(`\nRSS growth per window: ${growth('rss').map(mb).join(', ')}`);
    console.log('goal ≤ 5 MB growth over 1,000 rotations');
  } finally {
    await source.close();
    await server.stop();
  }
}

console.log(`# Workload API benchmarks — Node ${process.version}, ${new Date().toISOString()}`);
// Memory first, in a process nothing else has touched yet.
if (want('memory')) await benchMemory();
if (want('rotation')) await benchRotation();
if (want('fetch')) await benchFetch();
