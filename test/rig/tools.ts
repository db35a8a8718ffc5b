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
  return process.env.TACHIKOMA_TOOLS_CACHE ?? join(homedir(), '.cache', 'tachikoma-testbin');
}

export interface ToolPaths {
  spireServer: string;
  spireAgent: string;
  opa: string;
}

/** Paths of the three binaries; throws naming the missing one and the command that builds it. */
export function toolPaths(): ToolPaths {
  const spireDir = process.env.SPIRE_BIN_DIR ?? join(cacheDir(), `spire-${SPIRE_VERSION}`);
  const opa = process.env.OPA_BIN ?? join(cacheDir(), `opa-${OPA_VERSION}`, 'opa');
  const paths = {
    spireServer: join(spireDir, 'spire-server'),
    spireAgent: join(spireDir, 'spire-agent'),
    opa,
  };
  for (const p of Object.values(paths)) {
    if (!existsSync(p)) {
      throw new Error(
        `test rig: ${p} is missing; run \`npm run tools\` (builds SPIRE ${SPIRE_VERSION} and OPA ${OPA_VERSION} with Go)`,
      );
    }
  }
  return paths;
}
