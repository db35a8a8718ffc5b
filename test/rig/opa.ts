/**
 * The real OPA CLI for tests: compile Rego to a wasm bundle with `opa build -t wasm`, and
 * evaluate the same Rego with `opa eval` for differential tests.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run, runOk } from './proc.js';
import { opaPath } from './tools.js';

/** Rego sources by file name (e.g. `{ 'authz.rego': 'package authz ...' }`), or paths on disk. */
export type RegoFiles = Readonly<Record<string, string>> | readonly string[];

export interface CompileOptions {
  /** `data.json` contents to put in the bundle. */
  data?: unknown;
  /** Manifest revision. */
  revision?: string;
  /** Path of a capabilities.json to restrict builtins. */
  capabilities?: string;
  /** Optimization level (`-O`). */
  optimize?: 0 | 1 | 2;
}

function materialize(files: RegoFiles, dir: string): string[] {
  if (Array.isArray(files)) return [...(files as readonly string[])];
  const paths: string[] = [];
  for (const [name, text] of Object.entries(files as Record<string, string>)) {
    const p = join(dir, 'src', name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    paths.push(p);
  }
  return paths;
}

/**
 * Compiles Rego with the real `opa build -t wasm` and returns the bundle (.tar.gz) bytes.
 * Entry points are slash-separated (`authz/allow`). Throws with opa's own message on failure.
 */
export async function compileRego(
  files: RegoFiles,
  entrypoints: readonly string[],
  opts: CompileOptions = {},
): Promise<Uint8Array> {
  const opa = opaPath();
  const dir = mkdtempSync(join(tmpdir(), 'tk-opa-'));
  try {
    const inputs = materialize(files, dir);
    if (opts.data !== undefined) {
      const dataDir = join(dir, 'data');
      mkdirSync(dataDir);
      writeFileSync(join(dataDir, 'data.json'), JSON.stringify(opts.data));
      inputs.push(join(dataDir, 'data.json'));
    }
    const out = join(dir, 'bundle.tar.gz');
    const args = ['build', '-t', 'wasm', '-o', out];
    for (const e of entrypoints) args.push('-e', e);
    if (opts.revision !== undefined) args.push('-r', opts.revision);
    if (opts.capabilities !== undefined) args.push('--capabilities', opts.capabilities);
    if (opts.optimize !== undefined) args.push('-O', String(opts.optimize));
    await runOk(opa, [...args, ...inputs], { timeoutMs: 60_000 });
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Extracts one member (e.g. `/policy.wasm`) of a bundle with GNU tar; test-only helper. */
export async function extractFromBundle(bundle: Uint8Array, member: string): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-opa-x-'));
  try {
    writeFileSync(join(dir, 'b.tar.gz'), bundle);
    await runOk('tar', ['-xzf', join(dir, 'b.tar.gz'), '-C', dir, member]);
    return new Uint8Array(readFileSync(join(dir, member)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Evaluates `query` (e.g. `data.authz.allow`) with the real `opa eval`. Returns the value, or
 * `undefined` when the query is undefined for that input.
 */
export async function opaEval(
  files: RegoFiles,
  query: string,
  opts: { input?: unknown; data?: unknown } = {},
): Promise<unknown> {
  const results = await opaEvalMany(
    files,
    query,
    opts.input === undefined ? [undefined] : [opts.input],
    opts,
  );
  return results[0];
}

/**
 * Evaluates `query` once per input with the real `opa eval`, one process per input
 * (run with bounded parallelism). Returns the values in input order.
 */
export async function opaEvalMany(
  files: RegoFiles,
  query: string,
  inputs: readonly unknown[],
  opts: { data?: unknown } = {},
): Promise<unknown[]> {
  const opa = opaPath();
  const dir = mkdtempSync(join(tmpdir(), 'tk-opa-e-'));
  try {
    const sources = materialize(files, dir);
    const base = ['eval', '-f', 'json'];
    for (const s of sources) base.push('-d', s);
    if (opts.data !== undefined) {
      writeFileSync(join(dir, 'data.json'), JSON.stringify(opts.data));
      base.push('-d', join(dir, 'data.json'));
    }
    const results: unknown[] = new Array(inputs.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < inputs.length) {
        const i = next++;
        const args = [...base];
        if (inputs[i] !== undefined) {
          const p = join(dir, `input-${i}.json`);
          writeFileSync(p, JSON.stringify(inputs[i]));
          args.push('-i', p);
        }
        args.push(query);
        const r = await run(opa, args, { timeoutMs: 30_000 });
        if (r.code !== 0)
          throw new Error(`opa eval ${query} failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
        const parsed = JSON.parse(r.stdout) as { result?: Array<{ expressions: Array<{ value: unknown }> }> };
        results[i] = parsed.result?.[0]?.expressions[0]?.value;
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
