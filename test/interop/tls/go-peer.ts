/**
 * The go-spiffe v2.9.0 mTLS peer (test/interop/tls/go), built on demand by build.sh into the
 * tools cache, run as a server or a one-shot client by the interop tests.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { run } from '../../rig/index.js';

const script = fileURLToPath(new URL('./build.sh', import.meta.url));
let built: Promise<string> | undefined;

/** Builds the program when missing and returns its path. */
export function goTlsPeer(): Promise<string> {
  built ??= new Promise<string>((resolve, reject) => {
    execFile('bash', [script], { timeout: 600_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`interop/tls/build.sh failed: ${err.message}\n${stderr}`));
      else resolve(stdout.trim().split('\n').pop() ?? '');
    });
  });
  return built;
}

/** Runs one GET with go-spiffe's MTLSClientConfig. */
export async function goClientGet(
  workloadAddress: string,
  hint: string,
  expectedServerId: string,
  url: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(await goTlsPeer(), ['client', workloadAddress, hint, expectedServerId, url], {
    timeoutMs: 60_000,
  });
}

/** A running go-spiffe HTTPS server. */
export interface GoServer {
  readonly port: number;
  /** Every line the server printed (LISTENING, REFUSED ...). */
  readonly lines: string[];
  stop(): Promise<void>;
}

/** Starts go-spiffe's MTLSServerConfig server and waits until it listens. */
export async function goServer(
  workloadAddress: string,
  hint: string,
  allowedClientId: string,
): Promise<GoServer> {
  const bin = await goTlsPeer();
  const child: ChildProcess = spawn(bin, ['server', workloadAddress, hint, allowedClientId], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  let buffer = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`go server did not start: ${stderr}`)), 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      buffer += d.toString();
      let i = buffer.indexOf('\n');
      while (i >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        lines.push(line);
        const m = /^LISTENING (\d+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
        i = buffer.indexOf('\n');
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`go server exited with ${code}: ${stderr}`));
    });
  });
  return {
    port,
    lines,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
