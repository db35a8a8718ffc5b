/**
 * Where the test rig finds the real spire-server, spire-agent and opa binaries.
 * They are built by `npm run tools` (tools/build-tools.sh) into a cache outside the checkout,
 * keyed by version. Nothing here downloads or builds: a missing binary is a loud failure.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const SPIRE_VERSION = '1.13.3';
export const OPA_VERSION = '1.22.2';

function cacheDir(): string {
  return process.env['TACHIKOMA_TOOLS_CACHE'] ?? join(homedir(), '.cache', 'tachikoma-testbin');
}

function mustExist(path: string): string {
  if (!existsSync(path)) {
    throw new Error(
      `test rig: ${path} is missing; run \`npm run tools\` (builds SPIRE ${SPIRE_VERSION} and OPA ${OPA_VERSION} with Go)`,
    );
  }
  return path;
}

export interface ToolPaths {
  spireServer: string;
  spireAgent: string;
  opa: string;
}

/** Paths of spire-server and spire-agent; throws naming the missing one and the command that builds it. */
export function spirePaths(): { spireServer: string; spireAgent: string } {
  const dir = process.env['SPIRE_BIN_DIR'] ?? join(cacheDir(), `spire-${SPIRE_VERSION}`);
  return {
    spireServer: mustExist(join(dir, 'spire-server')),
    spireAgent: mustExist(join(dir, 'spire-agent')),
  };
}

/** Path of the opa binary; throws naming it and the command that builds it. */
export function opaPath(): string {
  return mustExist(process.env['OPA_BIN'] ?? join(cacheDir(), `opa-${OPA_VERSION}`, 'opa'));
}

/** All three paths. */
export function toolPaths(): ToolPaths {
  return { ...spirePaths(), opa: opaPath() };
}
