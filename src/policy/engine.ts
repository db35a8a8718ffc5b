/**
 * The policy engine: a compiled Rego policy (OPA wasm) with its data, evaluated in-process.
 */
import { createHash, randomUUID } from 'node:crypto';
import diagnostics_channel from 'node:diagnostics_channel';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { IdentityError } from '../errors/index.js';
import {
  createHostBuiltins,
  type EvaluationScope,
  HOST_BUILTINS,
  type HostBuiltin,
  SDK_BUILTINS,
  systemClockNs,
} from './builtins.js';
import { type BundleManifest, readBundle } from './bundle.js';
import { cloneJson, DataLayers, type DataPath, isObject, parseDataPath } from './data.js';
import {
  classify,
  describeThrown,
  inspectModule,
  jsonBuffer,
  type MemoryLimits,
  type ModuleInfo,
  PolicyInstance,
  WASM_PAGE_BYTES,
} from './wasm.js';
import { FileWatcher } from './watch.js';

/** Size and memory bounds. Every field is optional; defaults are listed per field. */
export interface PolicyLimits {
  /** Largest compressed bundle accepted, in bytes. Default 16 MiB. */
  maxBundleBytes?: number | undefined;
  /** Largest decompressed bundle accepted, in bytes (zip-bomb guard). Default 64 MiB. */
  maxDecompressedBytes?: number | undefined;
  /** Largest number of tar entries in a bundle. Default 4096. */
  maxEntries?: number | undefined;
  /** Largest serialised input accepted by `evaluate`, in bytes. Default 1 MiB. */
  maxInputBytes?: number | undefined;
  /** Initial linear memory of a policy instance, in 64 KiB pages. Default 16 (1 MiB). */
  initialMemoryPages?: number | undefined;
  /** Maximum linear memory of a policy instance, in 64 KiB pages. Default 4096 (256 MiB). */
  maxMemoryPages?: number | undefined;
}

/** {@link PolicyLimits} with every bound set. */
export type ResolvedPolicyLimits = {
  readonly [K in keyof PolicyLimits]-?: number;
};

/** The defaults of {@link PolicyLimits}. */
export const DEFAULT_POLICY_LIMITS: ResolvedPolicyLimits = Object.freeze({
  maxBundleBytes: 16 * 1024 * 1024,
  maxDecompressedBytes: 64 * 1024 * 1024,
  maxEntries: 4096,
  maxInputBytes: 1024 * 1024,
  initialMemoryPages: 16,
  maxMemoryPages: 4096,
});

/** Outcome label of one evaluation, for metrics: `true`/`false` results are `allow`/`deny`. */
export type DecisionLabel = 'allow' | 'deny' | 'undefined' | 'value' | 'error';

/** The failure of an evaluation, in a decision log entry. */
export interface DecisionError {
  /** The `IdentityError` code, e.g. `policy-evaluation-failed`. */
  readonly code: string;
  /** The error message. */
  readonly message: string;
}

/** One evaluation, as reported to the decision log hook and the diagnostics channel. */
export interface DecisionLogEntry {
  /** Unique id of the decision (a UUID); also on the {@link Decision}. */
  readonly decisionId: string;
  /** The policy's name (see {@link PolicyEngineOptions.name}). */
  readonly policy: string;
  /** The entrypoint evaluated. */
  readonly entrypoint: string;
  /** The input after {@link PolicyEngineOptions.redactInput}. */
  readonly input: unknown;
  /** The result; `undefined` when the entrypoint was undefined or evaluation failed. */
  readonly result: unknown;
  /** Outcome label (see {@link DecisionLabel}). */
  readonly decision: DecisionLabel;
  /** Set when evaluation failed. */
  readonly error?: DecisionError | undefined;
  /** Evaluation time in milliseconds (input encoding included). */
  readonly durationMs: number;
  /** Bundle revision in force, if any. */
  readonly revision: string | undefined;
  /** Wall-clock time of the decision (ISO 8601). */
  readonly timestamp: string;
}

/** One evaluation, as reported to the metrics hook. */
export interface EvaluationMetric {
  /** The policy's name. */
  readonly policy: string;
  /** The entrypoint evaluated. */
  readonly entrypoint: string;
  /** Outcome label. */
  readonly decision: DecisionLabel;
  /** Evaluation time in seconds. */
  readonly durationSeconds: number;
}

/** The result of {@link PolicyEngine.evaluate}. */
export interface Decision<T = unknown> {
  /** Unique id of this decision (also in the decision log). */
  readonly id: string;
  /** The entrypoint evaluated. */
  readonly entrypoint: string;
  /** Whether the entrypoint produced a value for this input. */
  readonly defined: boolean;
  /** The value, or `undefined` when the entrypoint is undefined for this input. */
  readonly result: T | undefined;
  /** Bundle revision the decision was made with. */
  readonly revision: string | undefined;
  /** Evaluation time in milliseconds. */
  readonly durationMs: number;
}

/** Emitted after a watched bundle was replaced. */
export interface PolicyReloadEvent {
  /** Revision of the new bundle. */
  readonly revision: string | undefined;
  /** Revision of the bundle it replaced. */
  readonly previousRevision: string | undefined;
  /** SHA-256 of the new bundle file, hex. */
  readonly sha256: string;
  /** Entrypoints of the new bundle. */
  readonly entrypoints: readonly string[];
}

/** Events of a {@link PolicyEngine}. */
export interface PolicyEngineEvents {
  /** A watched bundle was replaced by a new, valid one. */
  reload: [PolicyReloadEvent];
  /**
   * Something failed outside a call: a watched bundle could not be loaded (the previous policy
   * stays in force), the watcher broke, or a hook threw.
   */
  error: [IdentityError];
}

/** Options shared by every way of creating a {@link PolicyEngine}. */
export interface PolicyEngineOptions {
  /** Name used in metrics and decision logs. Default: the bundle file name, else `policy`. */
  name?: string | undefined;
  /** Size and memory bounds. */
  limits?: PolicyLimits | undefined;
  /**
   * Extra host built-ins by Rego name (e.g. `acme.lookup`). They are synchronous, take and
   * return JSON values, and must be declared in the capabilities you compile with.
   */
  builtins?: Readonly<Record<string, HostBuiltin>> | undefined;
  /**
   * When true, a built-in that rejects its arguments fails the whole evaluation (fail closed)
   * instead of making the call undefined (OPA's default).
   */
  strictBuiltinErrors?: boolean | undefined;
  /** Wall clock for `time.now_ns`, in nanoseconds since the epoch. Default: `Date.now()`. */
  clock?: (() => bigint) | undefined;
  /** Called after every evaluation (success or failure). Must not throw; errors are reported as `error` events. */
  decisionLog?: ((entry: DecisionLogEntry) => void) | undefined;
  /**
   * Returns what the decision log may see of an input (drop tokens, mask fields). Must not
   * mutate its argument. Default: the input unchanged.
   */
  redactInput?: ((input: unknown, entrypoint: string) => unknown) | undefined;
  /** Called after every evaluation with its duration and outcome label. */
  metrics?: ((metric: EvaluationMetric) => void) | undefined;
}

/** Options of {@link PolicyEngine.watch}. */
export interface WatchOptions extends PolicyEngineOptions {
  /** Quiet time after a file event before reloading, in ms. Default 100. */
  debounceMs?: number | undefined;
  /** Fallback stat poll interval in ms (0 disables). Default 10000. */
  pollIntervalMs?: number | undefined;
}

/** Where a loaded policy came from, and what it needs. */
export interface PolicyDescription {
  /** The policy's name. */
  readonly name: string;
  /** Bundle revision, if any. */
  readonly revision: string | undefined;
  /** Entrypoint names in module order. */
  readonly entrypoints: readonly string[];
  /** OPA wasm ABI of the module, e.g. `1.3`. */
  readonly abi: string;
  /** Host built-ins the module calls. */
  readonly builtins: readonly string[];
  /** SHA-256 (hex) of the bundle or module bytes. */
  readonly sha256: string;
  /** Whether the bundle carried `/.signatures.json` (signatures are not verified). */
  readonly signed: boolean;
}

/** Name of the `node:diagnostics_channel` channel every decision is published on. */
export const POLICY_DECISION_CHANNEL = 'tachikoma:identity:policy:decision';
const decisionChannel = diagnostics_channel.channel(POLICY_DECISION_CHANNEL);

interface Loaded {
  readonly info: ModuleInfo;
  readonly manifest: BundleManifest;
  readonly entrypointNames: readonly string[];
  readonly sha256: string;
  readonly signed: boolean;
  instance: PolicyInstance | undefined;
}

interface Source {
  wasm: Uint8Array;
  data: Record<string, unknown>;
  manifest: BundleManifest;
  signed: boolean;
  sha256: string;
}

function limitsOf(opts: PolicyEngineOptions): ResolvedPolicyLimits {
  const out: Record<keyof PolicyLimits, number> = { ...DEFAULT_POLICY_LIMITS };
  for (const [k, v] of Object.entries(opts.limits ?? {})) {
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new IdentityError('policy-invalid-option', `limits.${k} must be a positive integer`);
    }
    (out as Record<string, number>)[k] = v;
  }
  if (out.initialMemoryPages > out.maxMemoryPages || out.maxMemoryPages > 65_536) {
    throw new IdentityError(
      'policy-invalid-option',
      'limits.initialMemoryPages must not exceed limits.maxMemoryPages, which must not exceed 65536',
    );
  }
  return out;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function serializeData(doc: Record<string, unknown>): ArrayBuffer {
  let text: string;
  try {
    text = JSON.stringify(doc);
  } catch (err) {
    throw new IdentityError(
      'policy-data-invalid',
      `the data document is not JSON-serialisable: ${describeThrown(err)}`,
      {
        cause: err,
      },
    );
  }
  return jsonBuffer(text);
}

/** Reads at most `max` bytes of a file; larger files are refused without reading them whole. */
async function readBoundedFile(path: string, max: number): Promise<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new IdentityError('policy-bundle-unreadable', `cannot open ${path}: ${describeThrown(err)}`, {
      cause: err,
    });
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, max + 1 - total));
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      chunks.push(buf.subarray(0, bytesRead));
      if (total > max) {
        throw new IdentityError(
          'policy-bundle-too-large',
          `${path} is larger than the limit of ${max} bytes`,
          {
            details: { limit: max },
          },
        );
      }
    }
    return new Uint8Array(Buffer.concat(chunks, total));
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw new IdentityError('policy-bundle-unreadable', `cannot read ${path}: ${describeThrown(err)}`, {
      cause: err,
    });
  } finally {
    await handle.close();
  }
}

function labelOf(result: unknown, failed: boolean): DecisionLabel {
  if (failed) return 'error';
  if (result === true) return 'allow';
  if (result === false) return 'deny';
  if (result === undefined) return 'undefined';
  return 'value';
}

/**
 * An in-process Rego policy: an OPA wasm module with its data, evaluated synchronously.
 *
 * Create one with {@link PolicyEngine.fromBundle}, {@link PolicyEngine.fromBundleFile},
 * {@link PolicyEngine.fromWasm} or {@link PolicyEngine.watch}. Evaluations are synchronous and
 * never see a half-loaded policy: a reload builds the new instance completely before swapping it
 * in, and a bundle that fails to load leaves the previous one in force.
 *
 * The type parameter maps entrypoint names to result types, for typed results:
 *
 * @example
 * ```ts
 * const engine = await PolicyEngine.fromBundleFile<{ 'authz/allow': boolean }>('bundle.tar.gz');
 * const d = engine.evaluate('authz/allow', { caller: 'spiffe://example.org/service/web' });
 * if (d.result === true) { ... }
 * await engine.close();
 * ```
 */
export class PolicyEngine<
  Results extends Record<string, unknown> = Record<string, unknown>,
> extends EventEmitter<PolicyEngineEvents> {
  readonly #name: string;
  readonly #limits: ResolvedPolicyLimits;
  readonly #memory: MemoryLimits;
  readonly #opts: PolicyEngineOptions;
  readonly #scope: EvaluationScope = { nowNs: undefined, uuids: undefined };
  readonly #builtins: Record<string, HostBuiltin>;
  readonly #available: ReadonlySet<string>;
  readonly #layers = new DataLayers();
  #loaded!: Loaded;
  #evaluating = false;
  #closed = false;
  // Decision ids: a random per-engine prefix and a counter, in UUID layout (unique without
  // drawing randomness per decision).
  readonly #idPrefix = randomUUID().slice(0, 24);
  #idCounter = 0;
  #watcher: FileWatcher | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #reloadPending = false;

  private constructor(opts: PolicyEngineOptions, defaultName: string) {
    super();
    this.#opts = opts;
    this.#name = opts.name ?? defaultName;
    this.#limits = limitsOf(opts);
    this.#memory = {
      initialPages: this.#limits.initialMemoryPages,
      maximumPages: this.#limits.maxMemoryPages,
    };
    const strict = opts.strictBuiltinErrors === true;
    const host = createHostBuiltins(this.#scope, opts.clock ?? systemClockNs);
    for (const name of Object.keys(opts.builtins ?? {})) {
      if (SDK_BUILTINS.includes(name) || HOST_BUILTINS.includes(name)) {
        throw new IdentityError(
          'policy-invalid-option',
          `built-in ${name} is already implemented and cannot be replaced`,
        );
      }
      if (typeof opts.builtins?.[name] !== 'function') {
        throw new IdentityError('policy-invalid-option', `built-in ${name} must be a function`);
      }
    }
    const all: Record<string, HostBuiltin> = { ...host, ...opts.builtins };
    this.#builtins = {};
    for (const [name, fn] of Object.entries(all)) this.#builtins[name] = this.#guardBuiltin(name, fn, strict);
    this.#available = new Set([...SDK_BUILTINS, ...Object.keys(all)]);
  }

  #guardBuiltin(name: string, fn: HostBuiltin, strict: boolean): HostBuiltin {
    return (...args: unknown[]) => {
      let out: unknown;
      try {
        out = fn(...args);
      } catch (err) {
        // Engine misuse (a built-in calling back into the engine) always fails the evaluation.
        if (err instanceof IdentityError && err.code === 'policy-reentrant-evaluation') throw err;
        if (strict) {
          throw new IdentityError('policy-builtin-error', `built-in ${name} failed: ${describeThrown(err)}`, {
            cause: err,
          });
        }
        return undefined;
      }
      if (typeof (out as { then?: unknown } | null)?.then === 'function') {
        throw new IdentityError(
          'policy-builtin-error',
          `built-in ${name} returned a Promise; built-ins must be synchronous`,
        );
      }
      return out;
    };
  }

  /**
   * Loads a policy from the bytes of a compiled module (`policy.wasm`), with no data.
   *
   * @throws IdentityError `policy-wasm-invalid`, `policy-wasm-wrong-abi`,
   *   `policy-wasm-unsupported-abi`, `policy-builtin-unsupported`, ...
   */
  static async fromWasm<R extends Record<string, unknown> = Record<string, unknown>>(
    wasm: Uint8Array,
    options: PolicyEngineOptions = {},
  ): Promise<PolicyEngine<R>> {
    const engine = new PolicyEngine<R>(options, 'policy');
    await engine.#load({
      wasm,
      data: {},
      manifest: {},
      signed: false,
      sha256: sha256Hex(wasm),
    });
    return engine;
  }

  /**
   * Loads an `opa build -t wasm` bundle (gzip'd tar bytes).
   *
   * @throws IdentityError any `policy-bundle-*` or `policy-wasm-*` code.
   */
  static async fromBundle<R extends Record<string, unknown> = Record<string, unknown>>(
    bundle: Uint8Array,
    options: PolicyEngineOptions = {},
  ): Promise<PolicyEngine<R>> {
    const engine = new PolicyEngine<R>(options, 'policy');
    await engine.#load(await engine.#parseBundle(bundle));
    return engine;
  }

  /** Loads an `opa build -t wasm` bundle from a file. */
  static async fromBundleFile<R extends Record<string, unknown> = Record<string, unknown>>(
    path: string,
    options: PolicyEngineOptions = {},
  ): Promise<PolicyEngine<R>> {
    const engine = new PolicyEngine<R>(options, basename(path).replace(/\.tar\.gz$|\.tgz$/, ''));
    const bytes = await readBoundedFile(path, engine.#limits.maxBundleBytes);
    await engine.#load(await engine.#parseBundle(bytes));
    return engine;
  }

  /**
   * Loads a bundle file and keeps it current: when the file (or a symlink leading to it) changes,
   * the new bundle is loaded and swapped in atomically, and `reload` is emitted. A bundle that
   * fails to load emits `error` and the previous policy stays in force.
   */
  static async watch<R extends Record<string, unknown> = Record<string, unknown>>(
    path: string,
    options: WatchOptions = {},
  ): Promise<PolicyEngine<R>> {
    const engine = await PolicyEngine.fromBundleFile<R>(path, options);
    const watcher = new FileWatcher(
      path,
      {
        debounceMs: options.debounceMs ?? 100,
        pollIntervalMs: options.pollIntervalMs ?? 10_000,
      },
      () => engine.#requestReload(path),
      (err) =>
        engine.#emitError(
          new IdentityError('policy-watch-failed', `watching ${path} failed: ${err.message}`, { cause: err }),
        ),
    );
    engine.#watcher = watcher;
    try {
      await watcher.start();
    } catch (err) {
      await engine.close();
      throw new IdentityError('policy-watch-failed', `cannot watch ${path}: ${describeThrown(err)}`, {
        cause: err,
      });
    }
    return engine;
  }

  async #parseBundle(bytes: Uint8Array): Promise<Source> {
    const parsed = await readBundle(bytes, {
      maxCompressedBytes: this.#limits.maxBundleBytes,
      maxDecompressedBytes: this.#limits.maxDecompressedBytes,
      maxEntries: this.#limits.maxEntries,
    });
    return { ...parsed, sha256: sha256Hex(bytes) };
  }

  /** Builds a complete instance for `src` and swaps it in; throws and changes nothing on failure. */
  async #load(src: Source): Promise<Loaded> {
    const info = await inspectModule(src.wasm, this.#memory);
    const missing = info.builtins.filter((b) => !this.#available.has(b));
    if (missing.length > 0) {
      throw new IdentityError(
        'policy-builtin-unsupported',
        `the policy calls built-in function${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which this runtime does not implement (compile with the shipped capabilities.json to catch this at build time)`,
        { details: { builtins: missing } },
      );
    }
    for (const w of src.manifest.wasm ?? []) {
      if (!info.entrypoints.has(w.entrypoint)) {
        throw new IdentityError(
          'policy-bundle-invalid-manifest',
          `/.manifest lists entrypoint ${w.entrypoint}, which the module does not export`,
        );
      }
    }
    const doc = this.#layers.preview(src.data);
    const instance = PolicyInstance.create(info, this.#memory, this.#builtins, serializeData(doc));
    const entrypointNames = [...info.entrypoints.entries()].sort((a, b) => a[1] - b[1]).map(([n]) => n);
    const loaded: Loaded = {
      info,
      manifest: src.manifest,
      entrypointNames,
      sha256: src.sha256,
      signed: src.signed,
      instance,
    };
    if (this.#closed) throw new IdentityError('policy-closed', 'the policy engine was closed during a load');
    this.#layers.commitBase(src.data, doc);
    this.#loaded = loaded;
    return loaded;
  }

  #requestReload(path: string): void {
    if (this.#closed) return;
    if (this.#reloadPending) return;
    this.#reloadPending = true;
    this.#reloading = this.#reloading.then(async () => {
      this.#reloadPending = false;
      if (this.#closed) return;
      await this.#reloadFrom(path);
    });
  }

  async #reloadFrom(path: string): Promise<void> {
    try {
      const bytes = await readBoundedFile(path, this.#limits.maxBundleBytes);
      if (this.#closed) return;
      const sha = sha256Hex(bytes);
      if (sha === this.#loaded.sha256) return;
      const previousRevision = this.revision;
      const loaded = await this.#load(await this.#parseBundle(bytes));
      this.emit('reload', {
        revision: loaded.manifest.revision,
        previousRevision,
        sha256: loaded.sha256,
        entrypoints: loaded.entrypointNames,
      });
    } catch (err) {
      if (this.#closed) return;
      const e =
        err instanceof IdentityError
          ? err
          : new IdentityError('policy-reload-failed', `reloading ${path} failed: ${describeThrown(err)}`, {
              cause: err,
            });
      this.#emitError(
        new IdentityError(
          'policy-reload-failed',
          `reloading ${path} failed; the previous policy stays in force: ${e.message}`,
          {
            cause: e,
            details: { code: e.code },
          },
        ),
      );
    }
  }

  #emitError(err: IdentityError): void {
    // eventemitter3 drops `error` silently when nobody listens; that is the intended default here.
    this.emit('error', err);
  }

  /** The policy's name, as used in metrics and decision logs. */
  get name(): string {
    return this.#name;
  }

  /** Manifest revision of the bundle in force (`undefined` when unset or loaded from wasm). */
  get revision(): string | undefined {
    return this.#loaded.manifest.revision;
  }

  /** Entrypoint names of the policy in force, in module order (e.g. `authz/allow`). */
  get entrypoints(): readonly string[] {
    return this.#loaded.entrypointNames;
  }

  /** The effective data document (bundle data plus application writes). Read-only. */
  get data(): Readonly<Record<string, unknown>> {
    return this.#layers.current;
  }

  /** Facts about the policy in force. */
  describe(): PolicyDescription {
    const l = this.#loaded;
    return {
      name: this.#name,
      revision: l.manifest.revision,
      entrypoints: l.entrypointNames,
      abi: `${l.info.abiVersion}.${l.info.abiMinorVersion}`,
      builtins: l.info.builtins,
      sha256: l.sha256,
      signed: l.signed,
    };
  }

  #nextDecisionId(): string {
    this.#idCounter = (this.#idCounter + 1) % 0x1_0000_0000_0000;
    return this.#idPrefix + this.#idCounter.toString(16).padStart(12, '0');
  }

  #assertUsable(): void {
    if (this.#closed) throw new IdentityError('policy-closed', 'the policy engine is closed');
    if (this.#evaluating) {
      throw new IdentityError(
        'policy-reentrant-evaluation',
        'the policy engine was called from inside one of its own evaluations (e.g. from a built-in)',
      );
    }
  }

  #instance(): PolicyInstance {
    const l = this.#loaded;
    if (l.instance === undefined) {
      // The previous instance trapped; rebuild it from the compiled module and current data.
      l.instance = PolicyInstance.create(
        l.info,
        this.#memory,
        this.#builtins,
        serializeData(this.#layers.current),
      );
    }
    return l.instance;
  }

  #encodeInput(input: unknown): string | undefined {
    if (input === undefined) return undefined;
    let text: string | undefined;
    try {
      text = JSON.stringify(input);
    } catch (err) {
      throw new IdentityError(
        'policy-input-invalid',
        `the input is not JSON-serialisable: ${describeThrown(err)}`,
        {
          cause: err,
        },
      );
    }
    if (text === undefined) throw new IdentityError('policy-input-invalid', 'the input is not a JSON value');
    const max = this.#limits.maxInputBytes;
    // UTF-8 never takes fewer bytes than UTF-16 code units, so the cheap check comes first.
    if (text.length > max || Buffer.byteLength(text, 'utf8') > max) throw this.#inputTooLarge(max);
    return text;
  }

  #inputTooLarge(max: number): IdentityError {
    return new IdentityError(
      'policy-input-too-large',
      `the serialised input exceeds the limit of ${max} bytes`,
      {
        details: { limit: max },
      },
    );
  }

  /**
   * Evaluates an entrypoint (`authz/allow`) on `input`, synchronously.
   *
   * @param entrypoint - one of {@link PolicyEngine.entrypoints}.
   * @param input - any JSON value; `undefined` evaluates without input.
   * @returns the decision; `result` is `undefined` when the entrypoint is undefined for the input.
   * @throws IdentityError `policy-unknown-entrypoint`, `policy-input-invalid`,
   *   `policy-input-too-large`, `policy-evaluation-failed`, `policy-memory-limit`,
   *   `policy-builtin-error`, `policy-closed`, `policy-reentrant-evaluation`. A failed evaluation
   *   never yields a result: callers fail closed.
   */
  evaluate<K extends keyof Results & string>(entrypoint: K, input?: unknown): Decision<Results[K]> {
    this.#assertUsable();
    const loaded = this.#loaded;
    const id = this.#nextDecisionId();
    const start = performance.now();
    let result: unknown;
    let error: IdentityError | undefined;
    const epId = loaded.info.entrypoints.get(entrypoint);
    if (epId === undefined) {
      error = new IdentityError(
        'policy-unknown-entrypoint',
        `the policy has no entrypoint ${JSON.stringify(entrypoint)}; it has ${loaded.entrypointNames.join(', ') || 'none'}`,
      );
    } else {
      this.#evaluating = true;
      try {
        const buf = this.#encodeInput(input);
        result = this.#instance().evaluate(epId, buf);
      } catch (err) {
        const c = classify(err, `evaluating ${entrypoint}`);
        if (c.fatal) loaded.instance = undefined;
        error = c.error;
        result = undefined;
      } finally {
        this.#evaluating = false;
        this.#scope.nowNs = undefined;
        this.#scope.uuids = undefined;
      }
    }
    const durationMs = performance.now() - start;
    if (
      this.#opts.metrics !== undefined ||
      this.#opts.decisionLog !== undefined ||
      decisionChannel.hasSubscribers
    ) {
      this.#observe(id, entrypoint, input, result, error, durationMs, loaded.manifest.revision);
    }
    if (error !== undefined) throw error;
    return {
      id,
      entrypoint,
      defined: result !== undefined,
      result: result as Results[K] | undefined,
      revision: loaded.manifest.revision,
      durationMs,
    };
  }

  /**
   * Evaluates `entrypoint` and tells whether its result is exactly `true`. Undefined, `false`
   * and any other value are `false`; evaluation errors throw (callers fail closed).
   */
  isAllowed(entrypoint: keyof Results & string, input?: unknown): boolean {
    return this.evaluate(entrypoint, input).result === true;
  }

  #observe(
    id: string,
    entrypoint: string,
    input: unknown,
    result: unknown,
    error: IdentityError | undefined,
    durationMs: number,
    revision: string | undefined,
  ): void {
    const decision = labelOf(result, error !== undefined);
    const metrics = this.#opts.metrics;
    if (metrics !== undefined) {
      try {
        metrics({
          policy: this.#name,
          entrypoint,
          decision,
          durationSeconds: durationMs / 1000,
        });
      } catch (err) {
        this.#emitError(
          new IdentityError('policy-hook-failed', `the metrics hook threw: ${describeThrown(err)}`, {
            cause: err,
          }),
        );
      }
    }
    const log = this.#opts.decisionLog;
    if (log === undefined && !decisionChannel.hasSubscribers) return;
    let redacted: unknown;
    try {
      redacted = this.#opts.redactInput === undefined ? input : this.#opts.redactInput(input, entrypoint);
    } catch (err) {
      this.#emitError(
        new IdentityError('policy-hook-failed', `the redactInput hook threw: ${describeThrown(err)}`, {
          cause: err,
        }),
      );
      redacted = '[redaction failed]';
    }
    const entry: DecisionLogEntry = {
      decisionId: id,
      policy: this.#name,
      entrypoint,
      input: redacted,
      result,
      decision,
      error: error === undefined ? undefined : { code: error.code, message: error.message },
      durationMs,
      revision,
      timestamp: new Date().toISOString(),
    };
    if (log !== undefined) {
      try {
        log(entry);
      } catch (err) {
        this.#emitError(
          new IdentityError('policy-hook-failed', `the decision log hook threw: ${describeThrown(err)}`, {
            cause: err,
          }),
        );
      }
    }
    if (decisionChannel.hasSubscribers) decisionChannel.publish(entry);
  }

  #writeData(path: readonly string[], value: unknown): void {
    this.#assertUsable();
    const { doc, commit } =
      path.length === 0 && value === undefined
        ? this.#layers.previewReset()
        : this.#layers.previewPatch(path, value);
    this.#applyDoc(doc);
    commit();
  }

  /** Loads `doc` into the live instance; on failure restores the previous data or drops the instance. */
  #applyDoc(doc: Record<string, unknown>): void {
    const bytes = serializeData(doc);
    const l = this.#loaded;
    if (l.instance === undefined) return; // rebuilt with the committed data on next use
    try {
      l.instance.setData(bytes);
    } catch (err) {
      try {
        l.instance.setData(serializeData(this.#layers.current));
      } catch {
        l.instance = undefined;
      }
      throw err;
    }
  }

  /**
   * Replaces the whole data document, bundle data included. The replacement survives bundle
   * reloads until {@link PolicyEngine.resetData}.
   *
   * @param data - a JSON object.
   * @throws IdentityError `policy-data-invalid`, `policy-memory-limit`.
   */
  setData(data: Readonly<Record<string, unknown>>): void {
    if (!isObject(data)) {
      throw new IdentityError('policy-data-invalid', 'setData takes a JSON object');
    }
    this.#writeData([], cloneJson(data, 'the data document'));
  }

  /**
   * Writes (or with `value` undefined, removes) the value at `path` of the data document,
   * creating intermediate objects. Writes survive bundle reloads.
   *
   * @param path - `['agents', 'a1']` or `'agents/a1'`.
   * @throws IdentityError `policy-data-invalid-path`, `policy-data-invalid`, `policy-memory-limit`.
   */
  patchData(path: DataPath, value: unknown): void {
    const segments = parseDataPath(path);
    const v = value === undefined ? undefined : cloneJson(value, `the value at ${segments.join('/') || '/'}`);
    if (segments.length === 0 && v === undefined) {
      this.#writeData([], {});
      return;
    }
    this.#writeData(segments, v);
  }

  /** Drops every application write: the data document is the bundle's data again. */
  resetData(): void {
    this.#writeData([], undefined);
  }

  /** Bytes of linear memory the policy instance holds (grows up to `limits.maxMemoryPages`). */
  get memoryBytes(): number {
    return this.#loaded.instance?.memoryBytes ?? 0;
  }

  /** The memory bound of one instance, in bytes. */
  get maxMemoryBytes(): number {
    return this.#memory.maximumPages * WASM_PAGE_BYTES;
  }

  /** Whether {@link PolicyEngine.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops watching, waits for a reload in progress and releases the instance. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#reloading.catch(() => undefined);
    this.#loaded.instance = undefined;
    this.removeAllListeners();
  }

  /** Same as {@link PolicyEngine.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
