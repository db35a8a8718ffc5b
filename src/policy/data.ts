/**
 * The data document of a policy: the bundle's data with the application's writes layered on top.
 *
 * Writes are kept as an ordered list of (path, value) patches so that they survive a bundle
 * reload: the new bundle's data is taken as the base and the same patches are applied again.
 * Objects are copied on write, never mutated, and keys are defined as own properties so that a
 * key named `__proto__` is plain data.
 */
import { IdentityError } from '../errors/index.js';
import { describeThrown } from './wasm.js';

/** A path into the data document: `['agents', 'a1']` or `'agents/a1'`; `[]` or `''` is the root. */
export type DataPath = string | readonly string[];

/** Defines `obj[key] = value` as an own, enumerable property (never invokes a setter). */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Whether `v` is a JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Splits a path into segments.
 *
 * @throws IdentityError `policy-data-invalid-path` for empty segments or non-string segments.
 */
export function parseDataPath(path: DataPath): string[] {
  let segments: string[];
  if (typeof path === 'string') {
    const trimmed = path.replace(/^\/+/, '');
    segments = trimmed === '' ? [] : trimmed.split('/');
  } else if (Array.isArray(path)) {
    segments = [...(path as readonly unknown[])] as string[];
  } else {
    throw new IdentityError(
      'policy-data-invalid-path',
      'a data path must be a string or an array of strings',
    );
  }
  for (const s of segments) {
    if (typeof s !== 'string' || s === '') {
      throw new IdentityError(
        'policy-data-invalid-path',
        `data path ${JSON.stringify(path)} has an empty or non-string segment`,
      );
    }
  }
  return segments;
}

/**
 * Copies a JSON value through serialisation, so that later changes by the caller cannot reach it.
 *
 * @throws IdentityError `policy-data-invalid` when the value is not JSON-serialisable.
 */
export function cloneJson(value: unknown, what: string): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new IdentityError(
      'policy-data-invalid',
      `${what} is not JSON-serialisable: ${describeThrown(err)}`,
      {
        cause: err,
      },
    );
  }
  if (text === undefined) throw new IdentityError('policy-data-invalid', `${what} is not a JSON value`);
  return JSON.parse(text);
}

/** Returns a copy of `doc` with `value` at `path` (or the key removed when `value` is undefined). */
function withValueAt(
  doc: Record<string, unknown>,
  path: readonly string[],
  value: unknown,
): Record<string, unknown> {
  if (path.length === 0) {
    if (value === undefined) return {};
    if (!isObject(value))
      throw new IdentityError('policy-data-invalid', 'the root data document must be an object');
    return value;
  }
  const [head, ...rest] = path as [string, ...string[]];
  const copy: Record<string, unknown> = { ...doc };
  if (rest.length === 0) {
    if (value === undefined) delete copy[head];
    else setOwn(copy, head, value);
    return copy;
  }
  const child = Object.hasOwn(doc, head) ? doc[head] : undefined;
  if (child === undefined) {
    if (value === undefined) return doc;
    setOwn(copy, head, withValueAt({}, rest, value));
    return copy;
  }
  if (!isObject(child)) {
    throw new IdentityError(
      'policy-data-invalid-path',
      `cannot write below ${head}: it holds ${Array.isArray(child) ? 'an array' : typeof child}, not an object`,
    );
  }
  setOwn(copy, head, withValueAt(child, rest, value));
  return copy;
}

interface Patch {
  readonly path: readonly string[];
  readonly value: unknown;
}

/** Ordered application writes, re-applied on every bundle (re)load. */
export class DataLayers {
  #base: Record<string, unknown> = {};
  readonly #patches = new Map<string, Patch>();
  #current: Record<string, unknown> = {};

  /** The effective document (bundle data + patches). Treat as read-only. */
  get current(): Record<string, unknown> {
    return this.#current;
  }

  /** Computes the document for a new base without changing anything. */
  preview(base: Record<string, unknown>): Record<string, unknown> {
    let doc = base;
    for (const p of this.#patches.values()) doc = withValueAt(doc, p.path, p.value);
    return doc;
  }

  /** Commits a new base and the document {@link preview} computed for it. */
  commitBase(base: Record<string, unknown>, doc: Record<string, unknown>): void {
    this.#base = base;
    this.#current = doc;
  }

  /**
   * Computes the document with one more patch, without committing it.
   *
   * @returns the new document and a function that commits it.
   */
  previewPatch(
    path: readonly string[],
    value: unknown,
  ): { doc: Record<string, unknown>; commit: () => void } {
    const doc = withValueAt(this.#current, path, value);
    return {
      doc,
      commit: () => {
        const key = JSON.stringify(path);
        for (const [k, p] of this.#patches) {
          if (p.path.length >= path.length && path.every((s, i) => p.path[i] === s)) this.#patches.delete(k);
        }
        this.#patches.set(key, { path, value });
        this.#current = doc;
      },
    };
  }

  /** Computes the document without any patch. */
  previewReset(): { doc: Record<string, unknown>; commit: () => void } {
    return {
      doc: this.#base,
      commit: () => {
        this.#patches.clear();
        this.#current = this.#base;
      },
    };
  }
}
