// The engine on policies compiled by the real `opa build -t wasm`.
import diagnostics_channel from 'node:diagnostics_channel';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type IdentityError, isIdentityError } from '../../../src/errors/index.js';
import {
  capabilitiesPath,
  type DecisionLogEntry,
  type EvaluationMetric,
  POLICY_DECISION_CHANNEL,
  PolicyEngine,
} from '../../../src/policy/index.js';
import { extractFromBundle } from '../../rig/index.js';
import { compileWithCapabilities, serviceGraph } from './helpers.js';

const REGO = `package t

default allow := false

allow if input.user == "admin"

kind := type_name(input)

echo := input

echo_data := data.cfg

size := units.parse_bytes(input.size)

# Two different values for one complete rule: OPA aborts the evaluation.
conflict := 1 if input.conflict
conflict := 2 if input.conflict

many := count([x | some x in numbers.range(1, input.n)])

now_same := time.now_ns() == time.now_ns()

now_text := json.marshal(time.now_ns())

callback := acme.callback(input)

deep := walk(input)
`;

const EPS = [
  'allow',
  'kind',
  'echo',
  'echo_data',
  'size',
  'conflict',
  'many',
  'now_same',
  'now_text',
  'callback',
].map((e) => `t/${e}`);

type Results = {
  't/allow': boolean;
  't/kind': string;
  't/echo': unknown;
  't/echo_data': unknown;
  't/size': number;
  't/conflict': number;
  't/many': number;
  't/now_same': boolean;
  't/now_text': string;
  't/callback': unknown;
};

let bundle: Uint8Array;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tk-policy-engine-'));
  // The test policy calls a custom built-in, which the capabilities must declare.
  const caps = JSON.parse(readFileSync(capabilitiesPath(), 'utf8')) as { builtins: unknown[] };
  caps.builtins.push({
    name: 'acme.callback',
    decl: { type: 'function', args: [{ type: 'any' }], result: { type: 'any' } },
  });
  const capsFile = join(dir, 'caps.json');
  writeFileSync(capsFile, JSON.stringify(caps));
  bundle = await compileWithCapabilities({ 't.rego': REGO }, EPS, {
    capabilities: capsFile,
    data: { cfg: { level: 3 } },
    revision: 'rev-42',
  });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const noCallback = { builtins: { 'acme.callback': () => 'unused' } };

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('loading', () => {
  it('loads a bundle: entrypoints, revision, data, description', async () => {
    await using engine = await PolicyEngine.fromBundle<Results>(bundle, noCallback);
    expect(engine.entrypoints).toEqual(EPS);
    expect(engine.revision).toBe('rev-42');
    expect(engine.data).toEqual({ cfg: { level: 3 } });
    const d = engine.describe();
    expect(d.abi).toMatch(/^1\.\d+$/);
    expect(d.builtins).toEqual(['acme.callback', 'time.now_ns', 'units.parse_bytes']);
    expect(d.sha256).toMatch(/^[0-9a-f]{64}$/);
    const decision = engine.evaluate('t/allow', { user: 'admin' });
    expect(decision.result).toBe(true);
    expect(decision.defined).toBe(true);
    expect(decision.revision).toBe('rev-42');
    expect(decision.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(engine.evaluate('t/echo_data').result).toEqual({ level: 3 });
  });

  it('loads a bare policy.wasm, without data until set', async () => {
    const wasm = await extractFromBundle(bundle, '/policy.wasm');
    await using engine = await PolicyEngine.fromWasm<Results>(wasm, noCallback);
    expect(engine.revision).toBeUndefined();
    expect(engine.evaluate('t/echo_data').defined).toBe(false);
    engine.setData({ cfg: 'set' });
    expect(engine.evaluate('t/echo_data').result).toBe('set');
  });

  it('loads a bundle file and names the policy after it', async () => {
    const file = join(dir, 'authz.tar.gz');
    writeFileSync(file, bundle);
    await using engine = await PolicyEngine.fromBundleFile(file, noCallback);
    expect(engine.name).toBe('authz');
    expect(engine.evaluate('t/allow', { user: 'bob' }).result).toBe(false);
    const missing = await rejection(PolicyEngine.fromBundleFile(join(dir, 'nope.tar.gz')));
    expect(isIdentityError(missing, 'policy-bundle-unreadable')).toBe(true);
    const big = await rejection(PolicyEngine.fromBundleFile(file, { limits: { maxBundleBytes: 100 } }));
    expect(isIdentityError(big, 'policy-bundle-too-large')).toBe(true);
  });

  it('refuses a corrupted module from a real bundle', async () => {
    const wasm = await extractFromBundle(bundle, '/policy.wasm');
    const broken = wasm.slice();
    broken.fill(0xff, 100, 400);
    expect(
      isIdentityError(await rejection(PolicyEngine.fromWasm(broken, noCallback)), 'policy-wasm-invalid'),
    ).toBe(true);
    expect(
      isIdentityError(
        await rejection(PolicyEngine.fromWasm(wasm.subarray(0, 5000), noCallback)),
        'policy-wasm-invalid',
      ),
    ).toBe(true);
    expect(isIdentityError(await rejection(PolicyEngine.fromBundle(wasm)), 'policy-bundle-not-gzip')).toBe(
      true,
    );
  });

  it('refuses data that does not fit the memory maximum', async () => {
    const agents = Object.fromEntries(
      Array.from({ length: 20_000 }, (_, i) => [`agent-${i}`, { score: i, tags: ['a', 'b'] }]),
    );
    const big = await compileWithCapabilities(
      { 'p.rego': 'package p\n\nn := count(data.agents)\n' },
      ['p/n'],
      { data: { agents } },
    );
    const err = await rejection(PolicyEngine.fromBundle(big, { limits: { maxMemoryPages: 20 } }));
    expect(isIdentityError(err, 'policy-memory-limit')).toBe(true);
    await using ok = await PolicyEngine.fromBundle(big);
    expect(ok.evaluate('p/n').result).toBe(20_000);
  });
});

describe('evaluation', () => {
  let engine: PolicyEngine<Results>;
  beforeAll(async () => {
    engine = await PolicyEngine.fromBundle<Results>(bundle, noCallback);
    return () => engine.close();
  });

  it('passes falsy inputs as themselves (opa-wasm alone drops them)', () => {
    expect(engine.evaluate('t/kind', null).result).toBe('null');
    expect(engine.evaluate('t/kind', false).result).toBe('boolean');
    expect(engine.evaluate('t/kind', 0).result).toBe('number');
    expect(engine.evaluate('t/kind', '').result).toBe('string');
    expect(engine.evaluate('t/kind').defined).toBe(false);
    expect(engine.evaluate('t/echo', { a: [1, 'x', null, true] }).result).toEqual({
      a: [1, 'x', null, true],
    });
  });

  it('names the available entrypoints when asked for an unknown one', () => {
    const err = thrown(() => engine.evaluate('t/nope' as 't/allow'));
    expect(isIdentityError(err, 'policy-unknown-entrypoint')).toBe(true);
    expect((err as Error).message).toContain('t/allow');
  });

  it('fails closed on an evaluation error and keeps working afterwards', () => {
    const err = thrown(() => engine.evaluate('t/conflict', { conflict: true }));
    expect(isIdentityError(err, 'policy-evaluation-failed')).toBe(true);
    expect(
      isIdentityError(
        thrown(() => engine.isAllowed('t/conflict', { conflict: true })),
        'policy-evaluation-failed',
      ),
    ).toBe(true);
    expect(engine.isAllowed('t/allow', { user: 'admin' })).toBe(true);
  });

  it('refuses inputs that are too large or not JSON', () => {
    const small = thrown(() => engine.evaluate('t/echo', { blob: 'x'.repeat(2 << 20) }));
    expect(isIdentityError(small, 'policy-input-too-large')).toBe(true);
    const cyclic: Record<string, unknown> = {};
    cyclic['me'] = cyclic;
    expect(
      isIdentityError(
        thrown(() => engine.evaluate('t/echo', cyclic)),
        'policy-input-invalid',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => engine.evaluate('t/echo', 1n)),
        'policy-input-invalid',
      ),
    ).toBe(true);
  });

  it('bounds memory during evaluation and recovers after running out', async () => {
    await using tight = await PolicyEngine.fromBundle<Results>(bundle, {
      ...noCallback,
      limits: { maxMemoryPages: 64 },
    });
    expect(tight.evaluate('t/many', { n: 1000 }).result).toBe(1000);
    const err = thrown(() => tight.evaluate('t/many', { n: 5_000_000 }));
    expect(isIdentityError(err)).toBe(true);
    expect((err as IdentityError).code).toBe('policy-memory-limit');
    // The exhausted instance was discarded; the next evaluation runs on a fresh one.
    expect(tight.evaluate('t/many', { n: 10 }).result).toBe(10);
    expect(tight.memoryBytes).toBeGreaterThan(0);
    expect(tight.memoryBytes).toBeLessThanOrEqual(tight.maxMemoryBytes);
    expect(tight.maxMemoryBytes).toBe(64 * 65536);
    expect(tight.evaluate('t/allow', { user: 'admin' }).result).toBe(true);
  });

  it('fails closed on an input too deeply nested to serialise and keeps working', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    const err = thrown(() => engine.evaluate('t/echo', deep));
    expect(isIdentityError(err)).toBe(true);
    expect(engine.evaluate('t/allow', { user: 'admin' }).result).toBe(true);
  });

  it('keeps time.now_ns fixed within an evaluation and exact', async () => {
    await using clocked = await PolicyEngine.fromBundle<Results>(bundle, {
      ...noCallback,
      clock: () => 1_734_567_890_123_456_789n,
    });
    expect(clocked.evaluate('t/now_same').result).toBe(true);
    expect(clocked.evaluate('t/now_text').result).toBe('1734567890123456789');
    expect(engine.evaluate('t/now_same').result).toBe(true);
  });

  it('makes a rejected built-in call undefined, or fails the evaluation when strict', async () => {
    expect(engine.evaluate('t/size', { size: '10kb' }).result).toBe(10_000);
    expect(engine.evaluate('t/size', { size: '10 kb' }).defined).toBe(false);
    await using strict = await PolicyEngine.fromBundle<Results>(bundle, {
      ...noCallback,
      strictBuiltinErrors: true,
    });
    expect(strict.evaluate('t/size', { size: '10kb' }).result).toBe(10_000);
    const err = thrown(() => strict.evaluate('t/size', { size: '10 kb' }));
    expect(isIdentityError(err, 'policy-builtin-error')).toBe(true);
    expect((err as Error).message).toContain('units.parse_bytes');
  });

  it('runs user built-ins and refuses re-entry from them', async () => {
    let inner: PolicyEngine<Results> | undefined;
    await using cb = await PolicyEngine.fromBundle<Results>(bundle, {
      builtins: {
        'acme.callback': (input) => {
          if ((input as { reenter?: boolean }).reenter) return inner?.evaluate('t/allow', {}).result;
          return { seen: input };
        },
      },
    });
    inner = cb;
    expect(cb.evaluate('t/callback', { a: 1 }).result).toEqual({ seen: { a: 1 } });
    const err = thrown(() => cb.evaluate('t/callback', { reenter: true }));
    expect(isIdentityError(err, 'policy-reentrant-evaluation')).toBe(true);
    expect(cb.evaluate('t/allow', { user: 'admin' }).result).toBe(true);
    await using asyncFn = await PolicyEngine.fromBundle<Results>(bundle, {
      builtins: { 'acme.callback': async () => 1 },
    });
    expect(
      isIdentityError(
        thrown(() => asyncFn.evaluate('t/callback', {})),
        'policy-builtin-error',
      ),
    ).toBe(true);
  });
});

describe('data', () => {
  it('sets, patches and resets data, and refuses bad writes without changing anything', async () => {
    await using engine = await PolicyEngine.fromBundle<Results>(bundle, noCallback);
    engine.patchData('cfg/level', 4);
    expect(engine.evaluate('t/echo_data').result).toEqual({ level: 4 });
    engine.patchData(['cfg', 'extra'], { on: true });
    expect(engine.evaluate('t/echo_data').result).toEqual({ level: 4, extra: { on: true } });
    engine.patchData('cfg/level', undefined);
    expect(engine.evaluate('t/echo_data').result).toEqual({ extra: { on: true } });
    expect(
      isIdentityError(
        thrown(() => engine.patchData('cfg/extra/on/x', 1)),
        'policy-data-invalid-path',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => engine.setData([] as unknown as Record<string, unknown>)),
        'policy-data-invalid',
      ),
    ).toBe(true);
    expect(engine.evaluate('t/echo_data').result).toEqual({ extra: { on: true } });
    engine.setData({ cfg: 'replaced' });
    expect(engine.evaluate('t/echo_data').result).toBe('replaced');
    engine.resetData();
    expect(engine.evaluate('t/echo_data').result).toEqual({ level: 3 });
  });

  it('refuses data beyond the memory maximum and keeps the previous data', async () => {
    await using engine = await PolicyEngine.fromBundle<Results>(bundle, {
      ...noCallback,
      limits: { maxMemoryPages: 32 },
    });
    const huge = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, `value-${i}`]));
    expect(
      isIdentityError(
        thrown(() => engine.patchData('cfg/huge', huge)),
        'policy-memory-limit',
      ),
    ).toBe(true);
    expect(engine.evaluate('t/echo_data').result).toEqual({ level: 3 });
    expect(engine.data).toEqual({ cfg: { level: 3 } });
  });
});

describe('decision log, metrics and diagnostics channel', () => {
  it('reports every decision with id, redacted input, result, duration and revision', async () => {
    const logs: DecisionLogEntry[] = [];
    const metrics: EvaluationMetric[] = [];
    const published: unknown[] = [];
    const onMessage = (m: unknown) => published.push(m);
    diagnostics_channel.subscribe(POLICY_DECISION_CHANNEL, onMessage);
    try {
      await using engine = await PolicyEngine.fromBundle<Results>(bundle, {
        ...noCallback,
        name: 'authz',
        decisionLog: (e) => logs.push(e),
        metrics: (m) => metrics.push(m),
        redactInput: (input) => ({ ...(input as object), token: '[redacted]' }),
      });
      const d = engine.evaluate('t/allow', { user: 'admin', token: 'secret' });
      engine.evaluate('t/allow', { user: 'bob', token: 'secret' });
      engine.evaluate('t/echo', { n: 1, token: 'x' });
      engine.evaluate('t/kind');
      expect(() => engine.evaluate('t/conflict', { conflict: true, token: 'x' })).toThrow();
      expect(logs.map((l) => l.decision)).toEqual(['allow', 'deny', 'value', 'undefined', 'error']);
      expect(logs[0]).toMatchObject({
        decisionId: d.id,
        policy: 'authz',
        entrypoint: 't/allow',
        input: { user: 'admin', token: '[redacted]' },
        result: true,
        revision: 'rev-42',
      });
      expect(logs[0]?.durationMs).toBeGreaterThan(0);
      expect(JSON.stringify(logs)).not.toContain('secret');
      expect(logs[4]?.error?.code).toBe('policy-evaluation-failed');
      expect(metrics.map((m) => [m.policy, m.entrypoint, m.decision])).toEqual([
        ['authz', 't/allow', 'allow'],
        ['authz', 't/allow', 'deny'],
        ['authz', 't/echo', 'value'],
        ['authz', 't/kind', 'undefined'],
        ['authz', 't/conflict', 'error'],
      ]);
      expect(metrics[0]?.durationSeconds).toBeCloseTo((logs[0]?.durationMs ?? 0) / 1000, 9);
      expect(published).toHaveLength(5);
      expect(published[0]).toMatchObject({ decisionId: d.id, input: { token: '[redacted]' } });
    } finally {
      diagnostics_channel.unsubscribe(POLICY_DECISION_CHANNEL, onMessage);
    }
  });

  it('keeps the decision when a hook throws, and reports the hook failure', async () => {
    const errors: IdentityError[] = [];
    await using engine = await PolicyEngine.fromBundle<Results>(bundle, {
      ...noCallback,
      decisionLog: () => {
        throw new Error('log sink down');
      },
      metrics: () => {
        throw new Error('meter down');
      },
    });
    engine.on('error', (e) => errors.push(e));
    expect(engine.evaluate('t/allow', { user: 'admin' }).result).toBe(true);
    expect(errors.map((e) => e.code)).toEqual(['policy-hook-failed', 'policy-hook-failed']);
    expect(errors[1]?.message).toContain('log sink down');
  });
});

describe('lifecycle', () => {
  it('close is idempotent and refuses later use', async () => {
    const engine = await PolicyEngine.fromBundle<Results>(bundle, noCallback);
    await engine.close();
    await engine.close();
    expect(engine.closed).toBe(true);
    expect(
      isIdentityError(
        thrown(() => engine.evaluate('t/allow', {})),
        'policy-closed',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => engine.patchData('a', 1)),
        'policy-closed',
      ),
    ).toBe(true);
  });

  it('types results by entrypoint', async () => {
    await using sg = await PolicyEngine.fromBundle<{ 'tachikoma/service_graph/allow': boolean }>(
      await compileWithCapabilities(serviceGraph.files, ['tachikoma/service_graph/allow'], {
        data: serviceGraph.data,
      }),
    );
    const allowed: boolean | undefined = sg.evaluate('tachikoma/service_graph/allow', {
      caller: 'spiffe://tachikoma.internal/service/teg-core',
      target: 'spiffe://tachikoma.internal/service/audit-logger',
    }).result;
    expect(allowed).toBe(true);
  });
});
