// The example's committed policy bundles (examples/tachikoma-agent/policies/*.tar.gz) are what the
// real `opa build -t wasm` makes from examples/policies today: rebuilt here and compared byte for
// byte (opa's output is deterministic: fixed tar times, no absolute paths when run from
// examples/policies). UPDATE_EXAMPLE_POLICIES=1 rewrites them instead.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundlePath, POLICY_BUILDS, type PolicyBuild } from '../../../examples/tachikoma-agent/policies.js';
import { capabilitiesPath, PolicyEngine } from '../../../src/policy/index.js';
import { opaPath } from '../../rig/index.js';

const root = join(import.meta.dirname, '..', '..', '..');
const policiesDir = join(root, 'examples', 'policies');

/** The revision: the policy's name and a digest of its Rego and data, so a stale bundle shows. */
function revisionOf(b: PolicyBuild): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(policiesDir, b.dir, b.rego)));
  h.update('\0');
  h.update(readFileSync(join(policiesDir, b.dir, 'data.json')));
  return `${b.name}@${h.digest('hex').slice(0, 12)}`;
}

function build(b: PolicyBuild): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-example-policy-'));
  const out = join(dir, 'bundle.tar.gz');
  const args = ['build', '-t', 'wasm', '--capabilities', capabilitiesPath(), '-r', revisionOf(b), '-o', out];
  for (const e of b.entrypoints) args.push('-e', e);
  // Relative inputs from examples/policies: the bundle then names `/<dir>/<file>.rego`, not a path
  // of this machine.
  args.push(`${b.dir}/${b.rego}`, `${b.dir}/data.json`);
  return new Promise((resolve, reject) => {
    execFile(opaPath(), args, { cwd: policiesDir, timeout: 60_000 }, (err, _stdout, stderr) => {
      try {
        if (err) reject(new Error(`opa build ${b.name} failed: ${stderr || err.message}`));
        else resolve(new Uint8Array(readFileSync(out)));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('examples/tachikoma-agent/policies', () => {
  it.each(POLICY_BUILDS.map((b) => [b.name, b] as const))(
    '%s.tar.gz is byte-identical to a fresh opa build',
    async (_name, b) => {
      const fresh = await build(b);
      const path = bundlePath(b.name);
      if (process.env['UPDATE_EXAMPLE_POLICIES'] === '1') writeFileSync(path, fresh);
      const committed = new Uint8Array(readFileSync(path));
      expect(createHash('sha256').update(committed).digest('hex')).toBe(
        createHash('sha256').update(fresh).digest('hex'),
      );
      // And it loads: the entrypoints and the revision are the ones built.
      await using engine = await PolicyEngine.fromBundle(committed, { name: b.name });
      expect([...engine.entrypoints].sort()).toEqual([...b.entrypoints].sort());
      expect(engine.revision).toBe(revisionOf(b));
    },
  );
});
