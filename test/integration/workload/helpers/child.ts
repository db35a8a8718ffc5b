/** Runs helpers/workload-child.ts in a separate node process, optionally as another uid. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const register = fileURLToPath(new URL('./register-ts.mjs', import.meta.url));
const script = fileURLToPath(new URL('./workload-child.ts', import.meta.url));

/** What a child printed and how it ended. */
export interface ChildResult {
  /** Each stdout line, parsed as JSON. */
  lines: Record<string, unknown>[];
  stderr: string;
  code: number | null;
  /** Milliseconds from the child's last output line to its exit. */
  exitAfterLastLineMs: number;
}

/**
 * Runs `workload-child.ts <mode> <address>` and resolves when the process exits; rejects if it is
 * still running after `timeoutMs` (and kills it).
 */
export function runWorkloadChild(
  mode: 'fetch' | 'watch-and-close',
  address: string,
  opts: { uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', register, script, mode, address], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.gid ?? opts.uid }),
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/tmp' },
    });
    let out = '';
    let err = '';
    let lastLineAt = Date.now();
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      lastLineAt = Date.now();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `child ${mode} still running after ${opts.timeoutMs ?? 30_000} ms; stdout: ${out}; stderr: ${err}`,
        ),
      );
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      const lines = out
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return { unparsed: l };
          }
        });
      resolve({ lines, stderr: err, code, exitAfterLastLineMs: Date.now() - lastLineAt });
    });
  });
}
