/**
 * The one error type of `@tachikoma/identity`.
 *
 * Every error the SDK throws or rejects with is an {@link IdentityError}. Its `code` is a stable,
 * kebab-case string (for example `spiffeid-invalid-trust-domain` or `x509svid-leaf-is-ca`) that
 * callers can switch on; the message starts with the code and then names the rule that failed.
 * The full list of codes is in `docs/errors.md`.
 *
 * @packageDocumentation
 */

const brand: unique symbol = Symbol.for('@tachikoma/identity.IdentityError');

/** Options accepted by the {@link IdentityError} constructor. */
export interface IdentityErrorOptions {
  /** The underlying error (a gRPC status, a jose error, a parse failure). */
  cause?: unknown;
  /** Extra machine-readable facts about the failure (never secrets). */
  details?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * The base class of every error the SDK throws.
 *
 * `instanceof IdentityError` also recognises errors made by another installed copy of this
 * package (the check uses a registered symbol, not object identity).
 *
 * @example
 * ```ts
 * try {
 *   SpiffeId.parse(input);
 * } catch (err) {
 *   if (err instanceof IdentityError && err.code === 'spiffeid-invalid-path') { ... }
 * }
 * ```
 */
export class IdentityError extends Error {
  /** Stable machine-readable code, e.g. `jwtsvid-missing-audience`. */
  readonly code: string;
  /** Extra machine-readable facts about the failure (never secrets). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  /**
   * @param code - stable kebab-case code; it also prefixes the message.
   * @param detail - which rule failed, in words.
   * @param options - cause and details.
   */
  constructor(code: string, detail: string, options?: IdentityErrorOptions) {
    super(`${code}: ${detail}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
    Object.defineProperty(this, brand, { value: true });
  }

  /** Always `'IdentityError'`. */
  override get name(): string {
    return 'IdentityError';
  }

  /** Recognises IdentityErrors from any copy of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }
}

/**
 * Tells whether `value` is an {@link IdentityError}, optionally with the given code.
 *
 * @param value - anything caught.
 * @param code - when given, the error's code must equal it.
 */
export function isIdentityError(value: unknown, code?: string): value is IdentityError {
  return value instanceof IdentityError && (code === undefined || value.code === code);
}
