/**
 * Policy evaluation, side by side, in one run: our PolicyEngine, the raw
 * @open-policy-agent/opa-wasm runtime, and an OPA server (`opa run --server` on loopback, keep-alive
 * HTTP), on the same policy (examples/policies/service-graph), data and inputs.
 *
 * Run: npm run bench:policy   (BENCH_MS=<ms per contender>, default 4000)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { cpus } from 'node:os';
import * as opaWasm from '@open-policy-agent/opa-wasm';
import { PolicyEngine } from '../src/policy/index.js';
import { compileRego, extractFromBundle } from '../test/rig/opa.js';
import { freePort } from '../test/rig/proc.js';
import { OPA_VERSION, opaPath } from '../test/rig/tools.js';
import {
  CAPABILITIES,
  DATA,
  DATA_FILE,
  ENTRYPOINT,
  makeInputs,
  REGO_FILE,
  row,
  type Stats,
  timeAsync,
  timeSync,
} from './policy-common.js';

const MS = Number(process.env['BENCH_MS'] ?? 4000);
/** In-process contenders alternate in short paired rounds, so that load from other processes hits both alike. */
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 16);
const ROUND_MS = Number(process.env['BENCH_ROUND_MS'] ?? 500);
const inputs = makeInputs(1000);

function post(agent: Agent, port: number, path: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function startOpaServer(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    opaPath(),
    ['run', '--server', '--addr', `127.0.0.1:${port}`, '--log-level', 'error', REGO_FILE, DATA_FILE],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const agent = new Agent({ keepAlive: false });
      await post(agent, port, '/v1/data/tachikoma/service_graph/allow', '{"input":{}}');
      return { port, child };
    } catch {
      if (Date.now() > deadline) throw new Error('opa server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function median(rounds: Stats[]): Stats {
  const sorted = [...rounds].sort((a, b) => a.perSecond - b.perSecond);
  return sorted[Math.floor(sorted.length / 2)] as Stats;
}

async function main(): Promise<void> {
  const bundle = await compileRego([REGO_FILE], [ENTRYPOINT], { capabilities: CAPABILITIES, data: DATA });
  const wasm = await extractFromBundle(bundle, '/policy.wasm');

  const engine = await PolicyEngine.fromBundle(bundle);
  const raw = await opaWasm.loadPolicy(wasm, { initial: 16, maximum: 4096 }, {});
  raw.setData(DATA);

  // The three must agree before their speed means anything.
  const { port, child } = await startOpaServer();
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let allowed = 0;
  for (const input of inputs.slice(0, 36)) {
    const ours = engine.evaluate(ENTRYPOINT, input).result;
    const theirs = (raw.evaluate(input, ENTRYPOINT) as { result: unknown }[])[0]?.result;
    const server = (
      JSON.parse(
        await post(agent, port, '/v1/data/tachikoma/service_graph/allow', JSON.stringify({ input })),
      ) as { result: unknown }
    ).result;
    if (ours !== theirs || ours !== server) throw new Error(`decisions differ for ${JSON.stringify(input)}`);
    if (ours === true) allowed++;
  }

  // In-process contenders alternate over paired rounds (the machine is shared); each row
  // reports the median round by throughput, and the ratio is the median of the paired ratios.
  const oursRounds: Stats[] = [];
  const rawRounds: Stats[] = [];
  const results: [string, Stats][] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      oursRounds.push(
        timeSync((i) => {
          engine.evaluate(ENTRYPOINT, inputs[i % inputs.length]);
        }, ROUND_MS),
      );
      rawRounds.push(
        timeSync((i) => {
          raw.evaluate(inputs[i % inputs.length], ENTRYPOINT);
        }, ROUND_MS),
      );
    }
    results.push(['ours: PolicyEngine.evaluate', median(oursRounds)]);
    results.push(['raw opa-wasm: LoadedPolicy.evaluate', median(rawRounds)]);
    const oneSocket = new Agent({ keepAlive: true, maxSockets: 1 });
    results.push([
      'OPA server, 1 keep-alive connection',
      await timeAsync(
        async (i) => {
          await post(
            oneSocket,
            port,
            '/v1/data/tachikoma/service_graph/allow',
            JSON.stringify({ input: inputs[i % inputs.length] }),
          );
        },
        MS,
        1,
      ),
    ]);
    results.push([
      'OPA server, 16 in flight (16 connections)',
      await timeAsync(
        async (i) => {
          await post(
            agent,
            port,
            '/v1/data/tachikoma/service_graph/allow',
            JSON.stringify({ input: inputs[i % inputs.length] }),
          );
        },
        MS,
        16,
      ),
    ]);
  } finally {
    child.kill('SIGTERM');
    await engine.close();
  }

  const [oursBest, rawWasm, server1] = results.map(([, s]) => s) as [Stats, Stats, Stats];
  console.log(
    `\nPolicy: examples/policies/service-graph (${ENTRYPOINT}), ${inputs.length} inputs (${allowed}/36 of the first allowed)`,
  );
  console.log(
    `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, opa ${OPA_VERSION}, server rows ${MS} ms, in-process rows: median of ${ROUNDS} alternating rounds of ${ROUND_MS} ms\n`,
  );
  console.log('| contender | decisions/s | p50 µs | p99 µs | CPU µs/decision (this process) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [name, s] of results) console.log(row(name, s));
  const ratios = oursRounds
    .map((o, i) => o.perSecond / (rawRounds[i] as Stats).perSecond)
    .sort((a, b) => a - b);
  const mid = ratios[Math.floor(ratios.length / 2)] ?? 0;
  console.log(
    `\nours / raw opa-wasm throughput: ${mid.toFixed(3)}× (median of ${ratios.length} paired rounds; range ${ratios[0]?.toFixed(2)}–${ratios[ratios.length - 1]?.toFixed(2)}; goal ≥ 0.95×)`,
  );
  const cpuRatios = oursRounds
    .map((o, i) => ((rawRounds[i] as Stats).cpuUs ?? 0) / (o.cpuUs ?? 1))
    .sort((a, b) => a - b);
  console.log(
    `ours / raw opa-wasm decisions per CPU-second: ${(cpuRatios[Math.floor(cpuRatios.length / 2)] ?? 0).toFixed(3)}× (median of paired rounds; less sensitive to other processes)`,
  );
  void rawWasm;
  console.log(
    `OPA server p50 / ours p50: ${(server1.p50us / oursBest.p50us).toFixed(1)}× lower latency in-process (goal ≥ 30×)`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
