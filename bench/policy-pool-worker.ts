/** Worker of the pool benchmark: one PolicyEngine per thread, answering evaluation messages. */
import { parentPort, workerData } from 'node:worker_threads';
import { PolicyEngine } from '../src/policy/index.js';

interface Job {
  readonly id: number;
  readonly entrypoint: string;
  readonly inputs: readonly unknown[];
}

async function serve(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('policy-pool-worker must run in a worker thread');
  const engine = await PolicyEngine.fromBundle((workerData as { bundle: Uint8Array }).bundle);
  port.on('message', (job: Job) => {
    const results = job.inputs.map((input) => engine.evaluate(job.entrypoint, input).result);
    port.postMessage({ id: job.id, results });
  });
  port.postMessage({ ready: true });
}

void serve();
