// `npm run demo` itself (examples/tachikoma-agent/run-demo.mjs: build, then run): on the embedded
// dev Workload API server (the default) and against a real SPIRE agent (SPIFFE_ENDPOINT_SOCKET).
// Its exit code and the key lines of its transcript are checked.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleIds, requiredIdentities } from '../../../examples/tachikoma-agent/identities.js';
import { useSpire } from '../../rig/index.js';

const root = join(import.meta.dirname, '..', '..', '..');

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
}

function runDemo(env: Record<string, string>, timeoutMs = 100_000): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(root, 'examples', 'tachikoma-agent', 'run-demo.mjs')], {
      cwd: root,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the demo did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, wallMs: Date.now() - started });
    });
  });
}

/** The lines every successful run prints, whatever the Workload API. */
function expectCommonLines(out: string, td: string): void {
  const ids = exampleIds(td);
  for (const line of [
    `✓ registry-backend\n      ${ids.registry}`,
    `✓ teg-core\n      ${ids.tegCore}`,
    `✓ agent (alice@example.com)\n      ${ids.agent}`,
    '✓ token issued for the agent, audience teg-core',
    `sub ${ids.agent}`,
    `teg-core: mTLS caller ${ids.registry}`,
    `on behalf of ${ids.agent} (JWT-SVID)`,
    '✓ every X509-SVID replaced while calls are in flight: zero failed calls',
    'error_description="jwtsvid-audience-mismatch"',
    '✓ federation-hub calls teg-core (valid agent token) → 403 from the service graph',
    '"reason":"federation-hub may not call teg-core"',
    '"reason":"an agent may only access its own record, agents/<its id>"',
    '✓ healthy',
    'spire_agent     pass',
    'identity_auth_attempts_total{service="teg-core",result="success"}',
    'identity_auth_attempts_total{service="teg-core",result="failure"}',
    'identity_svid_rotations_total{workload_type="service"}',
    'identity_policy_evaluation_duration_seconds_count{policy="service-graph",decision="deny"} 1',
    `identity_svid_expiry_seconds{spiffe_id="${ids.tegCore}"}`,
  ]) {
    expect(out, `transcript line ${JSON.stringify(line)}`).toContain(line);
  }
  expect(out).not.toContain('✗');
  expect(out).toMatch(/ 0 failed(?:, \d+ calls| |,|$)/m);
}

describe('npm run demo', () => {
  const spire = useSpire({ trustDomain: 'demo-spire.test', name: 'e2e-demo' });

  it('on the embedded dev Workload API server: exit code 0 and the narrated transcript', async () => {
    const run = await runDemo({});
    expect(run.stderr).toBe('');
    expect(run.code, run.stdout).toBe(0);
    const out = run.stdout;
    expect(out).toContain('✓ embedded dev Workload API server (no SPIRE needed)');
    expectCommonLines(out, 'tachikoma.internal');
    expect(out).toContain('error_description="jwtsvid-expired"');
    expect(out).toMatch(/\d+ calls, \d+ after the rotation, 0 failed/);
    expect(out).toMatch(/✓ done in \d+\.\d s: 17 passed, 0 failed\n$/);
    process.stdout.write(`demo on the dev server: ${run.wallMs} ms wall (build included)\n`);
  });

  it('with SPIFFE_ENDPOINT_SOCKET: runs against that SPIRE agent (entries as the docs list them)', async () => {
    const rig = spire();
    const ids = exampleIds(rig.trustDomain);
    // x509SVIDTTL 20: SPIRE rotates about every 5 s, so the demo sees a rotation in time.
    for (const { spiffeId, hint } of requiredIdentities(ids))
      await rig.createEntry({ spiffeId, hint, x509SvidTtl: 20 });
    for (const { spiffeId } of requiredIdentities(ids)) await rig.waitForX509Svid(spiffeId);
    const run = await runDemo({ SPIFFE_ENDPOINT_SOCKET: rig.workloadAddress });
    expect(run.stderr).toBe('');
    expect(run.code, run.stdout).toBe(0);
    const out = run.stdout;
    expect(out).toContain(`✓ SPIRE agent at ${rig.workloadAddress}`);
    expect(out).toContain('attested by SPIRE');
    expectCommonLines(out, rig.trustDomain);
    // Only the dev server can mint an already-expiring token: that one step is skipped.
    expect(out).toContain('– expired JWT-SVID → 401 invalid_token: skipped');
    expect(out).toMatch(/✓ done in \d+\.\d s: 16 passed, 0 failed, 1 skipped\n$/);
    process.stdout.write(`demo on SPIRE: ${run.wallMs} ms wall\n`);
  });
});
