// Hot reload of a watched bundle file: atomic replacement, Kubernetes-style symlink swaps, bad
// bundles keeping the previous policy, data writes surviving reloads, and close().
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityError } from '../../../src/errors/index.js';
import { PolicyEngine, type PolicyEngineEvents, type PolicyReloadEvent } from '../../../src/policy/index.js';
import { compileRego } from '../../rig/index.js';
import { compileWithCapabilities } from './helpers.js';

const rego = (user: string) => ({
  'w.rego': `package w\n\ndefault allow := false\n\nallow if input.user == "${user}"\n\nlimit := data.limits[input.user]\n`,
});

type R = { 'w/allow': boolean; 'w/limit': number };

let v1: Uint8Array;
let v2: Uint8Array;
let v3: Uint8Array;
let needsMissingBuiltin: Uint8Array;
let root: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'tk-policy-watch-'));
  [v1, v2, v3, needsMissingBuiltin] = await Promise.all([
    compileWithCapabilities(rego('alice'), ['w/allow', 'w/limit'], {
      revision: 'v1',
      data: { limits: { alice: 1 } },
    }),
    compileWithCapabilities(rego('bob'), ['w/allow', 'w/limit'], {
      revision: 'v2',
      data: { limits: { bob: 2 } },
    }),
    compileWithCapabilities(rego('carol'), ['w/allow', 'w/limit'], {
      revision: 'v3',
      data: { limits: { carol: 3 } },
    }),
    compileRego({ 'w.rego': 'package w\n\nallow := time.parse_rfc3339_ns(input.t) > 0\n' }, ['w/allow'], {
      revision: 'bad',
    }),
  ]);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

let seq = 0;
function freshDir(): string {
  const d = join(root, `case-${seq++}`);
  mkdirSync(d);
  return d;
}

/** Replaces `path` atomically (write a sibling, rename over), as deploy tools do. */
function replaceAtomically(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${seq++}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

/** Resolves with the next event of that name; rejects after `timeoutMs` (a failure bound, not a wait). */
function next<E extends keyof PolicyEngineEvents>(
  engine: PolicyEngine<R>,
  event: E,
  timeoutMs = 10_000,
): Promise<PolicyEngineEvents[E][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${timeoutMs} ms`)), timeoutMs);
    engine.once(event, ((arg: PolicyEngineEvents[E][0]) => {
      clearTimeout(timer);
      resolve(arg);
    }) as never);
  });
}

const watchOpts = { debounceMs: 30, pollIntervalMs: 0 };

describe('PolicyEngine.watch', () => {
  it('swaps in a bundle replaced by rename', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, v1);
    await using engine = await PolicyEngine.watch<R>(file, watchOpts);
    expect(engine.revision).toBe('v1');
    expect(engine.evaluate('w/allow', { user: 'alice' }).result).toBe(true);
    const reloaded = next(engine, 'reload');
    replaceAtomically(file, v2);
    const ev = (await reloaded) as PolicyReloadEvent;
    expect(ev).toMatchObject({ revision: 'v2', previousRevision: 'v1', entrypoints: ['w/allow', 'w/limit'] });
    expect(engine.revision).toBe('v2');
    expect(engine.evaluate('w/allow', { user: 'alice' }).result).toBe(false);
    expect(engine.evaluate('w/allow', { user: 'bob' }).result).toBe(true);
    expect(engine.evaluate('w/limit', { user: 'bob' }).result).toBe(2);
  });

  it('follows a Kubernetes-style ..data symlink swap', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, '..2026_01'));
    writeFileSync(join(dir, '..2026_01', 'bundle.tar.gz'), v1);
    symlinkSync('..2026_01', join(dir, '..data'));
    symlinkSync(join('..data', 'bundle.tar.gz'), join(dir, 'bundle.tar.gz'));
    await using engine = await PolicyEngine.watch<R>(join(dir, 'bundle.tar.gz'), watchOpts);
    expect(engine.revision).toBe('v1');
    const reloaded = next(engine, 'reload');
    mkdirSync(join(dir, '..2026_02'));
    writeFileSync(join(dir, '..2026_02', 'bundle.tar.gz'), v2);
    symlinkSync('..2026_02', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    expect(((await reloaded) as PolicyReloadEvent).revision).toBe('v2');
    expect(engine.evaluate('w/allow', { user: 'bob' }).result).toBe(true);
  });

  it('keeps the previous policy when the new bundle is bad, and reports why', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, v1);
    await using engine = await PolicyEngine.watch<R>(file, watchOpts);

    let failed = next(engine, 'error');
    replaceAtomically(file, new Uint8Array(Buffer.from('this is not a bundle')));
    let err = (await failed) as IdentityError;
    expect(err.code).toBe('policy-reload-failed');
    expect(err.details?.['code']).toBe('policy-bundle-not-gzip');
    expect(engine.revision).toBe('v1');
    expect(engine.evaluate('w/allow', { user: 'alice' }).result).toBe(true);

    failed = next(engine, 'error');
    replaceAtomically(file, needsMissingBuiltin);
    err = (await failed) as IdentityError;
    expect(err.details?.['code']).toBe('policy-builtin-unsupported');
    expect(err.message).toContain('time.parse_rfc3339_ns');
    expect(engine.revision).toBe('v1');

    const reloaded = next(engine, 'reload');
    replaceAtomically(file, v2);
    expect(((await reloaded) as PolicyReloadEvent).revision).toBe('v2');
  });

  it('re-applies application data writes on top of the new bundle data', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, v1);
    await using engine = await PolicyEngine.watch<R>(file, watchOpts);
    engine.patchData(['limits', 'zed'], 9);
    expect(engine.evaluate('w/limit', { user: 'zed' }).result).toBe(9);
    const reloaded = next(engine, 'reload');
    replaceAtomically(file, v2);
    await reloaded;
    expect(engine.evaluate('w/limit', { user: 'zed' }).result).toBe(9);
    expect(engine.evaluate('w/limit', { user: 'bob' }).result).toBe(2);
    expect(engine.evaluate('w/limit', { user: 'alice' }).defined).toBe(false);
  });

  it('coalesces a burst of replacements into one reload of the last bundle', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, v1);
    await using engine = await PolicyEngine.watch<R>(file, { debounceMs: 100, pollIntervalMs: 0 });
    const seen: (string | undefined)[] = [];
    engine.on('reload', (e) => seen.push(e.revision));
    const reloaded = next(engine, 'reload');
    replaceAtomically(file, v2);
    replaceAtomically(file, v3);
    expect(((await reloaded) as PolicyReloadEvent).revision).toBe('v3');
    expect(seen).toEqual(['v3']);
  });

  it('notices a change through the fallback poll', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, v1);
    await using engine = await PolicyEngine.watch<R>(file, { debounceMs: 10, pollIntervalMs: 50 });
    const reloaded = next(engine, 'reload');
    replaceAtomically(file, v2);
    expect(((await reloaded) as PolicyReloadEvent).revision).toBe('v2');
  });

  it('stops reloading after close', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, v1);
    const closed = await PolicyEngine.watch<R>(file, { debounceMs: 10, pollIntervalMs: 0 });
    await closed.close();
    // A second watcher with a longer debounce reloads after the closed one would have.
    await using witness = await PolicyEngine.watch<R>(file, { debounceMs: 300, pollIntervalMs: 0 });
    const reloaded = next(witness, 'reload');
    replaceAtomically(file, v2);
    await reloaded;
    // Had the closed engine reloaded, its policy in force would now be v2.
    expect(closed.revision).toBe('v1');
    expect(closed.closed).toBe(true);
  });

  it('rejects when the initial bundle is bad', async () => {
    const file = join(freshDir(), 'bundle.tar.gz');
    writeFileSync(file, Buffer.from('nope'));
    await expect(PolicyEngine.watch<R>(file, watchOpts)).rejects.toMatchObject({
      code: 'policy-bundle-not-gzip',
    });
  });
});
