/**
 * Reading `opa build -t wasm` bundles: `/policy.wasm`, `/data.json` (and nested `data.json`
 * files) and `/.manifest`, unpacked in memory within size and entry-count limits.
 */
import { IdentityError } from '../errors/index.js';
import { isObject, setOwn } from './data.js';
import { gunzipBounded, readTar, type TarFile } from './tar.js';

/** One `wasm` entry of a bundle manifest. */
export interface BundleWasmEntry {
  /** Entrypoint path, e.g. `authz/allow`. */
  readonly entrypoint: string;
  /** Module file in the bundle, e.g. `/policy.wasm`. */
  readonly module: string;
}

/** The parts of `/.manifest` the engine uses. */
export interface BundleManifest {
  /** The bundle revision (`opa build -r`), when set. */
  readonly revision?: string | undefined;
  /** Data roots the bundle owns. */
  readonly roots?: readonly string[] | undefined;
  /** Entrypoint → module mapping. */
  readonly wasm?: readonly BundleWasmEntry[] | undefined;
  /** The Rego version the bundle was built for. */
  readonly regoVersion?: number | undefined;
  /** Free-form metadata. */
  readonly metadata?: Readonly<Record<string, unknown>> | undefined;
}

/** A bundle unpacked in memory. */
export interface ParsedBundle {
  readonly wasm: Uint8Array;
  readonly data: Record<string, unknown>;
  readonly manifest: BundleManifest;
  /** Whether the bundle carries `/.signatures.json` (not verified by this package). */
  readonly signed: boolean;
}

/** Size bounds for bundles. */
export interface BundleLimits {
  /** Largest compressed bundle accepted, in bytes. */
  readonly maxCompressedBytes: number;
  /** Largest decompressed bundle accepted, in bytes. */
  readonly maxDecompressedBytes: number;
  /** Largest number of tar entries. */
  readonly maxEntries: number;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Deepest nesting of arrays and objects accepted in a data file. */
export const MAX_DATA_DEPTH = 256;

/**
 * Whether a parsed JSON value nests deeper than `max` (iterative: no recursion on untrusted
 * depth). Merging, serialising and loading data into the wasm heap all recurse, so a data file
 * nested a hundred thousand levels deep would overflow the stack with a plain `RangeError`.
 */
function nestsDeeperThan(root: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

function parseJson(file: TarFile, code: string): unknown {
  try {
    return JSON.parse(fatalUtf8.decode(file.data));
  } catch (err) {
    throw new IdentityError(code, `/${file.name} is not valid UTF-8 JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function badManifest(detail: string): IdentityError {
  return new IdentityError('policy-bundle-invalid-manifest', `/.manifest ${detail}`);
}

function parseManifest(file: TarFile | undefined): BundleManifest {
  if (file === undefined) return {};
  const m = parseJson(file, 'policy-bundle-invalid-manifest');
  if (!isObject(m)) throw badManifest('is not a JSON object');
  const revision = m['revision'];
  if (revision !== undefined && typeof revision !== 'string') throw badManifest('revision is not a string');
  const roots = m['roots'];
  if (roots !== undefined && (!Array.isArray(roots) || roots.some((r) => typeof r !== 'string'))) {
    throw badManifest('roots is not an array of strings');
  }
  const wasm = m['wasm'];
  if (wasm !== undefined) {
    if (!Array.isArray(wasm)) throw badManifest('wasm is not an array');
    for (const w of wasm) {
      if (!isObject(w) || typeof w['entrypoint'] !== 'string' || typeof w['module'] !== 'string') {
        throw badManifest('wasm entries must have string entrypoint and module');
      }
    }
  }
  const regoVersion = m['rego_version'];
  if (regoVersion !== undefined && typeof regoVersion !== 'number')
    throw badManifest('rego_version is not a number');
  const metadata = m['metadata'];
  if (metadata !== undefined && !isObject(metadata)) throw badManifest('metadata is not an object');
  return {
    revision: revision === '' ? undefined : (revision as string | undefined),
    roots: roots as string[] | undefined,
    wasm: wasm as { entrypoint: string; module: string }[] | undefined,
    regoVersion: regoVersion as number | undefined,
    metadata: metadata as Record<string, unknown> | undefined,
  };
}

/** Deep-merges `src` into `dst`; two non-object values at one path are a conflict. */
function mergeInto(dst: Record<string, unknown>, src: Record<string, unknown>, where: string): void {
  for (const [k, v] of Object.entries(src)) {
    const existing = Object.hasOwn(dst, k) ? dst[k] : undefined;
    if (existing === undefined) {
      setOwn(dst, k, v);
    } else if (isObject(existing) && isObject(v)) {
      mergeInto(existing, v, `${where}/${k}`);
    } else {
      throw new IdentityError('policy-bundle-data-conflict', `two data files both set ${where}/${k}`);
    }
  }
}

/**
 * Parses the files of a bundle.
 *
 * @throws IdentityError `policy-bundle-missing-wasm`, `policy-bundle-invalid-manifest`,
 *   `policy-bundle-invalid-data`, `policy-bundle-data-conflict`, `policy-bundle-unsupported`.
 */
export function parseBundleFiles(files: readonly TarFile[]): ParsedBundle {
  const byName = new Map(files.map((f) => [f.name, f]));
  const manifest = parseManifest(byName.get('.manifest'));
  const modules = new Set((manifest.wasm ?? []).map((w) => w.module.replace(/^\/+/, '')));
  if (modules.size > 1) {
    throw new IdentityError(
      'policy-bundle-unsupported',
      `the bundle has ${modules.size} wasm modules (${[...modules].join(', ')}); one is supported`,
    );
  }
  const wasmName = modules.size === 1 ? ([...modules][0] as string) : 'policy.wasm';
  const wasmFile = byName.get(wasmName);
  if (wasmFile === undefined) {
    throw new IdentityError(
      'policy-bundle-missing-wasm',
      `the bundle has no /${wasmName} (build it with opa build -t wasm)`,
    );
  }
  const data: Record<string, unknown> = {};
  for (const f of files) {
    const base = f.name.slice(f.name.lastIndexOf('/') + 1);
    if (base === 'data.yaml' || base === 'data.yml') {
      throw new IdentityError(
        'policy-bundle-unsupported',
        `/${f.name}: YAML data files are not supported; use data.json`,
      );
    }
    if (base !== 'data.json') continue;
    const doc = parseJson(f, 'policy-bundle-invalid-data');
    if (!isObject(doc)) {
      throw new IdentityError('policy-bundle-invalid-data', `/${f.name} must contain a JSON object`);
    }
    const dir = f.name.split('/').slice(0, -1);
    let wrapped: Record<string, unknown> = doc;
    for (let i = dir.length - 1; i >= 0; i--) {
      const outer: Record<string, unknown> = {};
      setOwn(outer, dir[i] as string, wrapped);
      wrapped = outer;
    }
    if (nestsDeeperThan(wrapped, MAX_DATA_DEPTH)) {
      throw new IdentityError(
        'policy-bundle-invalid-data',
        `/${f.name} nests deeper than ${MAX_DATA_DEPTH} levels (its directories included)`,
        { details: { limit: MAX_DATA_DEPTH } },
      );
    }
    mergeInto(data, wrapped, '');
  }
  return { wasm: wasmFile.data, data, manifest, signed: byName.has('.signatures.json') };
}

/**
 * Unpacks and parses a gzip'd bundle.
 *
 * @throws IdentityError `policy-bundle-too-large`, `policy-bundle-not-gzip`, any tar or
 *   {@link parseBundleFiles} code.
 */
export async function readBundle(bytes: Uint8Array, limits: BundleLimits): Promise<ParsedBundle> {
  if (bytes.byteLength > limits.maxCompressedBytes) {
    throw new IdentityError(
      'policy-bundle-too-large',
      `the bundle is ${bytes.byteLength} bytes; the limit is ${limits.maxCompressedBytes}`,
      { details: { limit: limits.maxCompressedBytes } },
    );
  }
  const tar = await gunzipBounded(bytes, limits.maxDecompressedBytes);
  return parseBundleFiles(
    readTar(tar, { maxBytes: limits.maxDecompressedBytes, maxEntries: limits.maxEntries }),
  );
}
