// Module inspection against hand-made modules: corrupt bytes, wrong ABI, missing exports,
// unexpected imports and the builtins table are all judged before opa-wasm ever sees a module.
import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { PolicyEngine } from '../../../src/policy/index.js';
import { classify, describeThrown, inspectModule } from '../../../src/policy/wasm.js';
import { opaLikeModule } from './wasm-builder.js';

const memory = { initialPages: 2, maximumPages: 16 };

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('inspectModule', () => {
  it('reads ABI version, entrypoints and the builtins table of a well-formed module', async () => {
    const info = await inspectModule(
      opaLikeModule({
        entrypoints: { 'a/allow': 0, 'a/reason': 1 },
        builtins: { 'time.now_ns': 0, 'io.jwt.decode': 1 },
      }),
      memory,
    );
    expect(info.abiVersion).toBe(1);
    expect(info.abiMinorVersion).toBe(3);
    expect([...info.entrypoints]).toEqual([
      ['a/allow', 0],
      ['a/reason', 1],
    ]);
    expect(info.builtins).toEqual(['io.jwt.decode', 'time.now_ns']);
  });

  it('refuses bytes that are not WebAssembly', async () => {
    const err = await rejection(inspectModule(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), memory));
    expect(isIdentityError(err, 'policy-wasm-invalid')).toBe(true);
  });

  it('refuses a truncated module', async () => {
    const good = opaLikeModule({});
    const err = await rejection(inspectModule(good.subarray(0, good.length - 7), memory));
    expect(isIdentityError(err, 'policy-wasm-invalid')).toBe(true);
  });

  it('refuses an ABI major version other than 1, naming it', async () => {
    const err = await rejection(inspectModule(opaLikeModule({ abiVersion: 2, abiMinor: 0 }), memory));
    expect(isIdentityError(err, 'policy-wasm-unsupported-abi')).toBe(true);
    expect((err as Error).message).toContain('ABI 2.0');
  });

  it.each([
    'opa_malloc',
    'opa_json_dump',
    'opa_json_parse',
    'builtins',
    'entrypoints',
    'opa_wasm_abi_version',
    'opa_wasm_abi_minor_version',
  ])('refuses a module without the %s export', async (name) => {
    const err = await rejection(inspectModule(opaLikeModule({ omit: name }), memory));
    expect(isIdentityError(err, 'policy-wasm-wrong-abi')).toBe(true);
    expect((err as Error).message).toContain(name);
  });

  it('refuses a module importing anything but the OPA host functions', async () => {
    const err = await rejection(
      inspectModule(opaLikeModule({ extraImports: [{ module: 'env', name: 'fetch_url' }] }), memory),
    );
    expect(isIdentityError(err, 'policy-wasm-wrong-abi')).toBe(true);
    expect((err as Error).message).toContain('env.fetch_url');
    const other = await rejection(
      inspectModule(
        opaLikeModule({ extraImports: [{ module: 'wasi_snapshot_preview1', name: 'fd_write' }] }),
        memory,
      ),
    );
    expect((other as Error).message).toContain('wasi_snapshot_preview1.fd_write');
  });

  it('refuses a module that does not import its memory', async () => {
    const err = await rejection(inspectModule(opaLikeModule({ importMemory: false }), memory));
    expect(isIdentityError(err, 'policy-wasm-wrong-abi')).toBe(true);
    expect((err as Error).message).toContain('env.memory');
  });

  it('refuses a JSON dump that points outside memory', async () => {
    const err = await rejection(inspectModule(opaLikeModule({ entrypointsPointer: 16 * 65536 + 8 }), memory));
    expect(isIdentityError(err, 'policy-wasm-wrong-abi')).toBe(true);
  });
});

describe('PolicyEngine.fromWasm load-time checks', () => {
  it('refuses a module that needs a built-in the runtime lacks, naming each', async () => {
    const wasm = opaLikeModule({ builtins: { 'time.parse_ns': 0, 'http.send': 1, 'time.now_ns': 2 } });
    const err = await rejection(PolicyEngine.fromWasm(wasm));
    expect(isIdentityError(err, 'policy-builtin-unsupported')).toBe(true);
    expect((err as Error).message).toContain('http.send, time.parse_ns');
    expect((err as Error).message).not.toContain('time.now_ns,');
  });

  it('accepts user built-ins as implementations', async () => {
    const wasm = opaLikeModule({ builtins: { 'acme.lookup': 0 } });
    const err = await rejection(PolicyEngine.fromWasm(wasm));
    expect(isIdentityError(err, 'policy-builtin-unsupported')).toBe(true);
    // With the built-in supplied, the builtin check passes and loading proceeds to instantiation,
    // which this hand-made module cannot complete (it has no opa_eval): a different error.
    const next = await rejection(PolicyEngine.fromWasm(wasm, { builtins: { 'acme.lookup': () => 1 } }));
    expect(isIdentityError(next, 'policy-builtin-unsupported')).toBe(false);
    expect(isIdentityError(next)).toBe(true);
  });

  it('refuses to replace a built-in that is already implemented', async () => {
    const err = await rejection(
      PolicyEngine.fromWasm(opaLikeModule({}), { builtins: { sprintf: () => '' } }),
    );
    expect(isIdentityError(err, 'policy-invalid-option')).toBe(true);
    const host = await rejection(
      PolicyEngine.fromWasm(opaLikeModule({}), { builtins: { 'time.now_ns': () => 1 } }),
    );
    expect(isIdentityError(host, 'policy-invalid-option')).toBe(true);
  });

  it('refuses memory limits that contradict each other', async () => {
    const err = await rejection(
      PolicyEngine.fromWasm(opaLikeModule({}), { limits: { initialMemoryPages: 32, maxMemoryPages: 16 } }),
    );
    expect(isIdentityError(err, 'policy-invalid-option')).toBe(true);
    const neg = await rejection(PolicyEngine.fromWasm(opaLikeModule({}), { limits: { maxInputBytes: -1 } }));
    expect(isIdentityError(neg, 'policy-invalid-option')).toBe(true);
  });
});

describe('classify', () => {
  it('wraps the strings and plain objects opa-wasm throws', () => {
    const s = classify('var assignment conflict', 'evaluating p/x');
    expect(s.error.code).toBe('policy-evaluation-failed');
    expect(s.error.message).toContain('var assignment conflict');
    expect(s.fatal).toBe(false);
    const o = classify({ message: 'not implemented: built-in function 3: foo.bar' }, 'evaluating p/x');
    expect(o.error.code).toBe('policy-builtin-unsupported');
    const m = classify(
      new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded'),
      'evaluating p/x',
    );
    expect(m.error.code).toBe('policy-memory-limit');
    expect(m.fatal).toBe(true);
    expect(describeThrown(42)).toBe('42');
  });
});
