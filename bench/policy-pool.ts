/**
 * Does a pool of worker_threads raise policy decisions per second on this machine?
 *
 * Compares one in-process PolicyEngine with pools of 1 and 2 workers (each with its own engine),
 * the main thread dispatching either one decision per message (how a request handler would use
 * it) or batches of 64 decisions per message.
 *
 * Run: npm run bench:policy-pool   (BENCH_MS=<ms per row>, default 4000)
 */
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PolicyEngine } from '../src/policy/index.js';
import { compileRego } from '../test/rig/opa.js';
import {
  CAPABILITIES,
  DATA,
  ENTRYPOINT,
  makeInputs,
  REGO_FILE,
  row,
  type Stats,
  timeAsync,
  timeSync,
} from './policy-common.js';

const MS = Number(process.env['BENCH_MS'] ?? 4000);
const inputs = makeInputs(1000);

interface Reply {
  id?: number;
  results?: unknown[];
  ready?: boolean;
}

class Pool {
  readonly #workers: Worker[];
  readonly #pending = new Map<number, (r: unknown[]) => void>();
  #next = 0;
  #rr = 0;

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    for (const w of workers) {
      w.on('message', (m: Reply) => {
        if (m.id === undefined) return;
        const done = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        done?.(m.results ?? []);
      });
    }
  }

  static async start(size: number, bundle: Uint8Array): Promise<Pool> {
    const workers = await Promise.all(
      Array.from(
        { length: size },
        () =>
          new Promise<Worker>((resolve, reject) => {
            const w = new Worker(new URL('./policy-pool-worker.js', import.meta.url), {
              workerData: { bundle },
            });
            w.once('message', () => resolve(w));
            w.once('error', reject);
          }),
      ),
    );
    return new Pool(workers);
  }

  evaluate(batch: readonly unknown[]): Promise<unknown[]> {
    const id = this.#next++;
    const w = this.#workers[this.#rr++ % this.#workers.length] as Worker;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      w.postMessage({ id, entrypoint: ENTRYPOINT, inputs: batch });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

function perDecision(s: Stats, batch: number): Stats {
  return {
    count: s.count * batch,
    perSecond: s.perSecond * batch,
    p50us: s.p50us,
    p99us: s.p99us,
    cpuUs: s.cpuUs === undefined ? undefined : s.cpuUs / batch,
  };
}

async function main(): Promise<void> {
  const bundle = await compileRego([REGO_FILE], [ENTRYPOINT], { capabilities: CAPABILITIES, data: DATA });
  const engine = await PolicyEngine.fromBundle(bundle);
  const rows: [string, Stats][] = [];
  rows.push([
    'in-process, main thread',
    timeSync((i) => void engine.evaluate(ENTRYPOINT, inputs[i % inputs.length]), MS),
  ]);
  for (const size of [1, 2]) {
    const pool = await Pool.start(size, bundle);
    try {
      rows.push([
        `pool of ${size}, 1 decision/message, 64 in flight`,
        await timeAsync(
          async (i) => {
            await pool.evaluate([inputs[i % inputs.length]]);
          },
          MS,
          64,
        ),
      ]);
      const batches = Array.from({ length: 16 }, (_, b) => inputs.slice(b * 64, b * 64 + 64));
      rows.push([
        `pool of ${size}, 64 decisions/message, 4 in flight (latency per batch)`,
        perDecision(
          await timeAsync(
            async (i) => {
              await pool.evaluate(batches[i % batches.length] as unknown[]);
            },
            MS,
            4,
          ),
          64,
        ),
      ]);
    } finally {
      await pool.close();
    }
  }
  await engine.close();
  console.log(
    `\nWorker pool vs in-process, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${MS} ms per row\n`,
  );
  console.log('| setup | decisions/s | p50 µs | p99 µs | CPU µs/decision (all threads) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [name, s] of rows) console.log(row(name, s));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
