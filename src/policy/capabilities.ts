/**
 * The capabilities file to compile policies with (`opa build --capabilities`).
 *
 * It lists exactly the built-ins this runtime can run: those OPA compiles natively into wasm,
 * those `@open-policy-agent/opa-wasm` implements, and our host built-ins (including
 * `spiffe.parse_id`), with the `rego_v1` feature. A policy that calls anything else fails at
 * build time instead of at evaluation.
 */
import { fileURLToPath } from 'node:url';

/** Rego declaration of `spiffe.parse_id`, as it appears in the capabilities file. */
export const SPIFFE_PARSE_ID_DECL: Readonly<Record<string, unknown>> = Object.freeze({
  name: 'spiffe.parse_id',
  description:
    'Parses a SPIFFE ID strictly (SPIFFE-ID specification) into its trust domain, path and path segments; undefined when the ID is invalid.',
  categories: ['spiffe'],
  decl: {
    type: 'function',
    args: [{ name: 'id', description: 'the SPIFFE ID', type: 'string' }],
    result: {
      name: 'parts',
      description: '`{"trust_domain": string, "path": string, "segments": [string]}`',
      type: 'object',
      static: [
        { key: 'path', value: { type: 'string' } },
        { key: 'segments', value: { type: 'array', dynamic: { type: 'string' } } },
        { key: 'trust_domain', value: { type: 'string' } },
      ],
    },
  },
});

/**
 * Absolute path of the shipped `capabilities.json`, for `opa build --capabilities <path>`.
 *
 * @example
 * ```ts
 * execFileSync('opa', ['build', '-t', 'wasm', '--capabilities', capabilitiesPath(), '-e', 'authz/allow', 'policy.rego']);
 * ```
 */
export function capabilitiesPath(): string {
  return fileURLToPath(new URL('./capabilities.json', import.meta.url));
}
