/** Shared helpers of the policy integration tests: example policies and compiling with our capabilities. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { capabilitiesPath } from '../../../src/policy/index.js';
import { type CompileOptions, compileRego, type RegoFiles } from '../../rig/index.js';

export const repoRoot: string = resolve(import.meta.dirname, '../../..');

/** An example policy of examples/policies: its Rego file paths and data document. */
export interface ExamplePolicy {
  readonly files: readonly string[];
  readonly data: Record<string, unknown>;
}

/** Loads examples/policies/<dir>. */
export function examplePolicy(dir: string, regoFile: string): ExamplePolicy {
  const base = join(repoRoot, 'examples', 'policies', dir);
  return {
    files: [join(base, regoFile)],
    data: JSON.parse(readFileSync(join(base, 'data.json'), 'utf8')) as Record<string, unknown>,
  };
}

export const serviceGraph: ExamplePolicy = examplePolicy('service-graph', 'service_graph.rego');
export const agentSelfAccess: ExamplePolicy = examplePolicy('agent-self-access', 'agent_self_access.rego');
export const rateTiers: ExamplePolicy = examplePolicy('rate-tiers', 'rate_tiers.rego');

/** Compiles with the real `opa build -t wasm` and the shipped capabilities.json. */
export function compileWithCapabilities(
  files: RegoFiles,
  entrypoints: readonly string[],
  opts: CompileOptions = {},
): Promise<Uint8Array> {
  return compileRego(files, entrypoints, { capabilities: capabilitiesPath(), ...opts });
}
