// The example policies of examples/policies, compiled by the real `opa build -t wasm` with the
// shipped capabilities: for every input, our decisions equal the real `opa eval` decisions.
import { describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../../src/policy/index.js';
import { opaEvalMany } from '../../rig/index.js';
import {
  agentSelfAccess,
  compileWithCapabilities,
  type ExamplePolicy,
  rateTiers,
  serviceGraph,
} from './helpers.js';

const TD = 'tachikoma.internal';
const service = (name: string) => `spiffe://${TD}/service/${name}`;
const agent = (id: string) => `spiffe://${TD}/agent/${id}`;

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );
}

/** Evaluates every input with both engines; returns our results per entrypoint. */
async function compare(
  policy: ExamplePolicy,
  pkg: string,
  entrypoints: readonly string[],
  inputs: readonly unknown[],
  data: Record<string, unknown> = policy.data,
): Promise<Record<string, unknown>[]> {
  const prefix = pkg.replaceAll('.', '/');
  const bundle = await compileWithCapabilities(
    policy.files,
    entrypoints.map((e) => `${prefix}/${e}`),
    { data },
  );
  await using engine = await PolicyEngine.fromBundle(bundle);
  const theirs = (await opaEvalMany(policy.files, `data.${pkg}`, inputs, { data })) as (
    | Record<string, unknown>
    | undefined
  )[];
  const ours: Record<string, unknown>[] = [];
  const mismatches: string[] = [];
  inputs.forEach((input, i) => {
    const row: Record<string, unknown> = {};
    for (const e of entrypoints) {
      const mine = engine.evaluate(`${prefix}/${e}`, input).result;
      const opa = theirs[i]?.[e];
      row[e] = mine;
      if (canonical(mine) !== canonical(opa)) {
        mismatches.push(`${e}(${JSON.stringify(input)}): ours ${canonical(mine)}, opa ${canonical(opa)}`);
      }
    }
    ours.push(row);
  });
  expect(mismatches).toEqual([]);
  return ours;
}

describe('examples/policies: our decisions equal opa eval', () => {
  it('service graph (108 inputs)', async () => {
    const ids: unknown[] = [
      service('registry-backend'),
      service('teg-core'),
      service('federation-hub'),
      service('audit-logger'),
      service('unknown-svc'),
      `spiffe://evil.example/service/teg-core`,
      `spiffe://${TD}.evil/service/teg-core`,
      agent('alice_at_example_dot_com'),
      `${service('teg-core')}/extra`,
      service(''),
      service('Teg-Core'),
      null,
      42,
    ];
    const inputs: unknown[] = [];
    for (const caller of ids)
      for (const target of ids.slice(0, 8)) inputs.push({ caller, target, method: 'GET' });
    inputs.push({}, { caller: service('teg-core') }, { target: service('audit-logger') }, 'not an object');
    expect(inputs.length).toBeGreaterThanOrEqual(50);
    const ours = await compare(serviceGraph, 'tachikoma.service_graph', ['allow', 'decision'], inputs);
    const allowed = ours.filter((r) => r['allow'] === true).length;
    expect(allowed).toBe(4); // exactly the four edges of the graph
    expect(ours.find((r) => r['allow'] === false)?.['decision']).toMatchObject({ allow: false });
  });

  it('agent self-access (100 inputs)', async () => {
    const callers: unknown[] = [
      agent('alice'),
      agent('bob'),
      service('teg-core'),
      agent('..'),
      `spiffe://other.example/agent/alice`,
      7,
    ];
    const methods: unknown[] = ['GET', 'PUT', 'POST', 'get'];
    const paths: unknown[] = [
      ['agents', 'alice'],
      ['agents', 'bob'],
      ['agents', 'alice', 'keys'],
      'agents/alice',
    ];
    const inputs: unknown[] = [];
    for (const caller of callers)
      for (const method of methods) for (const path of paths) inputs.push({ caller, method, path });
    inputs.push(
      { caller: agent('alice'), path: ['agents', 'alice'] },
      { caller: agent('a.b-c_d'), method: 'GET', path: ['agents', 'a.b-c_d'] },
    );
    inputs.push(
      { caller: agent('..'), method: 'GET', path: ['agents', '..'] },
      { caller: `${agent('alice')}/x`, method: 'GET', path: ['agents', 'alice/x'] },
    );
    expect(inputs.length).toBeGreaterThanOrEqual(50);
    const ours = await compare(agentSelfAccess, 'tachikoma.agent_self_access', ['allow', 'decision'], inputs);
    expect(ours.filter((r) => r['allow'] === true).length).toBe(5);
  });

  it('rate tiers (60+ inputs incl. data edge cases)', async () => {
    const scores: unknown[] = [
      -1,
      0,
      1,
      99.5,
      999,
      999.999,
      1000,
      1000.0001,
      2500,
      4999,
      4999.99,
      5000,
      5000.5,
      5001,
      1e9,
      1.5e3,
      -5000,
      '5000',
      '999',
      true,
      false,
      null,
      [5000],
      { v: 5000 },
      4.9999e3,
      1e3,
      1e-9,
      0.1,
      10_000,
      123_456_789,
      2 ** 53,
      -0.5,
      3333,
      1001,
      4321.5,
      '1e4',
    ];
    const agents = { ...(rateTiers.data['agents'] as Record<string, unknown>) };
    scores.forEach((s, i) => {
      agents[`gen-${i}`] = { reputation_score: s };
    });
    agents['no-score'] = { name: 'x' };
    agents['not-an-object'] = 5;
    const data = { ...rateTiers.data, agents };
    const inputs: unknown[] = Object.keys(agents).map((id) => ({ caller: agent(id) }));
    inputs.push(
      { caller: agent('nobody') },
      { caller: service('teg-core') },
      { caller: `spiffe://other.example/agent/alice_at_example_dot_com` },
      { caller: agent('') },
      { caller: `${agent('gen-11')}/x` },
      { caller: null },
      {},
      5,
    );
    expect(inputs.length).toBeGreaterThanOrEqual(50);
    const ours = await compare(rateTiers, 'tachikoma.rate_limit', ['limit', 'tier'], inputs, data);
    expect(new Set(ours.map((r) => r['limit']))).toEqual(new Set([100, 500, 1000]));
  });
});
