/** The test rig: real SPIRE and the real OPA CLI, started and stopped by tests. */

export type { CompileOptions, RegoFiles } from './opa.js';
export { compileRego, extractFromBundle, opaEval, opaEvalMany } from './opa.js';
export { freePort, run, runOk, waitFor } from './proc.js';
export type { AuthorityIds, Entry, EntryOptions, SpireRig, StartSpireOptions } from './spire.js';
export { startSpire } from './spire.js';
export { OPA_VERSION, opaPath, SPIRE_VERSION, spirePaths, toolPaths } from './tools.js';
export { useSpire } from './vitest.js';
