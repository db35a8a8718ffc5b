// The foundation's policy proof: Rego compiled by the real `opa build -t wasm` loads in
// @open-policy-agent/opa-wasm and decides exactly as the real `opa eval` does.
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { describe, expect, it } from 'vitest';
import { compileRego, extractFromBundle, opaEvalMany } from '../../rig/index.js';

const rego = `package foundation.authz

default allow := false

allow if {
  input.method == "GET"
  startswith(input.caller, "spiffe://foundation.test/service/")
}

allow if {
  input.caller == "spiffe://foundation.test/service/admin"
}
`;

const inputs = [
  { method: 'GET', caller: 'spiffe://foundation.test/service/a' },
  { method: 'POST', caller: 'spiffe://foundation.test/service/a' },
  { method: 'POST', caller: 'spiffe://foundation.test/service/admin' },
  { method: 'GET', caller: 'spiffe://other.test/service/a' },
  { method: 'GET', caller: 'spiffe://foundation.test/agent/x' },
  { method: 'DELETE', caller: 'spiffe://foundation.test/service/admin' },
  { method: 'GET' },
  {},
];

describe('opa build -t wasm + opa-wasm vs opa eval', () => {
  it('decides like the real opa eval for every input', async () => {
    const files = { 'authz.rego': rego };
    const bundle = await compileRego(files, ['foundation/authz/allow']);
    const wasm = await extractFromBundle(bundle, '/policy.wasm');
    const policy = await loadPolicy(wasm);
    expect(Object.keys(policy.entrypoints)).toEqual(['foundation/authz/allow']);

    const ours = inputs.map(
      (input) => (policy.evaluate(input, 'foundation/authz/allow') as Array<{ result: unknown }>)[0]?.result,
    );
    const reference = await opaEvalMany(files, 'data.foundation.authz.allow', inputs);
    expect(ours).toEqual(reference);
    // Guard against a vacuous comparison: both outcomes occur.
    expect(new Set(reference)).toEqual(new Set([true, false]));
  });
});
