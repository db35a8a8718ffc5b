/**
 * The go-spiffe v2.9.0 Workload API client (test/interop/go-spiffe), built on demand into the
 * tools cache by build-interop.sh and run by interop tests and the fetch benchmark.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { run } from '../rig/index.js';

const script = fileURLToPath(new URL('./build-interop.sh', import.meta.url));
let built: Promise<string> | undefined;

/** Builds the program when missing (a few seconds with a warm Go cache) and returns its path. */
export function goSpiffeClient(): Promise<string> {
  built ??= new Promise<string>((resolve, reject) => {
    execFile('bash', [script], { timeout: 600_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`build-interop.sh failed: ${err.message}\n${stderr}`));
      else resolve(stdout.trim().split('\n').pop() ?? '');
    });
  });
  return built;
}

/** One SVID as the Go program reports it. */
export interface GoSvidFacts {
  spiffeId: string;
  hint: string;
  serial: string;
  notAfter: string;
  chainLength: number;
  hasKey: boolean;
  issuerSubject: string;
}

/** Runs `interop fetch-x509 <address>`: go-spiffe's FetchX509Context, which parses and checks every SVID. */
export async function goSpiffeFetchX509(
  address: string,
): Promise<{ svids: GoSvidFacts[]; trustDomains: string[] }> {
  const bin = await goSpiffeClient();
  const r = await run(bin, ['fetch-x509', address], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`go-spiffe FetchX509Context failed (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as { svids: GoSvidFacts[]; trustDomains: string[] };
}

/** Runs `interop bench-x509 <address> <n>` and returns the latency of each call in microseconds. */
export async function goSpiffeBenchX509(address: string, n: number): Promise<number[]> {
  const bin = await goSpiffeClient();
  const r = await run(bin, ['bench-x509', address, String(n)], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`go-spiffe bench failed (exit ${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { micros: number[] }).micros;
}
