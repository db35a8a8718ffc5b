/**
 * The three policies TEG core decides with, as prebuilt OPA wasm bundles committed next to this
 * file (`policies/*.tar.gz`): built by the real `opa build -t wasm` from the Rego in
 * `examples/policies/`, so the example runs on machines without OPA or Go.
 * `test/integration/e2e/example-policies.test.ts` rebuilds them with the real `opa` and fails
 * unless the result is byte-identical (`UPDATE_EXAMPLE_POLICIES=1` rewrites them).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IdentityMetrics } from '../../src/observability/index.js';
import { PolicyEngine } from '../../src/policy/index.js';

/** How one bundle is built: `opa build -t wasm -e <entrypoints> -r <revision>` over `<dir>/*`. */
export interface PolicyBuild {
  /** Engine name, metrics label and file name (`policies/<name>.tar.gz`). */
  readonly name: 'service-graph' | 'agent-self-access' | 'rate-tiers';
  /** Folder under `examples/policies/`. */
  readonly dir: string;
  /** The Rego file in it (with `data.json` beside it). */
  readonly rego: string;
  /** Entrypoints compiled in. */
  readonly entrypoints: readonly string[];
  /** Where the data document keeps the trust domain (patched to the running trust domain). */
  readonly trustDomainPath: readonly string[];
}

/** The three bundles. */
export const POLICY_BUILDS: readonly PolicyBuild[] = [
  {
    name: 'service-graph',
    dir: 'service-graph',
    rego: 'service_graph.rego',
    entrypoints: [
      'tachikoma/service_graph/allow',
      'tachikoma/service_graph/reason',
      'tachikoma/service_graph/decision',
    ],
    trustDomainPath: ['service_graph', 'trust_domain'],
  },
  {
    name: 'agent-self-access',
    dir: 'agent-self-access',
    rego: 'agent_self_access.rego',
    entrypoints: [
      'tachikoma/agent_self_access/allow',
      'tachikoma/agent_self_access/reason',
      'tachikoma/agent_self_access/decision',
    ],
    trustDomainPath: ['agent_self_access', 'trust_domain'],
  },
  {
    name: 'rate-tiers',
    dir: 'rate-tiers',
    rego: 'rate_tiers.rego',
    entrypoints: ['tachikoma/rate_limit/limit', 'tachikoma/rate_limit/tier'],
    trustDomainPath: ['rate_limit', 'trust_domain'],
  },
];

/**
 * The repository root: the nearest folder above this file with the SDK's package.json (this file
 * also runs compiled, from `node_modules/.cache/tachikoma-demo/`).
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === '@tachikoma/identity')
          return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the @tachikoma/identity checkout above the example');
    dir = up;
  }
}

/** Path of a committed bundle. */
export function bundlePath(name: PolicyBuild['name']): string {
  return join(repoRoot(), 'examples', 'tachikoma-agent', 'policies', `${name}.tar.gz`);
}

/** The three engines, by policy. */
export interface ExampleEngines {
  readonly serviceGraph: PolicyEngine;
  readonly agentSelfAccess: PolicyEngine;
  readonly rateTiers: PolicyEngine;
  /** Closes all three. */
  close(): Promise<void>;
}

/**
 * Loads the three bundles, points their data at `trustDomain`, and reports every evaluation to
 * `metrics` (`identity_policy_evaluation_duration_seconds{policy,decision}`).
 */
export async function loadPolicyEngines(
  trustDomain: string,
  metrics?: IdentityMetrics,
): Promise<ExampleEngines> {
  const load = async (b: PolicyBuild): Promise<PolicyEngine> => {
    const engine = await PolicyEngine.fromBundleFile(bundlePath(b.name), {
      name: b.name,
      ...(metrics ? { metrics: metrics.policyHook() } : {}),
    });
    engine.patchData([...b.trustDomainPath], trustDomain);
    return engine;
  };
  const [serviceGraph, agentSelfAccess, rateTiers] = await Promise.all(POLICY_BUILDS.map(load));
  return {
    serviceGraph: serviceGraph!,
    agentSelfAccess: agentSelfAccess!,
    rateTiers: rateTiers!,
    async close() {
      await Promise.all([serviceGraph?.close(), agentSelfAccess?.close(), rateTiers?.close()]);
    },
  };
}
