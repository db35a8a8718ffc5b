// A child process for integration tests: runs the SDK's WorkloadAPIClient as whatever uid it was
// spawned with, and prints one JSON line with what happened.
//
//   node --import ./register-ts.mjs workload-child.ts fetch <address>
//       one fetchX509Context: {"ok":true,"uid":…,"spiffeIds":[…]} or {"ok":false,"code":…,"grpcCode":…}
//   node --import ./register-ts.mjs workload-child.ts watch-and-close <address>
//       opens a watch and a source, waits for the first update, closes both, and returns;
//       the parent asserts that the process then exits by itself (nothing keeps it alive).
import { isIdentityError } from '../../../../src/errors/index.js';
import { WorkloadAPIClient, X509Source } from '../../../../src/workload/index.js';

const [mode, address] = process.argv.slice(2);
const uid = process.getuid?.();

function print(o: object): void {
  process.stdout.write(`${JSON.stringify({ uid, ...o })}\n`);
}

if (mode === 'fetch') {
  const client = new WorkloadAPIClient({ address, timeoutMs: 10_000 });
  try {
    const ctx = await client.fetchX509Context();
    print({ ok: true, spiffeIds: ctx.svids.map((s) => s.spiffeId.toString()) });
  } catch (err) {
    const cause = (err as { cause?: { code?: number } }).cause;
    print({
      ok: false,
      code: isIdentityError(err) ? err.code : String(err),
      grpcCode: cause?.code,
      message: String((err as Error).message),
    });
  } finally {
    await client.close();
  }
} else if (mode === 'watch-and-close') {
  const client = new WorkloadAPIClient({ address });
  const watch = client.watchX509Context();
  for await (const ctx of watch) {
    print({ watched: ctx.svids.map((s) => s.spiffeId.toString()) });
    break;
  }
  const source = await X509Source.create({ address, initialSyncTimeoutMs: 20_000 });
  source.getX509Svid();
  await source.close();
  await client.close();
  print({ closed: true });
} else {
  print({ ok: false, code: `unknown mode ${mode}` });
}
