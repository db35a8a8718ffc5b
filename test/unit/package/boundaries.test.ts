// Dependencies point one way (docs/contributing.md). This walks the static import graph of each
// concept folder and checks what it may reach, so that, for example, a program that only
// validates tokens never loads grpc-js or opa-wasm.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const importPattern =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

/** Every module reachable from `entry` (relative imports followed), and every bare specifier seen. */
function reach(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(importPattern)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec) continue;
      // Type-only imports vanish at runtime: they load nothing.
      if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
        if (existsSync(target)) queue.push(target);
        else if (existsSync(target.replace(/\.ts$/, '/index.ts')))
          queue.push(target.replace(/\.ts$/, '/index.ts'));
      } else {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
  }
  return { files, packages };
}

const leafRules: Record<string, { forbiddenPackages: string[]; allowedFolders: string[] }> = {
  errors: { forbiddenPackages: ['*'], allowedFolders: ['errors'] },
  spiffeid: { forbiddenPackages: ['*'], allowedFolders: ['errors', 'spiffeid'] },
  bundle: {
    forbiddenPackages: [
      '@grpc/grpc-js',
      '@grpc/proto-loader',
      '@open-policy-agent/opa-wasm',
      '@peculiar/x509',
      'reflect-metadata',
    ],
    allowedFolders: ['errors', 'spiffeid', 'bundle', 'internal'],
  },
  svid: {
    forbiddenPackages: [
      '@grpc/grpc-js',
      '@grpc/proto-loader',
      '@open-policy-agent/opa-wasm',
      '@peculiar/x509',
      'reflect-metadata',
    ],
    allowedFolders: ['errors', 'spiffeid', 'bundle', 'svid', 'internal'],
  },
  health: {
    forbiddenPackages: [
      '@grpc/grpc-js',
      '@grpc/proto-loader',
      '@open-policy-agent/opa-wasm',
      '@peculiar/x509',
      'reflect-metadata',
    ],
    allowedFolders: ['errors', 'spiffeid', 'bundle', 'internal', 'health'],
  },
  observability: { forbiddenPackages: ['*'], allowedFolders: ['errors', 'observability'] },
};

describe('import boundaries', () => {
  for (const [folder, rule] of Object.entries(leafRules)) {
    const entry = join(root, 'src', folder, 'index.ts');
    // A folder that does not exist yet has nothing to check (every folder listed exists once built).
    if (!existsSync(entry)) continue;
    it(`${folder} reaches only ${rule.allowedFolders.join(', ')}`, () => {
      const { files, packages } = reach(entry);
      const folders = new Set([...files].map((f) => relative(join(root, 'src'), f).split('/')[0]));
      expect([...folders].filter((f) => !rule.allowedFolders.includes(f!))).toEqual([]);
      const nonNode = [...packages].filter((p) => !p.startsWith('node:'));
      if (rule.forbiddenPackages.includes('*')) expect(nonNode).toEqual([]);
      else expect(nonNode.filter((p) => rule.forbiddenPackages.includes(p))).toEqual([]);
    });
  }

  it('no file under src/ imports test-only packages', () => {
    const { packages } = reach(join(root, 'src/index.ts'));
    expect([...packages].filter((p) => p === '@peculiar/x509' || p === 'reflect-metadata')).toEqual([]);
  });
});
