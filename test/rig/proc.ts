/**
 * Child-process plumbing for the rig: every process logs to a file, every wait has a timeout,
 * and every failure names the binary and the last lines of its log.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed test worker must not leave SPIRE daemons behind.
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/** The last `n` lines of a log file (empty string when unreadable). */
export function tail(path: string, n = 25): string {
  try {
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    return lines.slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** A long-running child whose stdout and stderr go to `logPath`. */
export class Daemon {
  readonly name: string;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;

  readonly binary: string;
  readonly args: readonly string[];

  constructor(binary: string, args: readonly string[], logPath: string) {
    this.binary = binary;
    this.args = args;
    this.name = basename(binary);
    this.logPath = logPath;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    installExitHook();
    const fd = openSync(this.logPath, 'a');
    const child = spawn(this.binary, this.args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        live.delete(child);
        resolve(code);
      });
      child.once('error', () => {
        live.delete(child);
        resolve(-1);
      });
    });
    this.child = child;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited || !this.running) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Rejects if the process exits; used to fail a wait early with the log tail. */
  describeExit(): string | undefined {
    const child = this.child;
    if (!child || this.running) return undefined;
    return `${this.name} exited (code ${child.exitCode}, signal ${child.signalCode}); last log lines:\n${tail(this.logPath)}`;
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command to completion with a timeout; never throws for a non-zero exit. */
export function run(
  binary: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      binary,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error(`${binary}: not found`));
          return;
        }
        if (err?.killed) {
          reject(
            new Error(
              `${basename(binary)} ${args.join(' ')}: timed out after ${opts.timeoutMs ?? 30_000} ms\n${stderr}`,
            ),
          );
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command and throws, naming the binary and its output, unless it exits 0. */
export async function runOk(
  binary: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<string> {
  const r = await run(binary, args, opts);
  if (r.code !== 0) {
    throw new Error(`${basename(binary)} ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/**
 * Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs`
 * with `what`, the last probe error and the log tail of any daemon that died meanwhile.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs?: number; intervalMs?: number; daemons?: readonly Daemon[] } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    for (const d of opts.daemons ?? []) {
      const exit = d.describeExit();
      if (exit) throw new Error(`waiting for ${what}: ${exit}`);
    }
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const logs = (opts.daemons ?? [])
        .map((d) => `--- ${d.name} (${d.logPath}) ---\n${tail(d.logPath)}`)
        .join('\n');
      const last = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs ?? 30_000} ms waiting for ${what}${last}\n${logs}`);
    }
    await delay(opts.intervalMs ?? 200);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
