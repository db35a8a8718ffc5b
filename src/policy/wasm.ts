/**
 * Checking and running compiled OPA policy modules.
 *
 * {@link inspectModule} compiles the bytes, checks the imports and exports against OPA's wasm ABI,
 * and instantiates a throw-away probe (host functions that refuse to run) to read the ABI version,
 * the entrypoints and the built-ins the module calls, before anything else touches the module.
 * {@link PolicyInstance} then runs evaluations on an `@open-policy-agent/opa-wasm` instance, with
 * every failure turned into an `IdentityError`.
 */
import * as opaWasm from '@open-policy-agent/opa-wasm';
import { IdentityError } from '../errors/index.js';
import type { HostBuiltin } from './builtins.js';

// The WebAssembly JS API, typed locally: the project's `lib` (ES2023, no DOM) does not declare it
// and a global declaration would leak into users' types.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmModule {
  readonly __wasmModule?: never;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmModuleDescriptor {
  readonly module: string;
  readonly name: string;
  readonly kind: string;
}
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
  Module: {
    imports(module: WasmModule): WasmModuleDescriptor[];
    exports(module: WasmModule): { name: string; kind: string }[];
  };
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
  Global: abstract new (...args: never[]) => { value: unknown };
  RuntimeError: abstract new (...args: never[]) => Error;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Bytes in one WebAssembly page. */
export const WASM_PAGE_BYTES = 65_536;

/** Linear-memory bounds of a policy instance, in 64 KiB pages. */
export interface MemoryLimits {
  readonly initialPages: number;
  readonly maximumPages: number;
}

/** What {@link inspectModule} learned about a module. */
export interface ModuleInfo {
  readonly module: WasmModule;
  readonly abiVersion: number;
  readonly abiMinorVersion: number;
  /** Entrypoint name → id, as the module's `entrypoints()` export lists them. */
  readonly entrypoints: ReadonlyMap<string, number>;
  /** Names of the non-native built-ins the module calls (its `builtins()` table). */
  readonly builtins: readonly string[];
}

interface LoadedPolicyLike {
  evaluate(input: ArrayBuffer | undefined, entrypoint: number): unknown;
  setData(data: ArrayBuffer): void;
  mem: WasmMemory;
  minorVersion: number;
  wasmInstance: WasmInstance;
  dataAddr: number;
  dataHeapPtr: number;
}

/** ABI 1.2 `opa_eval(reserved, entrypoint, data, input, input_len, heap_ptr, format) → result`. */
type OpaEval = (
  reserved: number,
  entrypoint: number,
  data: number,
  input: number,
  inputLen: number,
  heapPtr: number,
  format: number,
) => number;

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/**
 * JSON text as an `ArrayBuffer` holding exactly its UTF-8 bytes: opa-wasm takes an `ArrayBuffer`
 * (for input, data or a built-in's result) as pre-serialised JSON.
 */
export function jsonBuffer(text: string): ArrayBuffer {
  const bytes = utf8Encoder.encode(text);
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.slice().buffer as ArrayBuffer);
}

interface OpaWasmModule {
  loadPolicySync(
    wasm: WasmModule,
    memory: { initial: number; maximum: number },
    builtins: Record<string, HostBuiltin>,
  ): LoadedPolicyLike;
}

// opa-wasm 1.10.0 exposes `loadPolicySync` only on its default export (its ESM types omit it).
const opaRuntime = (opaWasm as unknown as { default: OpaWasmModule }).default;

const ALLOWED_IMPORTS: ReadonlyMap<string, string> = new Map([
  ['memory', 'memory'],
  ['opa_abort', 'function'],
  ['opa_println', 'function'],
  ['opa_builtin0', 'function'],
  ['opa_builtin1', 'function'],
  ['opa_builtin2', 'function'],
  ['opa_builtin3', 'function'],
  ['opa_builtin4', 'function'],
]);

const REQUIRED_FUNCTIONS = [
  'opa_malloc',
  'opa_heap_ptr_get',
  'opa_heap_ptr_set',
  'opa_json_parse',
  'opa_json_dump',
  'builtins',
  'entrypoints',
] as const;

function wrongAbi(detail: string): IdentityError {
  return new IdentityError('policy-wasm-wrong-abi', `not an OPA policy module: ${detail}`);
}

/** Reads a NUL-terminated UTF-8 string from linear memory. */
function readCString(memory: WasmMemory, addr: number): string {
  const bytes = new Uint8Array(memory.buffer);
  if (addr <= 0 || addr >= bytes.length) throw wrongAbi('a JSON dump pointed outside linear memory');
  const end = bytes.indexOf(0, addr);
  if (end === -1) throw wrongAbi('a JSON dump is not NUL-terminated');
  return Buffer.from(bytes.buffer, addr, end - addr).toString('utf8');
}

function globalNumber(exports: Record<string, unknown>, name: string): number {
  const g = exports[name];
  const v = g instanceof WA.Global ? g.value : g;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw wrongAbi(`export ${name} is not an integer global`);
  return v;
}

/** Turns whatever a wasm instance threw (strings, plain objects, traps) into a message. */
export function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (
    typeof thrown === 'object' &&
    thrown !== null &&
    typeof (thrown as { message?: unknown }).message === 'string'
  ) {
    return (thrown as { message: string }).message;
  }
  return String(thrown);
}

/**
 * Compiles and checks a policy module.
 *
 * @throws IdentityError `policy-wasm-invalid` (not WebAssembly), `policy-wasm-wrong-abi` (missing
 *   exports, unexpected imports), `policy-wasm-unsupported-abi` (ABI major other than 1),
 *   `policy-wasm-link-failed` (memory bounds the module cannot use).
 */
export async function inspectModule(bytes: Uint8Array, memory: MemoryLimits): Promise<ModuleInfo> {
  let module: WasmModule;
  try {
    module = await WA.compile(bytes);
  } catch (err) {
    throw new IdentityError(
      'policy-wasm-invalid',
      `policy.wasm is not a valid WebAssembly module: ${describeThrown(err)}`,
      {
        cause: err,
      },
    );
  }
  let importsMemory = false;
  for (const imp of WA.Module.imports(module)) {
    const kind = imp.module === 'env' ? ALLOWED_IMPORTS.get(imp.name) : undefined;
    if (kind === undefined || kind !== imp.kind) {
      throw wrongAbi(`unexpected import ${imp.module}.${imp.name} (${imp.kind})`);
    }
    if (imp.name === 'memory') importsMemory = true;
  }
  if (!importsMemory) throw wrongAbi('the module does not import env.memory');
  const exported = new Map(WA.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const name of REQUIRED_FUNCTIONS) {
    if (exported.get(name) !== 'function') throw wrongAbi(`function export ${name} is missing`);
  }
  for (const name of ['opa_wasm_abi_version', 'opa_wasm_abi_minor_version']) {
    if (exported.get(name) !== 'global') throw wrongAbi(`global export ${name} is missing`);
  }

  // Probe instance: host functions refuse to run, so nothing the module does can reach us.
  const mem = newMemory(memory);
  const refuse = (): never => {
    throw new Error('host function called while inspecting the module');
  };
  let probe: WasmInstance;
  try {
    probe = await WA.instantiate(module, {
      env: {
        memory: mem,
        opa_abort: refuse,
        opa_println: refuse,
        opa_builtin0: refuse,
        opa_builtin1: refuse,
        opa_builtin2: refuse,
        opa_builtin3: refuse,
        opa_builtin4: refuse,
      },
    });
  } catch (err) {
    throw new IdentityError(
      'policy-wasm-link-failed',
      `the module cannot be instantiated with memory of ${memory.initialPages}..${memory.maximumPages} pages: ${describeThrown(err)}`,
      { cause: err },
    );
  }
  const ex = probe.exports;
  const abiVersion = globalNumber(ex, 'opa_wasm_abi_version');
  const abiMinorVersion = globalNumber(ex, 'opa_wasm_abi_minor_version');
  if (abiVersion !== 1) {
    throw new IdentityError(
      'policy-wasm-unsupported-abi',
      `the module uses OPA wasm ABI ${abiVersion}.${abiMinorVersion}; only ABI 1.x is supported`,
      { details: { abiVersion, abiMinorVersion } },
    );
  }
  const dump = (fn: string): unknown => {
    try {
      const call = ex[fn] as () => number;
      const jsonDump = ex['opa_json_dump'] as (addr: number) => number;
      return JSON.parse(readCString(mem, jsonDump(call())));
    } catch (err) {
      if (err instanceof IdentityError) throw err;
      throw wrongAbi(`reading ${fn}() failed: ${describeThrown(err)}`);
    }
  };
  const entrypoints = new Map<string, number>();
  const eps = dump('entrypoints');
  if (typeof eps !== 'object' || eps === null || Array.isArray(eps))
    throw wrongAbi('entrypoints() is not an object');
  for (const [name, id] of Object.entries(eps)) {
    if (!Number.isInteger(id)) throw wrongAbi(`entrypoint ${name} has no integer id`);
    entrypoints.set(name, id as number);
  }
  const table = dump('builtins');
  if (typeof table !== 'object' || table === null || Array.isArray(table))
    throw wrongAbi('builtins() is not an object');
  return { module, abiVersion, abiMinorVersion, entrypoints, builtins: Object.keys(table).sort() };
}

/** A new linear memory with the given bounds. */
export function newMemory(limits: MemoryLimits): WasmMemory {
  return new WA.Memory({ initial: limits.initialPages, maximum: limits.maximumPages });
}

/**
 * One instantiated policy with its data loaded. Not re-entrant: the engine guarantees a single
 * evaluation at a time.
 */
export class PolicyInstance {
  readonly #policy: LoadedPolicyLike;
  readonly #opaEval: OpaEval | undefined;

  private constructor(policy: LoadedPolicyLike) {
    this.#policy = policy;
    const fn = policy.wasmInstance.exports['opa_eval'];
    this.#opaEval = policy.minorVersion >= 2 && typeof fn === 'function' ? (fn as OpaEval) : undefined;
  }

  /**
   * Instantiates `info.module` with the host built-ins and loads `data` (serialised JSON).
   *
   * @throws IdentityError `policy-memory-limit` when the data does not fit, `policy-wasm-link-failed`.
   */
  static create(
    info: ModuleInfo,
    memory: MemoryLimits,
    builtins: Record<string, HostBuiltin>,
    data: ArrayBuffer,
  ): PolicyInstance {
    let policy: LoadedPolicyLike;
    try {
      policy = opaRuntime.loadPolicySync(
        info.module,
        { initial: memory.initialPages, maximum: memory.maximumPages },
        builtins,
      );
    } catch (err) {
      throw new IdentityError(
        'policy-wasm-link-failed',
        `instantiating the policy failed: ${describeThrown(err)}`,
        {
          cause: err,
        },
      );
    }
    const instance = new PolicyInstance(policy);
    instance.setData(data);
    return instance;
  }

  /** Replaces the data document (serialised JSON object). */
  setData(data: ArrayBuffer): void {
    try {
      this.#policy.setData(data);
    } catch (err) {
      throw classify(err, 'loading data').error;
    }
  }

  /** Bytes of linear memory currently allocated. */
  get memoryBytes(): number {
    return this.#policy.mem.buffer.byteLength;
  }

  /**
   * Evaluates entrypoint `id` on serialised input (JSON text, or `undefined` for no input).
   * Returns the value, or `undefined` when the entrypoint is undefined for this input.
   *
   * On ABI 1.2+ modules the input is encoded straight into linear memory and the result read in
   * place (one `opa_eval` call); older modules go through opa-wasm's own evaluate.
   */
  evaluate(id: number, input: string | undefined): unknown {
    const p = this.#policy;
    let rs: unknown;
    if (this.#opaEval === undefined) {
      rs = p.evaluate(input === undefined ? undefined : jsonBuffer(input), id);
    } else {
      const heap = p.dataHeapPtr;
      let inputAddr = 0;
      let inputLen = 0;
      if (input !== undefined) {
        const len = Buffer.byteLength(input, 'utf8');
        const needed = heap + len - p.mem.buffer.byteLength;
        if (needed > 0) p.mem.grow(Math.ceil(needed / WASM_PAGE_BYTES)); // RangeError past the maximum
        const { written } = utf8Encoder.encodeInto(input, new Uint8Array(p.mem.buffer, heap, len));
        inputAddr = heap;
        inputLen = written;
      }
      const out = this.#opaEval(0, id, p.dataAddr, inputAddr, inputLen, heap + inputLen, 0);
      const bytes = new Uint8Array(p.mem.buffer);
      const end = bytes.indexOf(0, out);
      if (out <= 0 || end === -1) {
        throw new IdentityError('policy-evaluation-failed', 'the policy returned an unterminated result');
      }
      rs = JSON.parse(utf8.decode(bytes.subarray(out, end)));
    }
    if (!Array.isArray(rs)) {
      throw new IdentityError('policy-evaluation-failed', 'the policy returned a malformed result set');
    }
    if (rs.length === 0) return undefined;
    if (rs.length > 1) {
      throw new IdentityError(
        'policy-evaluation-failed',
        `the entrypoint produced ${rs.length} results; expected one`,
      );
    }
    const first = rs[0] as { result?: unknown } | undefined;
    return first?.result;
  }
}

/** A classified failure: the error to report, and whether the instance must be discarded. */
export interface Classified {
  readonly error: IdentityError;
  /** Traps and memory-growth failures leave the instance in an unknown state. */
  readonly fatal: boolean;
}

/**
 * Classifies a value thrown by a wasm instance. Traps and memory-growth failures mark the
 * instance as unusable; aborts and built-in errors leave it consistent (the next evaluation
 * resets the heap).
 */
export function classify(thrown: unknown, doing: string): Classified {
  if (thrown instanceof IdentityError) return { error: thrown, fatal: false };
  const msg = describeThrown(thrown);
  if (thrown instanceof RangeError && /call stack/i.test(msg)) {
    return {
      error: new IdentityError('policy-evaluation-failed', `${doing} overflowed the stack: ${msg}`, {
        cause: thrown,
      }),
      fatal: true,
    };
  }
  if (thrown instanceof RangeError || /opa_malloc|out of memory|Memory\.grow/i.test(msg)) {
    return {
      error: new IdentityError('policy-memory-limit', `${doing} ran out of policy memory: ${msg}`, {
        cause: thrown,
      }),
      fatal: true,
    };
  }
  if (thrown instanceof WA.RuntimeError) {
    return {
      error: new IdentityError('policy-evaluation-failed', `${doing} trapped: ${msg}`, { cause: thrown }),
      fatal: true,
    };
  }
  if (/^not implemented: built-in function/.test(msg)) {
    return {
      error: new IdentityError('policy-builtin-unsupported', `${doing} called a missing built-in: ${msg}`, {
        cause: thrown,
      }),
      fatal: false,
    };
  }
  return {
    error: new IdentityError('policy-evaluation-failed', `${doing} failed: ${msg}`, { cause: thrown }),
    fatal: false,
  };
}
