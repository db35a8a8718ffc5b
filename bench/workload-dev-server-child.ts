/**
 * Helper process of bench/workload.ts: runs a dev Workload API server and rotates its SVIDs when
 * told, so the memory benchmark measures the client process alone. Protocol on stdio: it prints
 * `address <unix://…>` once ready; each `rotate` line on stdin re-issues the SVIDs; `quit` ends it.
 */
import { createInterface } from 'node:readline';
import { DevWorkloadServer } from '../src/dev/index.js';

const server = await DevWorkloadServer.start({
  identities: ['spiffe://example.org/bench'],
  x509Rotation: false,
});
process.stdout.write(`address ${server.address}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'rotate') server.rotateX509Svids();
  else if (line === 'quit') break;
}
await server.close();
