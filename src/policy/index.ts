/**
 * `@tachikoma/identity/policy`: in-process Rego with OPA's wasm compiler.
 *
 * - {@link PolicyEngine} loads a compiled policy (`opa build -t wasm` bundle, bundle file, or a
 *   bare `policy.wasm`), evaluates entrypoints synchronously, manages data, reloads a watched
 *   bundle atomically, and reports every decision to optional decision-log and metrics hooks and
 *   to the `tachikoma:identity:policy:decision` diagnostics channel.
 * - {@link capabilitiesPath} is the capabilities file to compile with, so that unsupported
 *   built-ins fail at build time.
 * - {@link httpAuthorization}, {@link expressAuthorization} and {@link fastifyAuthorization}
 *   authorize HTTP requests with a policy.
 *
 * See `docs/policy.md`.
 *
 * @packageDocumentation
 */

export type { EvaluationScope, HostBuiltin } from './builtins.js';
export { HOST_BUILTINS, SDK_BUILTINS } from './builtins.js';
export type { BundleManifest, BundleWasmEntry } from './bundle.js';
export { capabilitiesPath, SPIFFE_PARSE_ID_DECL } from './capabilities.js';
export type { DataPath } from './data.js';
export type {
  Decision,
  DecisionError,
  DecisionLabel,
  DecisionLogEntry,
  EvaluationMetric,
  PolicyDescription,
  PolicyEngineEvents,
  PolicyEngineOptions,
  PolicyLimits,
  PolicyReloadEvent,
  ResolvedPolicyLimits,
  WatchOptions,
} from './engine.js';
export { DEFAULT_POLICY_LIMITS, POLICY_DECISION_CHANNEL, PolicyEngine } from './engine.js';
export type {
  AllowOutcome,
  AuthorizationInput,
  AuthorizationOptions,
  AuthorizationOutcome,
  CallerId,
  DenyOutcome,
  EvaluatedDecision,
  ExpressLikeRequest,
  FailedOutcome,
  FastifyLikeReply,
  FastifyLikeRequest,
  ParsedTarget,
  PolicyEvaluator,
  Refusal,
  RequestFacts,
  StringConvertible,
} from './middleware.js';
export {
  authorizeRequest,
  expressAuthorization,
  fastifyAuthorization,
  httpAuthorization,
  parseRequestTarget,
  refusalFor,
  withAuthorization,
} from './middleware.js';
