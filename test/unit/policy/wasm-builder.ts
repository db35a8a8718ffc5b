/**
 * A tiny WebAssembly binary writer for unit tests: just enough to make modules that look like
 * (or deliberately unlike) OPA policy modules, without any external tool.
 */

function uleb(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  let v = n | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function name(s: string): number[] {
  const b = [...Buffer.from(s, 'utf8')];
  return [...uleb(b.length), ...b];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const I32 = 0x7f;

/** Function shapes used by the OPA ABI exports. */
export type Shape = 'get' | 'unary' | 'set' | 'binary';

const TYPES: Record<Shape, number[]> = {
  get: [0x60, 0, 1, I32], // () -> i32
  unary: [0x60, 1, I32, 1, I32], // (i32) -> i32
  set: [0x60, 1, I32, 0], // (i32) -> ()
  binary: [0x60, 2, I32, I32, 1, I32], // (i32, i32) -> i32
};
const TYPE_INDEX: Record<Shape, number> = { get: 0, unary: 1, set: 2, binary: 3 };

/** A function to export: its shape and body (a constant, or identity of its first argument). */
export interface FuncSpec {
  readonly shape: Shape;
  /** `i32.const value` for `get`/`unary`/`binary`; ignored for `set`; `'identity'` returns arg 0. */
  readonly returns?: number | 'identity' | undefined;
}

/** What to put in the module. */
export interface ModuleSpec {
  readonly importMemory?: boolean | undefined;
  readonly extraImports?: readonly { module: string; name: string }[] | undefined;
  readonly functions?: Readonly<Record<string, FuncSpec>> | undefined;
  readonly globals?: Readonly<Record<string, number>> | undefined;
  /** Active data segments at fixed offsets of memory 0. */
  readonly data?: readonly { offset: number; bytes: Uint8Array }[] | undefined;
}

/** Encodes a module. */
export function buildWasm(spec: ModuleSpec): Uint8Array {
  const imports: number[][] = [];
  for (const imp of spec.extraImports ?? [])
    imports.push([...name(imp.module), ...name(imp.name), 0x00, ...uleb(0)]);
  if (spec.importMemory !== false) imports.push([...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]);
  const importedFuncs = (spec.extraImports ?? []).length;
  const funcs = Object.entries(spec.functions ?? {});
  const globals = Object.entries(spec.globals ?? {});
  const exports: number[][] = [
    ...funcs.map(([n], i) => [...name(n), 0x00, ...uleb(importedFuncs + i)]),
    ...globals.map(([n], i) => [...name(n), 0x03, ...uleb(i)]),
  ];
  const bodies = funcs.map(([, f]) => {
    let code: number[];
    if (f.shape === 'set') code = [];
    else if (f.returns === 'identity') code = [0x20, 0x00];
    else code = [0x41, ...sleb(f.returns ?? 0)];
    const body = [0x00, ...code, 0x0b];
    return [...uleb(body.length), ...body];
  });
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([TYPES.get, TYPES.unary, TYPES.set, TYPES.binary])),
    ...(imports.length > 0 ? section(2, vec(imports)) : []),
    ...(funcs.length > 0 ? section(3, vec(funcs.map(([, f]) => uleb(TYPE_INDEX[f.shape])))) : []),
    ...(globals.length > 0
      ? section(6, vec(globals.map(([, v]) => [I32, 0x00, 0x41, ...sleb(v), 0x0b])))
      : []),
    ...section(7, vec(exports)),
    ...(funcs.length > 0 ? section(10, vec(bodies)) : []),
    ...((spec.data ?? []).length > 0
      ? section(
          11,
          vec(
            (spec.data ?? []).map((d) => [
              0x00,
              0x41,
              ...sleb(d.offset),
              0x0b,
              ...uleb(d.bytes.length),
              ...d.bytes,
            ]),
          ),
        )
      : []),
  ];
  return new Uint8Array(bytes);
}

/**
 * A module that satisfies the shape of OPA's ABI: `entrypoints()` and `builtins()` return the
 * given JSON documents (through an identity `opa_json_dump`).
 */
export function opaLikeModule(opts: {
  abiVersion?: number;
  abiMinor?: number;
  entrypoints?: Record<string, number>;
  builtins?: Record<string, number>;
  omit?: string;
  extraImports?: { module: string; name: string }[];
  importMemory?: boolean;
  entrypointsPointer?: number;
}): Uint8Array {
  const ep = Buffer.from(`${JSON.stringify(opts.entrypoints ?? { 'p/allow': 0 })}\0`);
  const bi = Buffer.from(`${JSON.stringify(opts.builtins ?? {})}\0`);
  const functions: Record<string, FuncSpec> = {
    opa_malloc: { shape: 'unary', returns: 0 },
    opa_heap_ptr_get: { shape: 'get', returns: 0 },
    opa_heap_ptr_set: { shape: 'set' },
    opa_json_parse: { shape: 'binary', returns: 0 },
    opa_json_dump: { shape: 'unary', returns: 'identity' },
    builtins: { shape: 'get', returns: 2048 },
    entrypoints: { shape: 'get', returns: opts.entrypointsPointer ?? 1024 },
  };
  const globals: Record<string, number> = {
    opa_wasm_abi_version: opts.abiVersion ?? 1,
    opa_wasm_abi_minor_version: opts.abiMinor ?? 3,
  };
  if (opts.omit !== undefined) {
    delete functions[opts.omit];
    delete globals[opts.omit];
  }
  return buildWasm({
    importMemory: opts.importMemory,
    extraImports: opts.extraImports,
    functions,
    globals,
    // Data segments need a memory; without one the module must still compile.
    data:
      opts.importMemory === false
        ? []
        : [
            { offset: 1024, bytes: ep },
            { offset: 2048, bytes: bi },
          ],
  });
}
